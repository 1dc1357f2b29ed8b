"""Smoke test of scenario 12 (CPU per delete, nothing pinned): it runs, every side deletes its whole sample, and the
figures the targets are held against are written. No target on the figures themselves: the sizes are tiny."""

from __future__ import annotations

import sys

import pytest
from bench.cpu_per_delete import run_cpu_per_delete

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the benchmarks read /proc"),
]


def test_cpu_per_delete_measures_the_service_both_bare_loops_and_the_journaled_loop_unpinned() -> None:
    result = run_cpu_per_delete(deletions=40, latency_ms=1, rounds=1, per_graph=20)
    assert set(result) >= {"parameters", "figures", "targets", "targets_met", "disturbance"}
    assert result["parameters"]["pinned"] is False
    figures = result["figures"]
    for key in ("service_deletes_per_s", "service_cpu_s_per_1000_deletes", "ceiling_deletes_per_s"):
        assert figures[key] > 0
    assert figures["ceiling_kind"] in ("bare", "bare_workers")
    assert figures["throughput_vs_ceiling"] is not None and figures["cpu_per_delete_vs_ceiling"] is not None
    assert set(figures["rounds"]) == {"service", "bare", "bare_workers", "bare_journal"}
    # The journaled loop is measured alongside (not a ceiling), and really journaled every deletion it sent.
    [journaled] = figures["runs"]["bare_journal"]
    assert journaled["deleted"] == 40 and journaled["journaled"] == 40
    assert figures["journaled_loop_cpu_s_per_1000_deletes"] > 0
    assert figures["cpu_per_delete_vs_journaled_loop"] is not None
    # One round: the median of the rounds' own ratios is that round's ratio, the best-of ratio too.
    assert figures["cpu_per_delete_vs_ceiling_paired_median"] == figures["cpu_per_delete_vs_ceiling"]
    names = {t["name"]: t for t in result["targets"]}
    assert set(names) == {"throughput_vs_ceiling", "cpu_per_delete_vs_ceiling", "all_deleted"}
    assert names["all_deleted"]["met"]
