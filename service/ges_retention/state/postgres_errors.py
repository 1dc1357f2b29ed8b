"""asyncpg and socket errors sorted into misconfiguration (exit 2) and unavailability (exit 1).

Unreachable (refused, timed out, reset, a name that does not resolve, the server shutting down) is unavailable: it may
work later, and the daemon retries. A refused login, a missing database, a missing privilege or a malformed URL is
misconfiguration: it will not fix itself.
"""

from __future__ import annotations

import asyncpg

from ges_retention.state.errors import (
    StateAuthFailed,
    StateError,
    StateLocationInvalid,
    StatePermissionDenied,
    StateUnavailable,
)

__all__ = ["classify"]

_AUTH = (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)


def classify(exc: BaseException, *, location: str, operation: str | None) -> StateError:
    what = f"the state at {location}"
    if isinstance(exc, _AUTH):
        return StateAuthFailed(
            f"{what}: PostgreSQL refused the credentials ({exc.sqlstate})", location=location, operation=operation
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return StateLocationInvalid(f"{what}: the database does not exist", location=location, operation=operation)
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return StatePermissionDenied(
            f"{what}: the role lacks a privilege ({_first_line(exc)})", location=location, operation=operation
        )
    if isinstance(exc, asyncpg.DuplicateTableError):
        return StateLocationInvalid(
            f"{what}: the database holds other tables with the journal's names ({_first_line(exc)}); "
            "use a database of its own",
            location=location,
            operation=operation,
        )
    if isinstance(exc, asyncpg.ClientConfigurationError | ValueError):
        return StateLocationInvalid(f"{what}: the URL is not usable ({_first_line(exc)})", location=location)
    if isinstance(exc, OSError | TimeoutError):
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return StateUnavailable(f"{what} is unreachable: {reason}", location=location, operation=operation)
    if isinstance(exc, asyncpg.PostgresError):
        return StateUnavailable(
            f"{what} failed during {operation}: {_first_line(exc)} ({exc.sqlstate})",
            location=location,
            operation=operation,
        )
    return StateUnavailable(f"{what} failed during {operation}: {_first_line(exc)}", location=location)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
