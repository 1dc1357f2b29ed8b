from __future__ import annotations

import pytest

from ges_retention.exit_codes import ExitCode, combine

E = ExitCode


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([], E.OK),
        ([E.OK, E.SAFETY_STOP], E.SAFETY_STOP),
        ([E.SAFETY_STOP, E.FAILED], E.FAILED),
        ([E.FAILED, E.INTERRUPTED_SIGTERM], E.INTERRUPTED_SIGTERM),
        ([E.INTERRUPTED_SIGINT, E.FAILED, E.SAFETY_STOP], E.INTERRUPTED_SIGINT),
        ([E.INTERRUPTED_SIGTERM, E.INVALID], E.INVALID),
    ],
)
def test_precedence_is_2_then_130_143_then_1_then_3_then_0(codes: list[ExitCode], expected: ExitCode) -> None:
    assert combine(codes) == expected
