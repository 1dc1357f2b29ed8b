"""The daemon's runs: which trigger may start which policy now, the runs in progress, and what ends a run.

A policy runs only when asked: its schedule (`scheduled`), SIGUSR1 or `POST /v1/runs` (`run_all_now`: every enabled
policy not running), `POST /v1/runs?policy=NAME` (`trigger`), a lease taken over mid-run (`lease_acquired`), or
`run_on_change` (`change_runs`, whose `ChangeHost` this is). `enabled: false` pauses a policy for every trigger; a
policy never runs twice at once; nothing runs while the state is not connected or while another daemon holds the
policy's lease (several replicas). The runner does the work: this only starts runs, keeps the bookkeeping
(`running`, `queued`, `tasks`, `records`) and answers the runner's `should_continue` before each DELETE. No exception
ends a run task unlogged (`run_crashed`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from ges_retention.change_runs import ChangeRuns
from ges_retention.journal import JournalUnavailable
from ges_retention.policy import Policy
from ges_retention.replicas import LeaseHeld, Replicas
from ges_retention.run_records import ChangeDigests, ChangeKey, RunRecords
from ges_retention.service import policy_endpoint
from ges_retention.summary import Trigger, new_run_id
from ges_retention.task_crashes import log_task_crash

if TYPE_CHECKING:
    from ges_retention.daemon_state import StateLink
    from ges_retention.policy_loading import PolicyFile
    from ges_retention.runner import Runner
    from ges_retention.settings import Settings
    from ges_retention.state import RunLock, Taken

__all__ = ["AlreadyRunning", "DaemonRuns", "LeaseHeld", "Paused", "StateNotReady", "UnknownPolicy"]

log = structlog.get_logger("ges_retention.daemon")


class AlreadyRunning(Exception):
    pass


class UnknownPolicy(Exception):
    pass


class Paused(Exception):
    pass


class StateNotReady(Exception):
    """The journal is not connected (PostgreSQL unreachable at start): nothing runs until it is."""


class DaemonRuns:
    """The runs of one daemon. `loaded` gives the policy file in force (None before the first load)."""

    # No `__slots__`: one per daemon, and tests put a seam on `should_continue`.

    def __init__(
        self,
        runner: Runner,
        settings: Settings,
        *,
        loaded: Callable[[], PolicyFile | None],
        replicas: Replicas,
        state: StateLink | None,
        stopping: asyncio.Event,
        change_digests: ChangeDigests,
        clock: Callable[[], datetime],
    ) -> None:
        self.runner = runner
        self.settings = settings
        self.replicas = replicas
        self.state = state
        self.stopping = stopping
        self._loaded = loaded
        self._clock = clock
        self.records = RunRecords()
        self.running: set[str] = set()
        self.queued: set[str] = set()  # run_on_change policies changed while running: one more run each
        self.tasks: set[asyncio.Task[None]] = set()
        self.on_change = ChangeRuns(self, change_digests)

    def policy(self, name: str) -> Policy | None:
        """The loaded definition of a policy, or None if the file has no such policy."""
        policy_file = self._loaded()
        if policy_file is None:
            return None
        return next((p for p in policy_file.policies if p.name == name), None)

    def state_ready(self) -> bool:
        """False while the journal is not connected: the daemon then runs nothing."""
        return self.state is None or self.state.connected

    # --- the `ChangeHost` of `change_runs` ----------------------------------------------------------------------

    def change_key(self, policy: Policy) -> ChangeKey:
        return (policy.name, policy_endpoint(policy, self.settings), policy.project_id)

    def stopping_now(self) -> bool:
        return self.stopping.is_set()

    def start_run_now(self, names: list[str], trigger: Trigger, run_id: str) -> None:
        self.start(names, trigger, run_id=run_id)

    def run_here(self, name: str) -> bool:
        """Several replicas: only the holder of a policy's lease runs a change of it (else `run_skipped`
        `lease_held`, with the holder)."""
        return not self.replicas.skipped(name, "file")

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """A daemon task that is not a run (a `run_on_change` read); its exception is logged, never lost."""
        self._track(asyncio.get_running_loop().create_task(work))

    def _track(self, task: asyncio.Task[None]) -> None:
        self.tasks.add(task)
        task.add_done_callback(log_task_crash)
        task.add_done_callback(self.tasks.discard)

    # --- triggers ---------------------------------------------------------------------------------------------

    async def scheduled(self, name: str) -> None:
        """The APScheduler job of a policy: a fire. Never raises (a crash is `run_crashed`)."""
        try:
            policy = self.policy(name)
            if policy is None or not policy.enabled:
                log.info("run_skipped", policy=name, reason="paused", trigger="schedule")
                return
            if name in self.running:
                log.info("run_skipped", policy=name, reason="already_running", trigger="schedule")
                return
            if not self.state_ready():
                log.info("run_skipped", policy=name, reason="state_unavailable", trigger="schedule")
                return
            if self.replicas.skipped(name, "schedule"):
                return
            await self.start([name], "schedule")
        except Exception as exc:
            log.exception("run_crashed", policies=[name], error=repr(exc))

    def trigger(self, names: Iterable[str] | None, trigger: Trigger) -> str:
        """Start a run of the named policies (all enabled ones without names); its run id.

        Raises UnknownPolicy, Paused, AlreadyRunning (a policy named, or with no names: every enabled one),
        StateNotReady, LeaseHeld.
        """
        if not self.state_ready():
            raise StateNotReady(self.state.error if self.state is not None and self.state.error else "not connected")
        policy_file = self._loaded()
        if policy_file is None:
            raise UnknownPolicy("no policies loaded")
        wanted = list(dict.fromkeys(names or [])) or [p.name for p in policy_file.policies if p.enabled]
        if not wanted:
            raise Paused("every policy")
        unknown = [n for n in wanted if self.policy(n) is None]
        if unknown:
            raise UnknownPolicy(", ".join(unknown))
        paused = [n for n in wanted if not self.policy(n).enabled]  # type: ignore[union-attr]
        if paused:
            raise Paused(", ".join(paused))
        for name in wanted:
            if (found := self.replicas.elsewhere(name)) is not None:
                raise LeaseHeld(name, *found)
        run_id = new_run_id()
        self.start(wanted, trigger, run_id=run_id)
        return run_id

    def run_all_now(self, trigger: Trigger) -> tuple[str | None, list[dict[str, str]]]:
        """SIGUSR1 and `POST /v1/runs`: run every enabled policy not already running whose lease this daemon holds
        (several replicas); (run id or None, skipped)."""
        policy_file = self._loaded()
        if policy_file is None:
            return None, []
        skipped: list[dict[str, str]] = []
        free = []
        for policy in policy_file.policies:
            if not self.state_ready():
                skipped.append({"policy": policy.name, "reason": "state_unavailable"})
            elif not policy.enabled:
                skipped.append({"policy": policy.name, "reason": "paused"})
            elif policy.name in self.running:
                skipped.append({"policy": policy.name, "reason": "already_running"})
            elif (found := self.replicas.elsewhere(policy.name)) is not None:
                holder = {"holder": found[1]} if found[1] else {}
                skipped.append({"policy": policy.name, "reason": found[0], **holder})
            else:
                free.append(policy.name)
        for skip in skipped:
            log.info("run_skipped", **skip, trigger=trigger)
        if not free:
            return None, skipped
        try:
            return self.trigger(free, trigger), skipped
        except AlreadyRunning as exc:  # shutting down
            log.info("run_skipped", reason="shutting_down", error=str(exc), trigger=trigger)
            return None, skipped

    def lease_acquired(self, name: str, taken: Taken) -> None:
        """A lease was taken: resume a run its previous holder lost or handed over mid-run, else check
        `run_on_change` (the previous holder may not have run a change)."""
        policy = self.policy(name)
        if policy is None or self.stopping.is_set():
            return
        if taken.takeover and policy.enabled and name not in self.running:
            self.start([name], "takeover")
        else:
            self.on_change.check(policy)

    # --- a run ------------------------------------------------------------------------------------------------

    def start(self, names: list[str], trigger: Trigger, *, run_id: str | None = None) -> asyncio.Task[None]:
        if self.stopping.is_set():
            raise AlreadyRunning("shutting down")
        busy = [n for n in names if n in self.running]
        if busy:
            raise AlreadyRunning(", ".join(busy))
        policy_file = self._loaded()  # a run finishes on the policies it started with
        assert policy_file is not None and names  # (`select([])` would mean every policy, paused ones too)
        selected = policy_file.select(names)
        run_id = run_id or new_run_id()
        self.running.update(names)
        self.records.start(run_id, trigger, names, self._clock())
        task = asyncio.get_running_loop().create_task(self._run(policy_file, selected, trigger, run_id))
        self._track(task)
        return task

    def should_continue(self, name: str) -> bool:
        """The runner asks before each DELETE: a reload that removed, paused or dry-ran the policy stops it, and so
        does a lease no longer valid on the local clock (several replicas)."""
        current = self.policy(name)
        if current is None or not current.enabled or current.dry_run:
            return False
        return self.replicas.may_delete(name)

    async def _run(self, policy_file: PolicyFile, selected: list[Policy], trigger: Trigger, run_id: str) -> None:
        names = {p.name for p in selected}
        locks: list[RunLock] = []
        try:
            # Several replicas: the run lock is the lease, marked with this run (a takeover resumes it).
            locked, locks = await self.replicas.lock_runs([p.name for p in selected], run_id)
            selected = [p for p in selected if p.name in locked]
            summary = await self.runner.run(
                policy_file,
                selected,
                trigger=trigger,
                run_id=run_id,
                should_continue=self.should_continue,
                on_busy="skip",  # a policy another process is running is `run_skipped` (`running_elsewhere`)
                held_locks=locks,  # the leases' run locks: the journal fences its intent batches with them
            )
            self.records.finish(run_id, summary.to_json(), self._clock())
        except JournalUnavailable as exc:  # logged as `state_unavailable` by the runner
            self.records.crash(run_id, f"state_unavailable: {exc.error}", self._clock())
        except asyncio.CancelledError:
            self.records.crash(run_id, "cancelled at shutdown", self._clock())
            raise
        except Exception as exc:
            log.exception("run_crashed", run_id=run_id, policies=sorted(names), error=repr(exc))
            self.records.crash(run_id, f"{type(exc).__name__}: {exc}", self._clock())
        finally:
            self.runner.active.pop(run_id, None)
            await self._unlock(locks, run_id)
            self.running.difference_update(names)
        for name in names & self.queued:
            self.queued.discard(name)
            policy = self.policy(name)
            try:
                if policy is not None:
                    self.on_change.check(policy)
            except Exception as exc:
                log.exception("run_crashed", policies=[name], error=repr(exc), trigger="file")

    async def _unlock(self, locks: list[RunLock], run_id: str) -> None:
        try:
            await self.replicas.unlock_runs(locks)
        except Exception as exc:  # the leases then lapse on their own; the daemon goes on
            log.exception("run_crashed", run_id=run_id, error=repr(exc), operation="lease_release")
