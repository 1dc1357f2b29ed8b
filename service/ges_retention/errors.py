"""The one base of every error this program reports as a clear line instead of a traceback.

Policy files, settings, command-line usage, cron expressions, durations and backup records each have their own error
type (so that callers can catch what they expect), and all of them derive from `GesRetentionError`, so the command
line catches them once. `exit_code` says what the command exits with: 2 (invalid input, nothing was called) unless
the error type says otherwise.
"""

from __future__ import annotations

from typing import ClassVar

from ges_retention.exit_codes import ExitCode

__all__ = ["GesRetentionError", "NotFound", "UsageError", "shorten"]

_SHOWN_CHARS = 80


class GesRetentionError(Exception):
    """An error with a one-line message fit for an operator; `exit_code` is the command's exit code for it."""

    exit_code: ClassVar[ExitCode] = ExitCode.INVALID


class UsageError(GesRetentionError, ValueError):
    """Bad input from the command line (exit 2)."""


class NotFound(GesRetentionError):
    """What a command was asked about does not exist: `why` of a backup with no record, `release` of a backup that is
    not held (exit 1)."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILED


def shorten(value: object, limit: int = _SHOWN_CHARS) -> str:
    """`repr(value)` cut to a readable length: an error line quotes what was wrong, never a 100 KB value."""
    try:
        shown = repr(value)
    except ValueError:  # an int beyond Python's digit limit cannot even be printed
        shown = "a number of thousands of digits"
    if len(shown) > limit:
        shown = f"{shown[: limit - 3]}... ({len(shown)} characters)"
    return shown
