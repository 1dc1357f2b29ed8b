"""Smoke test of the journal benchmark (scenario 10) at a tiny size: the three states each delete everything, and the
figures are there. Not a measure: no ratio is asserted."""

from __future__ import annotations

import sys

import bench.report
import pytest
from bench.journal import run_journal
from bench.notes import notes
from bench.scenarios import SCENARIOS

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the benchmarks read /proc"),
]


def test_the_journal_benchmark_runs_on_memory_sqlite_and_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench.report, "RUN_RETRIES", 0)
    result = run_journal(deletions=60, per_graph=20)
    figures = result["figures"]
    assert set(figures["deletes_per_s"]) == {"memory", "sqlite", "postgresql"}
    assert all(run["deleted"] == 60 for run in figures["runs"].values())
    assert figures["sqlite_vs_memory"] is not None and figures["postgresql_vs_memory"] is not None
    assert next(t for t in result["targets"] if t["name"] == "all_deleted")["met"]
    assert "of :memory:" in notes({"journal": result})["journal"]


def test_every_scenario_has_a_note() -> None:
    from bench import notes as notes_module

    assert set(SCENARIOS) <= set(notes_module._NOTES)
