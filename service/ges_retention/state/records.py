"""The journal's records: plain frozen values, no database types. Every time is an aware UTC `datetime`.

A planned deletion moves through these states (one row per planning; a backup planned again after a terminal state
gets a new row, so `why` shows its whole story):

    pending --(due, intent batch)--> deleting --(DELETE outcome)--> deleted | already_deleted | failed | not_started
    (none)  --(intent batch)-------> deleting
    pending | (none) --(hold in force at the batch)--> cancelled  (closed reason `held: ...`)
    pending --(next run keeps it / it is absent)--> cancelled | gone
    deleting (its run known ended) --(trusted listing: absent)--> deleted; (present)--> not_started
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from ges_retention.state.errors import InvalidStateInput

__all__ = [
    "ACTIVE_STATES",
    "OUTCOME_STATES",
    "Ack",
    "BackupFacts",
    "Baseline",
    "DeletionRecord",
    "DeletionState",
    "Hold",
    "HoldSkip",
    "IntentBatch",
    "IntentTicket",
    "Outcome",
    "PlannedDeletion",
    "PruneReport",
    "Resolution",
    "RunRecord",
    "Scope",
    "StoreInfo",
    "WhyReport",
    "validate_backup_id",
    "validate_hold_reason",
]

DeletionState = Literal[
    "pending", "deleting", "deleted", "already_deleted", "failed", "not_started", "cancelled", "gone"
]
ALL_STATES: frozenset[str] = frozenset(get_args(DeletionState))
ACTIVE_STATES: frozenset[str] = frozenset({"pending", "deleting"})
"""States that are still in play: at most one such row per (policy, endpoint, project_id, backup_id)."""
OUTCOME_STATES: frozenset[str] = frozenset({"deleted", "already_deleted", "failed", "not_started"})
"""What a DELETE (or not sending it) turns a `deleting` row into."""

# The alphabet the GES client accepts for a path segment (`ges/client.py`); not only dots. Kept here, not imported:
# `state/` does not depend on `ges/`.
_BACKUP_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
HOLD_REASON_MAX = 200


def validate_backup_id(value: str) -> str:
    """`value` if it can be a GES backup id, else `InvalidStateInput` (a ValueError: exit 2, HTTP 400)."""
    if not isinstance(value, str) or _BACKUP_ID.fullmatch(value) is None or not value.strip("."):
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise InvalidStateInput(f"backup id {shown} is malformed: 1-128 characters of A-Z a-z 0-9 . _ ~ -")
    return value


def validate_hold_reason(value: str) -> str:
    """A hold's reason: 1-200 printable characters (no control characters, not only blanks)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidStateInput("a hold needs a reason: 1-200 printable characters")
    if len(value) > HOLD_REASON_MAX:
        raise InvalidStateInput(f"a hold's reason is at most {HOLD_REASON_MAX} characters, got {len(value)}")
    if not value.isprintable():
        raise InvalidStateInput("a hold's reason must be printable characters only (no newlines or control characters)")
    return value


@dataclass(frozen=True, slots=True)
class Scope:
    """What runs, deletions, baselines, acks and change digests are keyed by. `endpoint` is the effective GES base
    URL, so a rehearsal against an emulator never mixes with production."""

    policy: str
    endpoint: str
    project_id: str


@dataclass(frozen=True, slots=True)
class BackupFacts:
    """What the journal keeps of a backup when it is planned."""

    backup_id: str
    name: str = ""
    graph_id: str = ""
    graph_name: str = ""
    method: str = ""
    started_at: datetime | None = None
    size_mb: float | None = None


@dataclass(frozen=True, slots=True)
class PlannedDeletion:
    """One backup a plan deletes, with the planner's reasons."""

    backup: BackupFacts
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    trigger: str
    policies: tuple[str, ...]
    host: str
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = None
    counts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeletionRecord:
    """One row of the journal about one backup. `run_id` is the run that last moved it; `planned_run_id` the run
    that first planned it; `planned_at` when; `finished_at` when it reached a terminal state."""

    id: int
    scope: Scope
    backup: BackupFacts
    state: DeletionState
    reasons: tuple[str, ...]
    run_id: str
    planned_run_id: str
    planned_at: datetime
    updated_at: datetime
    pending_since: datetime | None = None
    finished_at: datetime | None = None
    request_id: str | None = None
    attempts: int = 0
    error: str | None = None
    closed_reasons: tuple[str, ...] = ()
    """Why a `cancelled` or `gone` row was closed without a DELETE (e.g. `held: ...`); `reasons` stay the planner's.
    Empty for rows closed before schema version 4, whose `reasons` were replaced by these."""


@dataclass(frozen=True, slots=True)
class IntentTicket:
    """A committed intent: send this DELETE, then report its outcome with `deletion_id`."""

    deletion_id: int
    backup_id: str


@dataclass(frozen=True, slots=True)
class HoldSkip:
    """A backup the intent batch did not commit because a hold was in force: its row is `cancelled`."""

    deletion_id: int
    backup_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class IntentBatch:
    committed: tuple[IntentTicket, ...]
    held: tuple[HoldSkip, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to a committed intent. `state` is one of `OUTCOME_STATES`."""

    deletion_id: int
    state: DeletionState
    request_id: str | None = None
    attempts: int = 0
    error: str | None = None

    def __post_init__(self) -> None:
        if self.state not in OUTCOME_STATES:
            raise ValueError(f"an outcome is one of {sorted(OUTCOME_STATES)}, got {self.state!r}")


@dataclass(frozen=True, slots=True)
class Resolution:
    """`deleting` rows of ended runs, resolved against a trusted listing."""

    deleted: tuple[str, ...]
    not_started: tuple[str, ...]
    unresolved: tuple[str, ...]
    """Rows of runs not known to have ended: left as they are."""


@dataclass(frozen=True, slots=True)
class Hold:
    backup_id: str
    reason: str
    until: datetime | None
    placed_at: datetime
    placed_by: str = ""

    def in_force(self, at: datetime) -> bool:
        return self.until is None or self.until > at

    def kept_reason(self) -> str:
        """The planner's reason text: `held: REASON` plus ` until ISO` when it ends."""
        if self.until is None:
            return f"held: {self.reason}"
        return f"held: {self.reason} until {self.until.isoformat().replace('+00:00', 'Z')}"


@dataclass(frozen=True, slots=True)
class Baseline:
    """What a policy last completed a real run with (see "Change gate"). `definition` and `overlap` are JSON values
    kept as given; `gate_digest` is the digest of that definition in that context."""

    definition: Any
    overlap: Any
    gate_digest: str
    run_id: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class Ack:
    digest: str
    by: str
    acked_at: datetime


@dataclass(frozen=True, slots=True)
class WhyReport:
    """Every journal record of one backup, oldest first, and its hold (in force or not)."""

    backup_id: str
    records: tuple[DeletionRecord, ...]
    hold: Hold | None

    @property
    def empty(self) -> bool:
        return not self.records and self.hold is None


@dataclass(frozen=True, slots=True)
class PruneReport:
    runs: int
    deletions: int
    holds: int
    acks: int


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What `open_store` found and did, for the caller to log (`state_created` when `created`) and for `plan`'s
    `"state": {"backend", "schema_version"}`."""

    backend: Literal["sqlite", "postgresql"]
    location: str
    """Where the state is, secrets removed: safe for logs and messages."""
    schema_version: int
    created: bool = False
    migrated_from: int | None = None
    in_memory: bool = False
    """`:memory:`: nothing survives the process (no holds, pending clocks or baselines)."""
