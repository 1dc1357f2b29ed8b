"""The journal: what the service remembered doing, and the state its safety rules need.

Entry points: `resolve_state_location(GES_RETENTION_STATE)` -> `open_store(location, mode=...)` -> a `Store`.
Records are in `records.py`, errors (and which exit code each means) in `errors.py`, the gate digests in
`gate_digest.py`. Nothing outside `state/` should import a backend module directly.
"""

from ges_retention.state.errors import (
    DaemonLockHeld,
    InvalidStateInput,
    LeaseLost,
    LockHeld,
    RunLockTimeout,
    StateAuthFailed,
    StateError,
    StateLocationInvalid,
    StateMisconfigured,
    StateMissing,
    StatePermissionDenied,
    StateReadOnly,
    StateSchemaOutdated,
    StateSchemaTooNew,
    StateUnavailable,
)
from ges_retention.state.leases import DEFAULT_TTL_S, Lease, LeaseRow, PgLeases, Taken
from ges_retention.state.location import MEMORY, StateLocation, resolve_state_location
from ges_retention.state.locks import DaemonLock, RunLock, default_holder
from ges_retention.state.migrations import CURRENT_VERSION
from ges_retention.state.opening import OpenMode, open_store
from ges_retention.state.records import (
    Ack,
    BackupFacts,
    Baseline,
    DeletionRecord,
    DeletionState,
    Hold,
    HoldSkip,
    IntentBatch,
    IntentTicket,
    Outcome,
    PlannedDeletion,
    PruneReport,
    Resolution,
    RunRecord,
    Scope,
    StoreInfo,
    WhyReport,
    validate_backup_id,
    validate_hold_reason,
)
from ges_retention.state.store import Store

__all__ = [
    "CURRENT_VERSION",
    "DEFAULT_TTL_S",
    "MEMORY",
    "Ack",
    "BackupFacts",
    "Baseline",
    "DaemonLock",
    "DaemonLockHeld",
    "DeletionRecord",
    "DeletionState",
    "Hold",
    "HoldSkip",
    "IntentBatch",
    "IntentTicket",
    "InvalidStateInput",
    "Lease",
    "LeaseLost",
    "LeaseRow",
    "LockHeld",
    "OpenMode",
    "Outcome",
    "PgLeases",
    "PlannedDeletion",
    "PruneReport",
    "Resolution",
    "RunLock",
    "RunLockTimeout",
    "RunRecord",
    "Scope",
    "StateAuthFailed",
    "StateError",
    "StateLocation",
    "StateLocationInvalid",
    "StateMisconfigured",
    "StateMissing",
    "StatePermissionDenied",
    "StateReadOnly",
    "StateSchemaOutdated",
    "StateSchemaTooNew",
    "StateUnavailable",
    "Store",
    "StoreInfo",
    "Taken",
    "WhyReport",
    "default_holder",
    "open_store",
    "resolve_state_location",
    "validate_backup_id",
    "validate_hold_reason",
]
