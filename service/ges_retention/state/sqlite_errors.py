"""SQLite and filesystem errors sorted into misconfiguration (exit 2) and unavailability (exit 1)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ges_retention.state.errors import (
    StateError,
    StateLocationInvalid,
    StatePermissionDenied,
    StateUnavailable,
)

__all__ = ["classify"]

# Primary result codes (https://sqlite.org/rescode.html).
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR = 3, 5, 6, 8, 10
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_AUTH, SQLITE_NOTADB = 11, 13, 14, 23, 26


def classify(exc: BaseException, *, location: str, operation: str | None, path: Path | None) -> StateError:
    """The `StateError` for `exc`. The message is the library's own short text (it never contains a secret)."""
    what = f"the state at {location}"
    if isinstance(exc, PermissionError):
        return StatePermissionDenied(f"{what}: permission denied ({exc.strerror})", location=location)
    if isinstance(exc, NotADirectoryError | IsADirectoryError | FileExistsError):
        return StateLocationInvalid(f"{what} is not a usable file path ({exc.strerror})", location=location)
    if isinstance(exc, OSError):
        return StateUnavailable(f"{what} cannot be used now: {exc.strerror or exc}", location=location)
    if not isinstance(exc, sqlite3.Error):
        return StateUnavailable(f"{what} failed: {exc}", location=location, operation=operation)
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    message = str(exc)
    if code in (SQLITE_READONLY, SQLITE_PERM, SQLITE_AUTH):
        return StatePermissionDenied(f"{what} cannot be written: {message}", location=location, operation=operation)
    if code == SQLITE_CANTOPEN:
        if path is not None and not _accessible(path):
            return StatePermissionDenied(f"{what}: permission denied", location=location, operation=operation)
        return StateLocationInvalid(f"{what} cannot be opened: {message}", location=location, operation=operation)
    if code in (SQLITE_NOTADB, SQLITE_CORRUPT):
        return StateLocationInvalid(
            f"{what} is not a ges-retention state (or is damaged): {message}", location=location, operation=operation
        )
    # FULL, IOERR, BUSY, LOCKED, NOMEM and the rest: the state cannot be written now.
    return StateUnavailable(f"{what} failed during {operation}: {message}", location=location, operation=operation)


def _accessible(path: Path) -> bool:
    existing = path if path.exists() else path.parent
    want = os.R_OK | os.W_OK | (os.X_OK if existing.is_dir() else 0)
    return os.access(existing, want)
