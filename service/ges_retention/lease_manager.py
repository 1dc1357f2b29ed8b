"""A daemon's leases on a PostgreSQL state: renew, heartbeat, spread, hand over at shutdown. Never dies silently.

Every TTL/3 one `tick`: renew what this daemon holds (a lease the database no longer gives us is `lease_lost`), beat
the heartbeat, read the live daemons and the lease table, and apply the pure spreading rule (`lease_spread.spread`):
give back beyond the target (never a running policy), take free ones up to it. Each lease taken is reported to the
daemon (`on_acquired`), which runs the policy at once when the lease was taken over from a holder that lost it or
left mid-run (`Taken.takeover`), and otherwise checks `run_on_change` (the previous holder may not have run a change).

The database being unreachable is `state_unavailable` (error) at each failed tick, and `available` turns False
(`/readyz` 503); the leases then lapse on the local clock, so nothing runs or deletes until the database answers
again. Any other exception is logged (`lease_manager_failed`) and the next tick comes as usual.

Shutdown (`begin_shutdown`): no more taking; idle leases are released at once and the daemon's row goes, so the others
take them at their next tick; running ones keep being renewed until their run lock is released, which hands the
lease over with its run id (`PgLeases.handing_over`) so that the next holder resumes the run. `close` ends the loop
and releases whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import structlog

from ges_retention.lease_spread import spread
from ges_retention.metrics import Metrics
from ges_retention.state.errors import StateError
from ges_retention.state.leases import PgLeases, Taken, holders_by_policy
from ges_retention.state.locks import RunLock
from ges_retention.task_crashes import log_task_crash

__all__ = ["LeaseManager"]

log = structlog.get_logger("ges_retention.leases")

STARVING_TTLS = 2.0
"""A policy free for this many TTLs is taken by any daemon that sees it, whatever its target."""


class LeaseManager:
    def __init__(
        self,
        leases: PgLeases,
        *,
        policies: Callable[[], Sequence[str]],
        on_acquired: Callable[[str, Taken], None],
        metrics: Metrics | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.leases = leases
        self._policies = policies
        self._on_acquired = on_acquired
        self._metrics = metrics
        self._monotonic = monotonic
        self.interval_s = leases.ttl_s / 3
        self.available: bool | None = None
        """False after a tick that could not reach the state; None before the first tick."""
        self._holders: dict[str, str] = {}
        self._first_free: dict[str, float] = {}
        self._said_lost: set[tuple[str, int | None]] = set()
        self._shutting_down = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        leases.managed = True

    @property
    def holder(self) -> str:
        return self.leases.holder

    def _now(self) -> float:
        return self._monotonic() if self._monotonic is not None else asyncio.get_running_loop().time()

    # ---------------------------------------------------------------------------------------------- queries

    def holds(self, policy: str) -> bool:
        """May this daemon run the policy now: it holds the lease and it is valid on the local clock."""
        return self.leases.valid(policy)

    def holder_of(self, policy: str) -> str | None:
        """Who holds the policy's lease, as of the last tick (this daemon when it holds it)."""
        if self.leases.lease(policy) is not None:
            return self.holder
        return self._holders.get(policy)

    async def refresh(self) -> None:
        """Read the lease table now (for answers that name holders); a failure keeps the last view."""
        try:
            self._holders = holders_by_policy(await self.leases.table())
        except StateError as exc:
            log.error("state_unavailable", error=str(exc), operation="lease_table")

    def may_delete(self, policy: str) -> bool:
        """Asked before each DELETE of a run: False once the lease is not valid on the local clock (or was lost),
        said once per lease as `lease_lost`."""
        if self.leases.valid(policy):
            return True
        lease = self.leases.lease(policy)
        key = (policy, lease.generation if lease is not None else None)
        if key not in self._said_lost:
            self._said_lost.add(key)
            log.error(
                "lease_lost",
                policy=policy,
                holder=self._holders.get(policy) if lease is None else None,
                reason="not valid on the local clock" if lease is not None else "lost",
            )
        return False

    async def lock_runs(self, policies: Sequence[str], run_id: str) -> tuple[list[str], list[RunLock]]:
        """The run locks (leases marked with the run id) of the policies this daemon may run now; the names locked
        and their locks. A policy whose lock is refused (lost meanwhile) is left out with `run_skipped`."""
        locked: list[str] = []
        locks: list[RunLock] = []
        for policy in policies:
            lock = await self.leases.run_lock(policy, run_id)
            if lock is None:
                log.info("run_skipped", policy=policy, reason="lease_held", holder=self.holder_of(policy))
                continue
            locked.append(policy)
            locks.append(lock)
        return locked, locks

    async def unlock_runs(self, locks: Sequence[RunLock]) -> None:
        """The run ended: its leases stay held (idle), or, while shutting down, go to the next holder."""
        for lock in locks:
            handing = self.leases.handing_over and self.leases.lease(lock.policy) == lock.lease
            try:
                await lock.release()
            except StateError as exc:  # the lease then expires on its own; the next holder resumes the run
                log.error("state_unavailable", error=str(exc), operation="lease_release")
                continue
            if handing and lock.lease is not None:
                self.note_released(lock.policy, lock.lease.generation)

    # ---------------------------------------------------------------------------------------------- the loop

    def start(self) -> None:
        """The loop, one per manager (a second call while it runs changes nothing)."""
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="lease-manager")
        self._task.add_done_callback(log_task_crash)

    def wake(self) -> None:
        """Tick now (a reload changed the policies)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self.tick()
            if self._shutting_down and not self.leases.held():
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)

    async def tick(self) -> None:
        """One round; never raises but cancellation."""
        try:
            await self._renew()
            if not self._shutting_down:
                await self._spread()
            if self.available is False:
                log.info("state_connected", operation="leases")
            self.available = True
        except StateError as exc:
            self.available = False
            log.error("state_unavailable", error=str(exc), operation="leases")
        except Exception as exc:
            log.exception("lease_manager_failed", error=f"{type(exc).__name__}: {exc}")

    async def _renew(self) -> None:
        report = await self.leases.renew()
        for lease in report.lost:
            self._set_metric(lease.policy, 0)
            log.error("lease_lost", policy=lease.policy, holder=None, generation=lease.generation, reason="renewal")

    async def _spread(self) -> None:
        await self.leases.heartbeat()
        daemons = await self.leases.live_daemons()
        self._holders = holders = holders_by_policy(await self.leases.table())
        policies = list(self._policies())
        for policy in self.leases.held():  # removed from the file: nothing to run, give it back
            if policy not in policies and not self.leases.is_running(policy):
                await self._release(policy)
        now = self._now()
        for policy in policies:
            if policy in holders:
                self._first_free.pop(policy, None)
            else:
                self._first_free.setdefault(policy, now)
        starving = {p for p, since in self._first_free.items() if now - since >= STARVING_TTLS * self.leases.ttl_s}
        moves = spread(self.holder, daemons, holders, policies, busy=self.leases.running(), starving=starving)
        for policy in moves.give_back:
            await self._release(policy)
        for policy in moves.take:
            await self._take(policy)

    async def _take(self, policy: str) -> None:
        taken = await self.leases.take(policy)
        if taken is None:
            return
        self._holders[policy] = self.holder
        self._first_free.pop(policy, None)
        self._set_metric(policy, 1)
        log.info(
            "lease_acquired",
            policy=policy,
            generation=taken.lease.generation,
            holder=self.holder,
            previous_holder=taken.previous_holder,
            takeover=taken.takeover,
        )
        try:
            self._on_acquired(policy, taken)
        except Exception as exc:
            log.exception("run_crashed", policies=[policy], error=repr(exc), trigger="takeover")

    async def _release(self, policy: str, *, resume: bool = False) -> None:
        lease = self.leases.lease(policy)
        if lease is None:
            return
        released = await self.leases.release(policy, resume=resume)
        self._holders.pop(policy, None)
        self._set_metric(policy, 0)
        if released:
            log.info("lease_released", policy=policy, generation=lease.generation, holder=self.holder)

    def note_released(self, policy: str, generation: int) -> None:
        """A run lock gave its lease back (handed over at shutdown): the metric and the event."""
        self._set_metric(policy, 0)
        log.info("lease_released", policy=policy, generation=generation, holder=self.holder, handed_over=True)

    def _set_metric(self, policy: str, value: int) -> None:
        if self._metrics is not None:
            self._metrics.lease_held.labels(policy).set(value)

    # ---------------------------------------------------------------------------------------------- shutdown

    async def begin_shutdown(self) -> None:
        """SIGTERM: take nothing more, release idle leases now, leave the daemon table; running leases are handed
        over by their run locks once their in-flight requests end."""
        self._shutting_down = True
        self.leases.handing_over = True
        try:
            for policy in self.leases.held():
                if not self.leases.is_running(policy):
                    await self._release(policy)
            await self.leases.leave()
        except StateError as exc:
            log.error("state_unavailable", error=str(exc), operation="leases")
        self.wake()

    async def close(self) -> None:
        """After the runs ended: stop the loop and release anything still held."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for policy in self.leases.held():
            with contextlib.suppress(StateError):
                await self._release(policy, resume=self.leases.is_running(policy))
