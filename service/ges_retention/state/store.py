"""`Store`: what the runner, daemon and commands may ask of the journal. Both backends implement it with the same
behaviour (one contract test suite runs against both: `tests/state/`).

Every method may raise `StateUnavailable` (exit 1; mid-run: send no further DELETE) or `StateMisconfigured` (exit 2).
Times are aware datetimes; `now=None` means the store's injected clock. Writes through a store opened `read_only`
raise `StateReadOnly`. Nothing here knows HTTP or policies: callers pass names, digests and JSON values.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from ges_retention.state.leases import Lease, PgLeases
from ges_retention.state.locks import DaemonLock, RunLock
from ges_retention.state.records import (
    Ack,
    Baseline,
    DeletionRecord,
    Hold,
    IntentBatch,
    Outcome,
    PlannedDeletion,
    PruneReport,
    Resolution,
    RunRecord,
    Scope,
    StoreInfo,
    WhyReport,
)

__all__ = ["Store"]


class Store(Protocol):
    info: StoreInfo
    read_only: bool
    leases: PgLeases | None
    """PostgreSQL: this process's leases (several replicas); SQLite: None."""

    async def close(self) -> None: ...

    # Locks ------------------------------------------------------------------------------------------------------
    async def try_run_lock(self, policy: str) -> RunLock | None:
        """The policy's run lock now, or None when held (by any process, or by another run of this one)."""
        ...

    async def acquire_run_lock(self, policy: str, *, timeout_s: float = 0.0) -> RunLock:
        """Wait up to `timeout_s` (GES_RETENTION_STATE_LOCK_TIMEOUT_S for a one-shot `run`; 0 for a daemon fire),
        polling through the injected sleep; `RunLockTimeout` names the holder. Released if the process dies."""
        ...

    async def run_lock_holder(self, policy: str) -> str | None:
        """`host:pid` of the live holder, or None when free."""
        ...

    async def acquire_daemon_lock(self) -> DaemonLock:
        """SQLite: one daemon per file, else `DaemonLockHeld` naming the first (exit 2). PostgreSQL: no exclusion."""
        ...

    # Runs -------------------------------------------------------------------------------------------------------
    async def start_run(self, run: RunRecord) -> None:
        """Record a run's start (id, trigger, policies, host, started_at). A duplicate id is `ValueError`."""
        ...

    async def end_run(self, run_id: str, *, ended_at: datetime, outcome: str, counts: Mapping[str, Any]) -> bool:
        """Record its end; False if the run is unknown. A recorded end makes its `deleting` rows resolvable."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def list_runs(
        self, *, policy: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        """Newest first."""
        ...

    async def history(
        self, *, policy: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[RunRecord]: ...

    # Planned deletions ------------------------------------------------------------------------------------------
    async def active_deletions(self, scope: Scope) -> list[DeletionRecord]:
        """`pending` and `deleting` rows of the scope: the planner's pending clocks; unresolved intents."""
        ...

    async def mark_pending(
        self, run_id: str, scope: Scope, items: Sequence[PlannedDeletion], *, now: datetime | None = None
    ) -> dict[str, datetime]:
        """Start a pending clock (`pending_since`: the database clock on PostgreSQL) for items without one; returns
        `pending_since` of every item with a pending row. One transaction."""
        ...

    async def cancel_pending(
        self,
        run_id: str,
        scope: Scope,
        reasons_by_id: Mapping[str, Sequence[str]],
        *,
        state: str = "cancelled",
        now: datetime | None = None,
    ) -> int:
        """`pending` rows of these backups become `cancelled` (kept now) or `gone` (absent); the number changed."""
        ...

    async def write_intents(
        self,
        run_id: str,
        scope: Scope,
        items: Sequence[PlannedDeletion],
        *,
        now: datetime | None = None,
        lease: Lease | None = None,
    ) -> IntentBatch:
        """ONE transaction: each item becomes `deleting` (its pending row moves, or a new row), except a backup with
        a hold in force at that moment, which becomes `cancelled` with reason `held: ...`. Send a DELETE only for
        `committed`, and only after this returns. With `lease` (PostgreSQL: the run lock's `lease`), the batch
        commits only if that lease is still held at its generation, else `LeaseLost` and nothing is written."""
        ...

    async def record_outcomes(self, outcomes: Sequence[Outcome], *, now: datetime | None = None) -> None:
        """Outcomes of committed intents (one transaction). A row no longer `deleting` is left alone."""
        ...

    async def resolve_deleting(
        self,
        run_id: str,
        scope: Scope,
        listed_ids: Collection[str],
        *,
        lock: RunLock | None = None,
        now: datetime | None = None,
    ) -> Resolution:
        """Given a TRUSTED listing's ids: `deleting` rows of other runs known to have ended (end recorded, or the
        caller holds this policy's run lock from this store) become `deleted` (absent) or `not_started` (present).
        Other rows are left `unresolved`. Never sends or plans anything."""
        ...

    async def pending_counts(self) -> dict[str, int]: ...

    # Holds ------------------------------------------------------------------------------------------------------
    async def put_hold(
        self, backup_id: str, reason: str, *, until: datetime | None = None, by: str = "", now: datetime | None = None
    ) -> Hold:
        """Place or replace; `ValueError` for a malformed id or a reason that is not 1-200 printable characters."""
        ...

    async def release_hold(self, backup_id: str, *, now: datetime | None = None) -> bool:
        """False when no hold was in force."""
        ...

    async def get_hold(self, backup_id: str) -> Hold | None: ...

    async def list_holds(self, *, at: datetime | None = None) -> list[Hold]: ...

    async def holds_in_force(self, *, at: datetime | None = None) -> dict[str, Hold]: ...

    # Change gate, run_on_change, rates --------------------------------------------------------------------------
    async def get_baseline(self, scope: Scope) -> Baseline | None: ...

    async def put_baseline(
        self, scope: Scope, *, definition: Any, overlap: Any, gate_digest: str, run_id: str, now: datetime | None = None
    ) -> None: ...

    async def put_ack(self, scope: Scope, digest: str, *, by: str, now: datetime | None = None) -> Ack: ...

    async def find_ack(self, scope: Scope, digest: str) -> Ack | None: ...

    async def get_change_digest(self, scope: Scope) -> str | None: ...

    async def put_change_digest(
        self, scope: Scope, digest: str, *, run_id: str, now: datetime | None = None
    ) -> None: ...

    async def get_rate(self, endpoint: str, project_id: str) -> float | None: ...

    async def put_rate(
        self, endpoint: str, project_id: str, rate_per_s: float, *, now: datetime | None = None
    ) -> None: ...

    # Audit and upkeep -------------------------------------------------------------------------------------------
    async def why(self, backup_id: str) -> WhyReport:
        """Every record of the backup oldest first, and its hold; `.empty` -> `why` exits 1."""
        ...

    async def prune(self, *, keep_days: int, now: datetime | None = None) -> PruneReport:
        """After a run, never before a DELETE: see `SqlStore.prune` for what is kept."""
        ...
