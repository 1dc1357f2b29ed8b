"""What can go wrong with the state, sorted by what the caller must do about it.

    StateError                      every error of `state/`; `location` is the resolved location, secrets removed
    ├── StateMisconfigured          exit 2 before any request: fix the setting or the state
    │   ├── StateLocationInvalid    a bad URL or path (unsupported scheme, a directory, not a database, network fs)
    │   ├── StatePermissionDenied   the file or directory cannot be read/written, or the role lacks a privilege
    │   ├── StateAuthFailed         PostgreSQL refused the credentials
    │   ├── StateSchemaTooNew       written by a newer program: never touched
    │   ├── StateSchemaOutdated     a command that needs a current state found an older one (only `run`/`daemon`
    │   │                           migrate)
    │   ├── StateMissing            a command that needs an existing state found none (or `:memory:`)
    │   └── StateReadOnly           a write through a read-only store (`plan`): a programming error, loudly
    ├── StateUnavailable            exit 1 / `state_unavailable`: PostgreSQL unreachable, a write failed (disk
    │                               full, I/O error, lock timeout inside the database). Retry later; mid-run: no
    │                               further DELETE.
    ├── LockHeld                    somebody else holds a lock; `holder` names it (host:pid) when known
    │   ├── RunLockTimeout          a run lock stayed held for the whole wait: a one-shot `run` exits 1
    │   └── DaemonLockHeld          a second daemon on the same SQLite file: exit 2
    └── LeaseLost                   PostgreSQL: this process no longer holds the policy's lease at its generation
                                    (expired, taken over, released): no further DELETE of that policy
    InvalidStateInput               (a ValueError) a malformed backup id, hold reason or hold end: exit 2 / HTTP 400

All derive from `GesRetentionError` (`ges_retention/errors.py`), whose `exit_code` the command line uses.

Messages never contain a password: every one names `location`, which is the redacted form.
"""

from __future__ import annotations

from typing import ClassVar

from ges_retention.errors import GesRetentionError
from ges_retention.exit_codes import ExitCode

__all__ = [
    "DaemonLockHeld",
    "InvalidStateInput",
    "LeaseLost",
    "LockHeld",
    "RunLockTimeout",
    "StateAuthFailed",
    "StateError",
    "StateLocationInvalid",
    "StateMisconfigured",
    "StateMissing",
    "StatePermissionDenied",
    "StateReadOnly",
    "StateSchemaOutdated",
    "StateSchemaTooNew",
    "StateUnavailable",
]


class StateError(GesRetentionError):
    exit_code: ClassVar[ExitCode] = ExitCode.INVALID

    def __init__(self, message: str, *, location: str, operation: str | None = None) -> None:
        super().__init__(message)
        self.location = location
        self.operation = operation


class StateMisconfigured(StateError):
    """Exit 2: the setting or the state itself is wrong; retrying will not help."""


class StateLocationInvalid(StateMisconfigured):
    pass


class StatePermissionDenied(StateMisconfigured):
    pass


class StateAuthFailed(StateMisconfigured):
    pass


class StateSchemaTooNew(StateMisconfigured):
    def __init__(self, message: str, *, location: str, found: int, supported: int) -> None:
        super().__init__(message, location=location)
        self.found = found
        self.supported = supported


class StateSchemaOutdated(StateMisconfigured):
    def __init__(self, message: str, *, location: str, found: int, supported: int) -> None:
        super().__init__(message, location=location)
        self.found = found
        self.supported = supported


class StateMissing(StateMisconfigured):
    pass


class StateReadOnly(StateMisconfigured):
    pass


class StateUnavailable(StateError):
    """Exit 1 / `state_unavailable`: the state cannot be reached or written now; it may work later."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILED


class LockHeld(StateError):
    exit_code: ClassVar[ExitCode] = ExitCode.FAILED

    def __init__(self, message: str, *, location: str, name: str, holder: str | None) -> None:
        super().__init__(message, location=location)
        self.name = name
        self.holder = holder


class RunLockTimeout(LockHeld):
    pass


class DaemonLockHeld(LockHeld):
    exit_code: ClassVar[ExitCode] = ExitCode.INVALID


class LeaseLost(StateError):
    """The fencing check failed: the batch was rolled back, and the policy's run must send no further DELETE."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILED

    def __init__(self, message: str, *, location: str, policy: str, holder: str | None, generation: int) -> None:
        super().__init__(message, location=location)
        self.policy = policy
        self.holder = holder
        self.generation = generation


class InvalidStateInput(GesRetentionError, ValueError):
    """Exit 2 (HTTP 400): input to the journal that can never be right, e.g. `hold` of a malformed backup id."""
