"""The runner's one seam to the state: `RunJournal`, the awaited write-ahead steps of a run.

The runner talks to the state only through this seam (and the gates that plug into it). A journal is two things:
- a `RunEvents` subscriber (`events.py`) for what it only records (it hears every event of the run, like the log);
- the awaited steps the runner calls at fixed points of a run, in this order:

    lock_policies(policies, wait=..., held=...) -> busy  before anything: each policy's run lock (`wait`: up to
                                                         GES_RETENTION_STATE_LOCK_TIMEOUT_S, then `PolicyLocked`,
                                                         exit 1 naming the holder; else the busy ones are returned
                                                         with their holder and the run goes on without them).
                                                         `held`: locks the caller took (a daemon's leases), used
                                                         as they are and left to the caller to release
    run_begins(run_id, trigger, policies, dry_run)       before any listing: the run's row (`start_run`)
    before_planning(selected, listings, now)             listings are in, nothing planned yet: the trusted
                                                         listings resolve `deleting` rows of ended runs
                                                         (`listings`: by policy name, the listing of the
                                                         (endpoint, project_id) it is planned over; None:
                                                         untrusted)
    planning_memory(selected, now)                       the gates' input, read before planning: holds in force,
                                                         each policy's pending clocks and baseline (`gate_state`)
    before_planning_ends(results, now)                   plans made, nothing deleted: THE POINT where gates act on
                                                         plans (acks of held definitions are looked up here)
    settle_pending(result, now)                          a policy that acts: its two-phase pending rows started,
                                                         cancelled or gone (before its first DELETE)
    before_batch(result, decisions)  -> BatchVerdict     before each batch of at most GES_RETENTION_CONCURRENCY
                                                         DELETEs: intents committed in one transaction that re-checks
                                                         holds (and, with leases, fencing). Only `send` items get a
                                                         DELETE; `held` items are kept (reason `held: ...`)
    may_send(result)                                     just before each DELETE: False sends no further DELETE
                                                         of that policy (PostgreSQL: its lease no longer valid on
                                                         the local clock)
    after_deletions(finished)                            committed intents' outcomes (request id, attempts), each a
                                                         (result, decision, ticket, deletion), in one write, in the
                                                         order given (the deletion phase's one outcome writer)
    run_ends(summary)                                    the run's end, outcome and counts (a completed real run's
                                                         changed definition becomes its baseline); then pruning
    run_closes()                                         always, last (even when the run raised): locks released

A batch whose fencing fails (PostgreSQL: the lease was taken over) raises `PolicyFenced`: no further DELETE of that
policy (its outcome `interrupted`), the others go on. Any step may raise `JournalUnavailable` (the state cannot be
written): from then on the runner sends no further DELETE, what is left is `not_started`, `state_unavailable` is
logged and the run exits 1. `NullJournal` is the journal of a process without a state (unit tests,
`plan --from-file`): every step succeeds and records nothing.
`StateJournal` is the journal over a `state.Store`; `service.py` builds one per run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, TypeVar

import structlog

from ges_retention import gate_state
from ges_retention.backup import Backup
from ges_retention.errors import GesRetentionError
from ges_retention.events import Deletion, NullRunEvents, RunEvents
from ges_retention.exit_codes import ExitCode
from ges_retention.gates import PlanningMemory
from ges_retention.policy import Policy
from ges_retention.retention_decisions import Decision
from ges_retention.state import (
    BackupFacts,
    IntentTicket,
    LeaseLost,
    Outcome,
    PlannedDeletion,
    RunLock,
    RunLockTimeout,
    RunRecord,
    Scope,
    StateError,
    Store,
    default_holder,
)
from ges_retention.summary import PolicyResult, RunSummary, Trigger

__all__ = [
    "BatchVerdict",
    "Finished",
    "JournalUnavailable",
    "NullJournal",
    "PolicyFenced",
    "PolicyLocked",
    "RunJournal",
    "StateJournal",
    "backup_facts",
    "scope_of",
]

log = structlog.get_logger("ges_retention.runner")
T = TypeVar("T")

# A finished deletion whose outcome the journal records: (result, decision, ticket from `before_batch`, deletion).
Finished = tuple[PolicyResult, Decision, object, Deletion]


class PolicyStopped(GesRetentionError):
    """Several replicas: this process no longer holds the policy's lease (fencing). No further DELETE of that policy;
    its outcome is `interrupted`; the other policies of the run go on."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILED


