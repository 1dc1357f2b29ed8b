"""Smoke test of the cold-start benchmark: it runs the three commands and writes its figures (no timing asserted)."""

from __future__ import annotations

import sys

import pytest
from bench.cold_start import run_cold_start
from bench.notes import notes

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the benchmarks read /proc"),
]


def test_cold_start_times_the_three_commands_and_reports_their_medians() -> None:
    result = run_cold_start(runs=1)
    assert {"parameters", "figures", "targets", "targets_met", "disturbance"} <= set(result)
    figures = result["figures"]
    for name in ("python_pass", "version", "validate"):
        assert figures[f"{name}_s"] > 0 and len(figures["walls_s"][name]) == 1, name
    assert {t["name"] for t in result["targets"]} == {"version_s", "validate_s"}
    assert "--version" in notes({"cold_start": result})["cold_start"]
