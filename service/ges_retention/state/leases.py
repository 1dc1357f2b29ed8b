"""Per-policy leases on PostgreSQL: several daemons share one state, and each policy is run by one holder at a time.

A lease is a row `(policy, holder, generation, expires_at)` kept on the DATABASE clock, so the replicas' own clocks
never decide who holds what. A process takes a free or expired lease (every take bumps `generation`), renews the
leases it holds every TTL/3, and releases them (`expires_at` = the epoch) when it is done with them. Two guards stand
between a lease and a DELETE:
- fencing: each intent batch commits only if its transaction still finds the lease held by this holder at the same
  generation and unexpired (`lease_records.fence`, inside `PostgresStore.write_intents`); a taker's `FOR UPDATE`
  waits for a batch that holds `FOR SHARE`, so no batch commits after a takeover;
- the local monotonic clock: a lease is valid here only until its last successful renewal (measured from before the
  renewal was sent) + TTL - 1 s (`valid`), so a process that was stopped or cut off sends nothing once the database may
  have given the lease away.

`run_id` on the row names the run in progress (NULL when idle): a taker that finds it set on an expired lease, or on
one its holder handed over while shutting down mid-run, runs the policy at once (`Taken.takeover`).

Daemons heartbeat a row of their own (`heartbeat`); `live_daemons` and `table` are the input of the pure spreading
rule (`ges_retention.lease_spread`). PostgreSQL only: a SQLite state has one daemon and an flock run lock.
"""

# SQL text here is assembled only from constants (the TTL interval expression); every value is a parameter.
# ruff: noqa: S608
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ges_retention.state.errors import StateError
from ges_retention.state.lease_records import (
    DEFAULT_TTL_S,
    SAFETY_MARGIN_S,
    Lease,
    LeaseRow,
    RenewReport,
    Taken,
    check_ttl,
    fence,
    holders_by_policy,
)
from ges_retention.state.locks import RunLock
from ges_retention.state.sql import Tx, as_time

if TYPE_CHECKING:
    from ges_retention.state.postgres import PostgresStore

# The values live in `lease_records.py`; they are named here too, beside the leases they describe.
__all__ = [
    "DEFAULT_TTL_S",
    "SAFETY_MARGIN_S",
    "Lease",
    "LeaseRow",
    "PgLeases",
    "RenewReport",
    "Taken",
    "check_ttl",
    "fence",
    "holders_by_policy",
]

IN_PROGRESS = "in-progress"
"""`run_id` written when a run lock is taken without a run id."""
_INTERVAL = "(?::double precision * interval '1 second')"


@dataclass(slots=True)
class _Held:
    lease: Lease
    valid_until: float  # monotonic
    running: bool = False
    owned_by_lock: bool = False  # taken by a one-shot run's lock: released with it


