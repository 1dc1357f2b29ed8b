"""Smoke test of the simulation benchmark at a tiny size: the figures are there (not a measure of anything)."""

from __future__ import annotations

import sys

import pytest
from bench.notes import notes
from bench.simulation import run_simulation_scenario

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the benchmarks read /proc"),
]


def test_simulation_runs_the_command_and_reports_its_figures() -> None:
    result = run_simulation_scenario(days=20)
    assert {"parameters", "figures", "targets", "targets_met", "disturbance"} <= set(result)
    figures = result["figures"]
    assert figures["inproc"]["runs"] == 20 and figures["inproc"]["days"] == 20
    assert figures["cli_wall_s"] > 0 and figures["svg_bytes"] > 0 and figures["steady_state"] > 0
    assert "simulate 20 days" in notes({"simulation": result})["simulation"]