class JournalUnavailable(GesRetentionError):
    """The state could not be written during a run: no further DELETE, exit 1. `error` is the state's message
    (the location in it is the redacted one)."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILED

    def __init__(self, error: str, *, operation: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.operation = operation


class PolicyLocked(GesRetentionError):
    """A one-shot run waited for a policy's run lock in vain: exit 1, naming the holder."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILED

    def __init__(self, message: str, *, policy: str, holder: str | None) -> None:
        super().__init__(message)
        self.policy = policy
        self.holder = holder


class PolicyFenced(GesRetentionError):
    """An intent batch was refused by its fencing check: this process no longer holds the policy's lease."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILED

    def __init__(self, message: str, *, policy: str, holder: str | None) -> None:
        super().__init__(message)
        self.policy = policy
        self.holder = holder


@dataclass(frozen=True, slots=True)
class BatchVerdict:
    """What may happen to one batch: `send` maps a backup id to the ticket its outcome is reported with; `held`
    maps a backup id to the reason a hold in force keeps it (`held: ...`). A backup in neither gets no DELETE."""

    send: Mapping[str, object] = field(default_factory=dict)
    held: Mapping[str, str] = field(default_factory=dict)


class RunJournal(RunEvents, Protocol):
    """The awaited steps of a run (see the module's docstring for when each is called)."""

    async def lock_policies(
        self, policies: Sequence[str], *, wait: bool, held: Sequence[object] = ()
    ) -> dict[str, str | None]: ...

    def may_send(self, result: PolicyResult) -> bool: ...

    async def run_begins(self, run_id: str, trigger: Trigger, policies: Sequence[str], dry_run: bool) -> None: ...

    async def before_planning(
        self, selected: Sequence[Policy], listings: Mapping[str, Sequence[Backup] | None], now: datetime
    ) -> None: ...

    async def planning_memory(self, selected: Sequence[Policy], now: datetime) -> PlanningMemory: ...

    async def before_planning_ends(self, results: Sequence[PolicyResult], now: datetime) -> None: ...

    async def settle_pending(self, result: PolicyResult, now: datetime) -> None: ...

    async def before_batch(self, result: PolicyResult, decisions: Sequence[Decision]) -> BatchVerdict: ...

    async def after_deletions(self, finished: Sequence[Finished]) -> None: ...

    async def run_ends(self, summary: RunSummary) -> None: ...

    async def run_closes(self) -> None: ...


class NullJournal(NullRunEvents):
    """No state: every deletion may be sent, nothing is recorded."""

    __slots__ = ()

    async def lock_policies(
        self, policies: Sequence[str], *, wait: bool, held: Sequence[object] = ()
    ) -> dict[str, str | None]:
        return {}

    def may_send(self, result: PolicyResult) -> bool:
        return True

    async def run_begins(self, run_id: str, trigger: Trigger, policies: Sequence[str], dry_run: bool) -> None:
        pass

    async def before_planning(
        self, selected: Sequence[Policy], listings: Mapping[str, Sequence[Backup] | None], now: datetime
    ) -> None:
        pass

    async def planning_memory(self, selected: Sequence[Policy], now: datetime) -> PlanningMemory:
        return PlanningMemory()

    async def before_planning_ends(self, results: Sequence[PolicyResult], now: datetime) -> None:
        pass

    async def settle_pending(self, result: PolicyResult, now: datetime) -> None:
        pass

    async def before_batch(self, result: PolicyResult, decisions: Sequence[Decision]) -> BatchVerdict:
        return BatchVerdict(send={d.backup.id: None for d in decisions})

    async def after_deletions(self, finished: Sequence[Finished]) -> None:
        pass

    async def run_ends(self, summary: RunSummary) -> None:
        pass

    async def run_closes(self) -> None:
        pass


def scope_of(result: PolicyResult) -> Scope:
    """The journal's key of a policy's records: (policy, effective endpoint, project)."""
    return Scope(result.name, result.endpoint, result.project_id)


def backup_facts(backup: Backup) -> BackupFacts:
    return BackupFacts(
        backup_id=backup.id,
        name=backup.name,
        graph_id=backup.graph_id,
        graph_name=backup.graph_name,
        method=backup.backup_method,
        started_at=datetime.fromtimestamp(backup.start_ms / 1000, UTC),
        size_mb=getattr(backup, "size_mb", None),
    )


class StateJournal(NullRunEvents):
    """The journal of one run over a `Store` (one per run: it keeps the run's id and its run locks)."""

    __slots__ = (
        "_clock",
        "_endpoint_of",
        "_owned",
        "holder",
        "keep_days",
        "lock_timeout_s",
        "locks",
        "run_id",
        "store",
    )

    def __init__(
        self,
        store: Store,
        *,
        endpoint_of: Callable[[Policy], str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        holder: str | None = None,
        lock_timeout_s: float = 30.0,
        keep_days: int = 400,
    ) -> None:
        self.store = store
        self._endpoint_of = endpoint_of
        self._clock = clock
        self.holder = holder or default_holder()
        self.lock_timeout_s = lock_timeout_s
        self.keep_days = keep_days
        self.run_id: str | None = None
        self.locks: dict[str, RunLock] = {}
        self._owned: set[str] = set()  # the locks this journal took (and releases)

    async def lock_policies(
        self, policies: Sequence[str], *, wait: bool, held: Sequence[object] = ()
    ) -> dict[str, str | None]:
        for lock in held:
            if isinstance(lock, RunLock):
                self.locks[lock.policy] = lock
        busy: dict[str, str | None] = {}
        for policy in dict.fromkeys(policies):
            if policy in self.locks:
                continue
            try:
                if wait:
                    lock = await self.store.acquire_run_lock(policy, timeout_s=self.lock_timeout_s)
                else:
                    found = await self.store.try_run_lock(policy)
                    if found is None:
                        busy[policy] = await self.store.run_lock_holder(policy)
                        continue
                    lock = found
            except RunLockTimeout as exc:
                await self.run_closes()
                raise PolicyLocked(str(exc), policy=policy, holder=exc.holder) from None
            except StateError as exc:
                await self.run_closes()
                raise JournalUnavailable(str(exc), operation="run_lock") from exc
            self.locks[policy] = lock
            self._owned.add(policy)
        return busy

    def may_send(self, result: PolicyResult) -> bool:
        lock = self.locks.get(result.name)
        return lock is None or lock.valid()

    async def run_begins(self, run_id: str, trigger: Trigger, policies: Sequence[str], dry_run: bool) -> None:
        self.run_id = run_id
        record = RunRecord(run_id, trigger, tuple(policies), host=self.holder, started_at=self._clock())
        await _guarded("start_run", self.store.start_run(record))

    async def before_planning(
        self, selected: Sequence[Policy], listings: Mapping[str, Sequence[Backup] | None], now: datetime
    ) -> None:
        """Resolve the `deleting` rows of ended runs of each policy whose project's listing is trusted: absent =
        `deleted`, present = `not_started` (and decided afresh by this plan). Never sends anything. `plan` (no
        run, a read-only store) resolves nothing."""
        if self.run_id is None or self.store.read_only:
            return
        for policy in selected:
            backups = listings.get(policy.name)  # (the listing of the policy's own endpoint and project)
            if backups is None:
                continue  # an untrusted listing resolves nothing
            scope = Scope(policy.name, self._endpoint_of(policy), policy.project_id)
            resolution = await _guarded(
                "resolve_deleting",
                self.store.resolve_deleting(
                    self.run_id, scope, {b.id for b in backups}, lock=self.locks.get(policy.name), now=now
                ),
            )
            if resolution.deleted or resolution.not_started or resolution.unresolved:
                log.info(
                    "deleting_resolved",
                    policy=policy.name,
                    deleted=len(resolution.deleted),
                    not_started=len(resolution.not_started),
                    unresolved=len(resolution.unresolved),
                )

    async def before_batch(self, result: PolicyResult, decisions: Sequence[Decision]) -> BatchVerdict:
        assert self.run_id is not None, "run_begins first"
        items = [PlannedDeletion(backup_facts(d.backup), tuple(d.reasons)) for d in decisions]
        lock = self.locks.get(result.name)
        lease = lock.lease if lock is not None else None  # PostgreSQL: the batch is fenced by the policy's lease
        try:
            batch = await _guarded(
                "write_intents", self.store.write_intents(self.run_id, scope_of(result), items, lease=lease)
            )
        except JournalUnavailable as exc:
            if isinstance(exc.__cause__, LeaseLost):
                lost = exc.__cause__
                raise PolicyFenced(str(lost), policy=result.name, holder=lost.holder) from lost
            if lease is not None and lock is not None and not lock.valid():
                # Frozen past its lease (the server ended the session meanwhile): the lease is what failed.
                raise PolicyFenced(exc.error, policy=result.name, holder=None) from exc
            raise
        return BatchVerdict(
            send={ticket.backup_id: ticket for ticket in batch.committed},
            held={skip.backup_id: skip.reason for skip in batch.held},
        )

    async def after_deletions(self, finished: Sequence[Finished]) -> None:
        outcomes = [
            Outcome(
                ticket.deletion_id,
                deletion.outcome,
                request_id=deletion.request_id,
                attempts=deletion.attempts,
                error=deletion.error,
            )
            for _, _, ticket, deletion in finished
            if isinstance(ticket, IntentTicket)
        ]
        if outcomes:
            await _guarded("record_outcomes", self.store.record_outcomes(outcomes))

    async def run_ends(self, summary: RunSummary) -> None:
        """The run's end; then pruning (after every DELETE of the run, never before one)."""
        if self.run_id is None:
            return
        await _guarded("put_baseline", gate_state.record_baselines(self.store, summary))
        counts: dict[str, Any] = {
            **summary.counts(),
            **summary.sizes(),
            "skipped_projects": list(summary.skipped_projects),
        }
        # Runs are kept by policy name; what (endpoint, project) each policy ran in is kept here (`ack` checks it).
        counts["scopes"] = {p.name: {"endpoint": p.endpoint, "project_id": p.project_id} for p in summary.policies}
        held = {p.name: p.gate.to_json() for p in summary.policies if p.change_held and p.gate is not None}
        if held:  # per policy held by the change gate: what `GET /v1/policies` and the gauge read after a restart
            counts["change_held"] = held
        ended_at = self._clock()
        await _guarded(
            "end_run", self.store.end_run(self.run_id, ended_at=ended_at, outcome=summary.outcome, counts=counts)
        )
        await _guarded("prune", self.store.prune(keep_days=self.keep_days, now=ended_at))

    async def run_closes(self) -> None:
        locks = [lock for name, lock in self.locks.items() if name in self._owned]  # held ones: their owner's
        self.locks, self._owned = {}, set()
        for lock in locks:
            try:
                await lock.release()
            except Exception as exc:  # the OS lock goes with the process anyway; say so and go on
                log.warning("run_lock_release_failed", policy=lock.policy, error=str(exc))

    async def planning_memory(self, selected: Sequence[Policy], now: datetime) -> PlanningMemory:
        return await _guarded("planning_memory", gate_state.read_memory(self.store, selected, self._endpoint_of, now))

    async def before_planning_ends(self, results: Sequence[PolicyResult], now: datetime) -> None:
        await _guarded("find_ack", gate_state.find_acks(self.store, results))

    async def settle_pending(self, result: PolicyResult, now: datetime) -> None:
        assert self.run_id is not None, "run_begins first"
        await _guarded("mark_pending", gate_state.settle_pending(self.store, self.run_id, result, now))


async def _guarded(operation: str, step: Awaitable[T]) -> T:
    """Await a store call; a `StateError` becomes `JournalUnavailable` (the runner's one failure of the seam)."""
    try:
        return await step
    except StateError as exc:
        raise JournalUnavailable(str(exc), operation=operation) from exc
