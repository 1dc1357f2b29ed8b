"""Smoke test of the benchmarks: every scenario's function at a tiny size, against real processes (the emulator,
the service's CLI, the SDK peers), checking that the figures are there and that the deletions happened.

Not a measure of anything: the sizes are far too small for the figures to mean much, so no target is asserted
except "everything was deleted / listed".
"""

from __future__ import annotations

import sys
from typing import Any

import bench.report
import pytest
from bench.auto_rate import run_auto_rate
from bench.emulator_seeding import run_emulator_seeding
from bench.listing import run_listing
from bench.planning import run_planning_scenario
from bench.rate_limit import run_rate_limit
from bench.unthrottled import run_unthrottled
from bench.zero_latency import run_zero_latency

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the benchmarks read /proc"),
]


@pytest.fixture(autouse=True)
def _no_reruns(monkeypatch: pytest.MonkeyPatch) -> None:
    """One attempt per measured run: the suite may well be busy, and these figures are not looked at."""
    monkeypatch.setattr(bench.report, "RUN_RETRIES", 0)


def _target(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in result["targets"] if t["name"] == name)


def _check_shape(result: dict[str, Any]) -> None:
    assert set(result) >= {"parameters", "figures", "targets", "targets_met", "disturbance"}
    assert result["targets"]
    assert all({"name", "value", "target", "met"} <= set(t) for t in result["targets"])


def test_rate_limit_deletes_everything_within_the_limit() -> None:
    result = run_rate_limit(deletions=50, latency_ms=5, rate=200, concurrency=8, emulator_limit=220, per_graph=20)
    _check_shape(result)
    figures = result["figures"]
    assert figures["service"]["deleted"] == 50
    assert figures["service"]["emulator"]["requests"]["delete_backup"] == {"200": 50}
    assert figures["achieved_deletes_per_s"] > 0
    assert figures["fraction_of_rate"] is not None
    assert figures["responses_429"] == 0
    assert _target(result, "all_deleted")["met"]


def test_unthrottled_measures_the_service_the_sdk_and_the_ceiling() -> None:
    result = run_unthrottled(deletions=50, latency_ms=1, sdk_loop_sample=10, sdk_async_sample=20, per_graph=20)
    _check_shape(result)
    figures = result["figures"]
    runs = figures["runs"]
    assert set(runs) == {"service", "bare", "bare_workers", "sdk_async", "sdk_loop"}
    assert runs["service"]["deleted"] == 50
    assert runs["service"]["emulator"]["requests"]["delete_backup"] == {"200": 50}
    for kind, sample in (("bare", 50), ("bare_workers", 50), ("sdk_async", 20), ("sdk_loop", 10)):
        assert runs[kind]["deleted"] == sample, kind
        assert runs[kind]["emulator"]["requests"]["delete_backup"] == {"200": sample}, kind
    for key in ("service_deletes_per_s", "service_cpu_s_per_1000_deletes", "ceiling_deletes_per_s"):
        assert figures[key] > 0, key
    assert all(value is not None for value in figures["ratios"].values())
    assert _target(result, "all_deleted")["met"]


def test_zero_latency_deletes_everything() -> None:
    result = run_zero_latency(deletions=50, per_graph=20)
    _check_shape(result)
    figures = result["figures"]
    assert figures["runs"]["service"]["deleted"] == 50
    assert figures["deletes_per_s"] > 0
    assert figures["throughput_vs_ceiling"] is not None
    assert _target(result, "all_deleted")["met"]


def test_listing_lists_and_plans_every_backup() -> None:
    result = run_listing(graphs=5, per_graph=10, latency_ms=0, page_sizes=(20,))
    _check_shape(result)
    figures = result["figures"]["page_size_20"]
    assert figures["listed"] == 50
    assert figures["pages"] == 3
    assert figures["peak_rss_mb"] > 0
    assert figures["list_and_plan_s"] > 0
    assert result["targets_met"]


def test_planning_plans_and_reports_the_json_cost() -> None:
    result = run_planning_scenario(graphs=20, per_graph=40)
    _check_shape(result)
    figures = result["figures"]
    assert figures["runs"]["values"]["backups"] == 800
    assert figures["runs"]["from_json"]["backups"] == 800
    assert figures["planned_deletions"] > 0
    assert figures["plan_s"] >= 0 and figures["peak_rss_mb"] > 0


def test_emulator_seeding_stores_what_it_seeds() -> None:
    result = run_emulator_seeding(graphs=20, per_graph=10)
    _check_shape(result)
    assert result["figures"]["backups"] == result["figures"]["stored"] == result["figures"]["listed_total"] == 200
    assert result["figures"]["graphs"] == 20
    assert _target(result, "stored")["met"]


def test_auto_rate_finds_the_limit_and_writes_its_figures() -> None:
    result = run_auto_rate(deletions=60, limits=(60,), second_run_s=0.5, latency_ms=1, concurrency=8, per_graph=20)
    _check_shape(result)
    figures = result["figures"]["limits"]["60"]
    assert figures["first_run"]["deleted"] == 60
    assert figures["second_run"]["deleted"] == 50
    assert figures["requests"] >= 60
    for key in ("rate_after_10s_share", "responses_429_share", "second_run_start_share", "learned_rate_per_s"):
        assert key in figures, key
    assert figures["second_run_start_share"] is not None
    assert _target(result, "L60_all_deleted")["met"]
