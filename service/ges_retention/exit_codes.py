"""Exit codes of the command line, and how several combine.

0 everything planned was deleted or already gone; 1 some listing or deletion failed or did not finish; 2 invalid
input, nothing was called; 3 a safety stop; 130/143 interrupted by SIGINT/SIGTERM after draining.
When several apply: 2 > 130/143 > 1 > 3 > 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

__all__ = ["ExitCode", "combine"]


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    INVALID = 2
    SAFETY_STOP = 3
    INTERRUPTED_SIGINT = 130
    INTERRUPTED_SIGTERM = 143


_PRECEDENCE = {
    ExitCode.OK: 0,
    ExitCode.SAFETY_STOP: 1,
    ExitCode.FAILED: 2,
    ExitCode.INTERRUPTED_SIGINT: 3,
    ExitCode.INTERRUPTED_SIGTERM: 3,
    ExitCode.INVALID: 4,
}


def combine(codes: Iterable[ExitCode]) -> ExitCode:
    """The code that wins when several apply."""
    return max(codes, key=_PRECEDENCE.__getitem__, default=ExitCode.OK)
