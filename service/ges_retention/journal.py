"""The runner's one seam to the state: `RunJournal`, the awaited write-ahead steps of a run.

The runner talks to the state only through this seam (and the gates that plug into it). A journal is two things:
- a `RunEvents` subscriber (`events.py`) for what it only records (it hears every event of the run, like the log);
- the awaited steps the runner calls at fixed points of a run, in this order:

    run_begins(run_id, trigger, policies, dry_run)       before any listing: the run's row (`start_run`)
    before_planning(selected, listings, now)             listings are in, nothing planned yet: the trusted
                                                         listings resolve `deleting` rows of ended runs
    before_planning_ends(results, now)                   plans made, nothing deleted: THE POINT where gates act on
                                                         plans (holds, pending clocks, change gate)
    before_batch(result, decisions)  -> BatchVerdict     before each batch of at most GES_RETENTION_CONCURRENCY
                                                         DELETEs: intents committed in one transaction that re-checks
                                                         holds (and, with leases, fencing). Only `send` items get a
                                                         DELETE; `held` items are kept (reason `held: ...`)
    after_deletion(result, decision, ticket, deletion)   each committed intent's outcome (request id, attempts)
    run_ends(summary)                                    the run's end, outcome and counts

Any step may raise `JournalUnavailable` (the state cannot be written): from then on the runner sends no further
DELETE, what is left is `not_started`, `state_unavailable` is logged and the run exits 1. `NullJournal` is the
journal of a process without a state (unit tests, `plan --from-file`): every step succeeds and records nothing.
`StateJournal` is the journal over a `state.Store`; `service.py` builds one per run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, TypeVar

import structlog

from ges_retention.backup import Backup
from ges_retention.errors import GesRetentionError
from ges_retention.events import Deletion, NullRunEvents, RunEvents
from ges_retention.exit_codes import ExitCode
from ges_retention.policy import Policy
from ges_retention.retention import Decision
from ges_retention.state import (
    BackupFacts,
    IntentTicket,
    LeaseLost,
    Outcome,
    PlannedDeletion,
    RunRecord,
    Scope,
    StateError,
    Store,
    default_holder,
)
from ges_retention.summary import PolicyResult, RunSummary, Trigger

__all__ = [
    "BatchVerdict",
    "JournalUnavailable",
    "NullJournal",
    "PolicyStopped",
    "RunJournal",
    "StateJournal",
    "backup_facts",
    "scope_of",
]

log = structlog.get_logger("ges_retention.runner")
T = TypeVar("T")


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


@dataclass(frozen=True, slots=True)
class BatchVerdict:
    """What may happen to one batch: `send` maps a backup id to the ticket its outcome is reported with; `held`
    maps a backup id to the reason a hold in force keeps it (`held: ...`). A backup in neither gets no DELETE."""

    send: Mapping[str, object] = field(default_factory=dict)
    held: Mapping[str, str] = field(default_factory=dict)


class RunJournal(RunEvents, Protocol):
    """The awaited steps of a run (see the module's docstring for when each is called)."""

    async def run_begins(self, run_id: str, trigger: Trigger, policies: Sequence[str], dry_run: bool) -> None: ...

    async def before_planning(
        self, selected: Sequence[Policy], listings: Mapping[str, Sequence[Backup] | None], now: datetime
    ) -> None: ...

    async def before_planning_ends(self, results: Sequence[PolicyResult], now: datetime) -> None: ...

    async def before_batch(self, result: PolicyResult, decisions: Sequence[Decision]) -> BatchVerdict: ...

    async def after_deletion(
        self, result: PolicyResult, decision: Decision, ticket: object, deletion: Deletion
    ) -> None: ...

    async def run_ends(self, summary: RunSummary) -> None: ...


class NullJournal(NullRunEvents):
    """No state: every deletion may be sent, nothing is recorded."""

    __slots__ = ()

    async def run_begins(self, run_id: str, trigger: Trigger, policies: Sequence[str], dry_run: bool) -> None:
        pass

    async def before_planning(
        self, selected: Sequence[Policy], listings: Mapping[str, Sequence[Backup] | None], now: datetime
    ) -> None:
        pass

    async def before_planning_ends(self, results: Sequence[PolicyResult], now: datetime) -> None:
        pass

    async def before_batch(self, result: PolicyResult, decisions: Sequence[Decision]) -> BatchVerdict:
        return BatchVerdict(send={d.backup.id: None for d in decisions})

    async def after_deletion(
        self, result: PolicyResult, decision: Decision, ticket: object, deletion: Deletion
    ) -> None:
        pass

    async def run_ends(self, summary: RunSummary) -> None:
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
    """The journal of one run over a `Store` (one per run: it keeps the run's id)."""

    __slots__ = ("_clock", "_endpoint_of", "holder", "run_id", "store")

    def __init__(
        self,
        store: Store,
        *,
        endpoint_of: Callable[[Policy], str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        holder: str | None = None,
    ) -> None:
        self.store = store
        self._endpoint_of = endpoint_of
        self._clock = clock
        self.holder = holder or default_holder()
        self.run_id: str | None = None

    async def run_begins(self, run_id: str, trigger: Trigger, policies: Sequence[str], dry_run: bool) -> None:
        self.run_id = run_id
        record = RunRecord(run_id, trigger, tuple(policies), host=self.holder, started_at=self._clock())
        await _guarded("start_run", self.store.start_run(record))

    async def before_batch(self, result: PolicyResult, decisions: Sequence[Decision]) -> BatchVerdict:
        assert self.run_id is not None, "run_begins first"
        items = [PlannedDeletion(backup_facts(d.backup), tuple(d.reasons)) for d in decisions]
        lease = None
        if self.store.leases is not None:  # PostgreSQL: the batch is fenced by the policy's lease
            lease = self.store.leases.lease(result.name)
            if lease is None:
                log.error("lease_lost", policy=result.name, holder=None, reason="not held")
                raise PolicyStopped(result.name)
        try:
            batch = await self.store.write_intents(self.run_id, scope_of(result), items, lease=lease)
        except LeaseLost as exc:
            log.error("lease_lost", policy=result.name, holder=exc.holder, reason="fenced")
            raise PolicyStopped(result.name) from exc
        except StateError as exc:
            if lease is not None and self.store.leases is not None and not self.store.leases.valid(result.name):
                # Frozen past its lease (the server ended the session meanwhile): the lease is what failed.
                log.error("lease_lost", policy=result.name, holder=None, reason="not valid on the local clock")
                raise PolicyStopped(result.name) from exc
            raise JournalUnavailable(str(exc), operation="write_intents") from exc
        return BatchVerdict(
            send={ticket.backup_id: ticket for ticket in batch.committed},
            held={skip.backup_id: skip.reason for skip in batch.held},
        )

    async def after_deletion(
        self, result: PolicyResult, decision: Decision, ticket: object, deletion: Deletion
    ) -> None:
        if not isinstance(ticket, IntentTicket):
            return
        outcome = Outcome(
            ticket.deletion_id,
            deletion.outcome,
            request_id=deletion.request_id,
            attempts=deletion.attempts,
            error=deletion.error,
        )
        await _guarded("record_outcomes", self.store.record_outcomes([outcome]))

    async def run_ends(self, summary: RunSummary) -> None:
        if self.run_id is None:
            return
        counts: dict[str, Any] = {**summary.counts(), "skipped_projects": list(summary.skipped_projects)}
        await _guarded(
            "end_run", self.store.end_run(self.run_id, ended_at=self._clock(), outcome=summary.outcome, counts=counts)
        )

    async def before_planning(
        self, selected: Sequence[Policy], listings: Mapping[str, Sequence[Backup] | None], now: datetime
    ) -> None:
        pass

    async def before_planning_ends(self, results: Sequence[PolicyResult], now: datetime) -> None:
        pass


async def _guarded(operation: str, step: Awaitable[T]) -> T:
    """Await a store call; a `StateError` becomes `JournalUnavailable` (the runner's one failure of the seam)."""
    try:
        return await step
    except StateError as exc:
        raise JournalUnavailable(str(exc), operation=operation) from exc