class PgLeases:
    """This process's leases on one PostgreSQL state: the database rows and the local book of what it holds."""

    def __init__(
        self,
        store: PostgresStore,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        monotonic: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        check_ttl(ttl_s)
        self._store = store
        self.ttl_s = float(ttl_s)
        self._monotonic = monotonic
        self._sleep = sleep
        self._book: dict[str, _Held] = {}
        self.managed = False
        """True while a daemon's lease manager decides what to hold: a run lock then never takes a lease itself."""
        self.handing_over = False
        """True once a daemon shuts down: a run lock released then hands its lease over with its `run_id` kept."""
        self._renewer: asyncio.Task[None] | None = None

    @property
    def holder(self) -> str:
        return self._store.holder

    def _now(self) -> float:
        return self._monotonic() if self._monotonic is not None else asyncio.get_running_loop().time()

    # ---------------------------------------------------------------------------------------------- the local book

    def lease(self, policy: str) -> Lease | None:
        held = self._book.get(policy)
        return held.lease if held is not None else None

    def valid(self, policy: str) -> bool:
        """Held, and within last renewal + TTL - 1 s on the local monotonic clock."""
        held = self._book.get(policy)
        return held is not None and self._now() < held.valid_until

    def held(self) -> list[str]:
        return sorted(self._book)

    def running(self) -> list[str]:
        return sorted(name for name, held in self._book.items() if held.running)

    def is_running(self, policy: str) -> bool:
        held = self._book.get(policy)
        return held is not None and held.running

    def forget(self, policy: str) -> Lease | None:
        """Drop a lease from the book without touching the database (it was lost)."""
        held = self._book.pop(policy, None)
        return held.lease if held is not None else None

    # ---------------------------------------------------------------------------------------------- the rows

    async def take(self, policy: str) -> Taken | None:
        """Take the lease if it is free or expired (or already ours); None when another holder has it."""
        started = self._now()
        try:
            taken = await self._take(policy)
        except StateError as exc:
            import asyncpg  # PostgreSQL only (never imported for a SQLite state)

            if isinstance(exc.__cause__, asyncpg.LockNotAvailableError):
                return None  # somebody is busy with the row (a batch's fence): not free now; the next round retries
            raise
        if taken is not None:
            self._book[policy] = _Held(taken.lease, started + self.ttl_s - SAFETY_MARGIN_S)
        return taken

    async def _take(self, policy: str) -> Taken | None:
        async with self._store.writing("lease_take") as tx:
            await self._lock_timeout(tx)
            rows = await tx.fetch(
                "SELECT holder, generation, expires_at > now(), run_id FROM leases WHERE policy = ? FOR UPDATE NOWAIT",
                (policy,),
            )
            if not rows:
                inserted = await tx.fetch(
                    "INSERT INTO leases (policy, holder, generation, acquired_at, renewed_at, expires_at) "
                    f"VALUES (?, ?, 1, now(), now(), now() + {_INTERVAL}) ON CONFLICT (policy) DO NOTHING "
                    "RETURNING generation",
                    (policy, self.holder, self.ttl_s),
                )
                if not inserted:
                    return None
                taken = Taken(Lease(policy, self.holder, 1), None, takeover=False)
            else:
                holder, _generation, live, run_id = rows[0]
                if live and holder == self.holder and policy in self._book:
                    return Taken(self._book[policy].lease, holder, takeover=False)
                if live and holder != self.holder:
                    return None
                # Free, expired, or live in our name without being in our book (a renewal we gave up on): a new
                # generation either way, so that nothing done under the old one can pass the fence.
                new = await tx.fetch(
                    "UPDATE leases SET holder = ?, generation = generation + 1, acquired_at = now(), "
                    f"renewed_at = now(), expires_at = now() + {_INTERVAL}, run_id = NULL WHERE policy = ? "
                    "RETURNING generation",
                    (self.holder, self.ttl_s, policy),
                )
                # run_id set on a lease that is no longer live: its holder died or was cut off mid-run (expired), or
                # handed it over while shutting down mid-run (released with `run_id` kept).
                taken = Taken(Lease(policy, self.holder, int(new[0][0])), str(holder), takeover=run_id is not None)
        return taken

    async def _lock_timeout(self, tx: Tx) -> None:
        """A lease statement never waits long for a row lock: the manager's round must go on (renewals)."""
        await tx.execute(f"SET LOCAL lock_timeout = {int(self.ttl_s * 1000 / 3)}")

    async def renew(self) -> RenewReport:
        """Renew every lease in the book in one statement; the ones the database no longer gives us are lost (and
        dropped from the book). A lease whose row still names us at its generation is renewed even if it expired
        meanwhile: nobody took it, and our local clock kept us from acting while it was expired."""
        if not self._book:
            return RenewReport((), ())
        started = self._now()
        leases = [held.lease for held in self._book.values()]
        async with self._store.writing("lease_renew") as tx:
            await self._lock_timeout(tx)
            rows = await tx.fetch(
                f"UPDATE leases l SET renewed_at = now(), expires_at = now() + {_INTERVAL} "
                "FROM unnest(?::text[], ?::bigint[]) AS h(policy, generation) "
                "WHERE l.policy = h.policy AND l.generation = h.generation AND l.holder = ? "
                "AND l.expires_at > to_timestamp(0) RETURNING l.policy",
                (self.ttl_s, [lease.policy for lease in leases], [lease.generation for lease in leases], self.holder),
            )
        kept = {str(row[0]) for row in rows}
        renewed: list[Lease] = []
        lost: list[Lease] = []
        for lease in leases:
            held = self._book.get(lease.policy)
            if held is None or held.lease != lease:
                continue  # released or retaken while the renewal was in flight
            if lease.policy in kept:
                held.valid_until = started + self.ttl_s - SAFETY_MARGIN_S
                renewed.append(lease)
            else:
                del self._book[lease.policy]
                lost.append(lease)
        return RenewReport(tuple(renewed), tuple(lost))

    async def release(self, policy: str, *, resume: bool = False) -> bool:
        """Give the lease back now (`expires_at` = the epoch). `resume` keeps its `run_id`, so that the next holder
        runs the policy at once; else the row says idle. False when the book did not hold it or the row had moved."""
        held = self._book.pop(policy, None)
        if held is None:
            return False
        lease = held.lease
        async with self._store.writing("lease_release") as tx:
            await self._lock_timeout(tx)
            changed = await tx.execute(
                "UPDATE leases SET expires_at = to_timestamp(0), run_id = CASE WHEN ? THEN run_id ELSE NULL END "
                "WHERE policy = ? AND holder = ? AND generation = ?",
                (resume, policy, lease.holder, lease.generation),
            )
        return changed > 0

    async def mark(self, policy: str, run_id: str | None) -> bool:
        """Record on the row that the holder runs `run_id` (None: idle). False when the lease is no longer ours."""
        held = self._book.get(policy)
        if held is None:
            return False
        lease = held.lease
        async with self._store.writing("lease_mark") as tx:
            await self._lock_timeout(tx)
            changed = await tx.execute(
                "UPDATE leases SET run_id = ? WHERE policy = ? AND holder = ? AND generation = ?",
                (run_id, policy, lease.holder, lease.generation),
            )
        return changed > 0

    async def table(self) -> dict[str, LeaseRow]:
        """Every lease row by policy, `live` judged on the database clock."""
        async with self._store.reading("lease_table") as tx:
            rows = await tx.fetch(
                "SELECT policy, holder, generation, expires_at, expires_at > now(), run_id IS NOT NULL FROM leases "
                "ORDER BY policy"
            )
        return {
            str(r[0]): LeaseRow(str(r[0]), str(r[1]), int(r[2]), as_time(r[3]), bool(r[4]), bool(r[5])) for r in rows
        }

    async def holder_of(self, policy: str) -> str | None:
        """The live holder of a policy's lease, or None when it is free or expired."""
        row = (await self.table()).get(policy)
        return row.holder if row is not None and row.live else None

    # ---------------------------------------------------------------------------------------------- daemons

    async def heartbeat(self) -> None:
        """This daemon is alive for another TTL (its row is created at the first beat)."""
        async with self._store.writing("daemon_heartbeat") as tx:
            await tx.execute(
                "INSERT INTO daemons (holder, started_at, heartbeat_at, expires_at) "
                f"VALUES (?, now(), now(), now() + {_INTERVAL}) ON CONFLICT (holder) DO UPDATE SET "
                "heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at",
                (self.holder, self.ttl_s),
            )
            # Rows of daemons gone for a day are noise in `live_daemons`' table scans.
            await tx.execute("DELETE FROM daemons WHERE expires_at < now() - interval '1 day'")

    async def leave(self) -> None:
        """This daemon stops: the others stop counting it at once."""
        async with self._store.writing("daemon_leave") as tx:
            await tx.execute("DELETE FROM daemons WHERE holder = ?", (self.holder,))

    async def live_daemons(self) -> list[str]:
        async with self._store.reading("live_daemons") as tx:
            rows = await tx.fetch("SELECT holder FROM daemons WHERE expires_at > now() ORDER BY holder")
        return [str(row[0]) for row in rows]

    # ---------------------------------------------------------------------------------------------- run locks

    async def run_lock(self, policy: str, run_id: str | None = None) -> RunLock | None:
        """The run lock of a policy on PostgreSQL: its lease. A daemon (`managed`) runs only what its manager holds
        and keeps the lease after the run; a one-shot `run` takes the lease itself, renews it while it runs and
        releases it with the lock. None when another holder has it or a run of it is in progress here."""
        held = self._book.get(policy)
        if held is not None and (held.running or not self.valid(policy)):
            return None
        if held is None:
            if self.managed:
                return None
            if await self.take(policy) is None:
                return None
            held = self._book[policy]
            held.owned_by_lock = True
            self._ensure_renewer()
        held.running = True
        lease = held.lease
        try:
            if not await self.mark(policy, run_id or IN_PROGRESS):
                held.running = False
                return None
        except BaseException:
            held.running = False
            if held.owned_by_lock:
                self._book.pop(policy, None)
            raise

        async def release() -> None:
            current = self._book.get(policy)
            if current is None or current.lease != lease:
                return  # lost meanwhile: the row is somebody else's now
            current.running = False
            try:
                if current.owned_by_lock:
                    await self.release(policy)
                elif self.handing_over:
                    await self.release(policy, resume=True)
                else:
                    await self.mark(policy, None)
            finally:
                self._stop_renewer_if_idle()

        return RunLock(policy, lease.holder, release, owner=self._store, lease=lease, valid=lambda: self.valid(policy))

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop(), name="lease-renewer")

    def _stop_renewer_if_idle(self) -> None:
        if self._renewer is not None and not any(h.owned_by_lock for h in self._book.values()):
            self._renewer.cancel()
            self._renewer = None

    async def _renew_loop(self) -> None:
        """A one-shot run's renewals (a daemon's lease manager renews its own). Errors are retried at the next tick:
        meanwhile the local clock runs out, and the run stops deleting."""
        while True:
            await self._sleep(self.ttl_s / 3)
            with contextlib.suppress(Exception):
                await self.renew()

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._renewer
            self._renewer = None
