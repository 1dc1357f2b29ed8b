"""Rendering of two-phase clocks, the change gate and the state: `plan`'s JSON and table, `run`'s summary."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta

from ges_retention.backup import Backup
from ges_retention.events import LoggingEvents, MetricsEvents
from ges_retention.gates import PolicyMemory, apply_gates
from ges_retention.listing_trust import trusted_backups
from ges_retention.metrics import Metrics
from ges_retention.policy_loading import parse_policy_text
from ges_retention.project_scope import ProjectScope
from ges_retention.report import render_json, render_summary_text, render_table
from ges_retention.runner_planning import plan_listings
from ges_retention.summary import PolicyResult, RunSummary, exit_code, policy_outcome
from support.logs import capture_events

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
BACKUPS = [
    Backup(f"b{d:02d}", "g1", "success", int((NOW - timedelta(days=d, hours=3)).timestamp() * 1000), graph_name="g")
    for d in range(8)
]
TEXT = """
    version: 1
    policies:
      - name: nightly
        project_id: proj1
        keep: {{last: 2}}
        safety: {{min_keep: 0, {safety}}}
"""


def _results(safety: str, memory: dict[str, PolicyMemory] | None = None) -> list[PolicyResult]:
    loaded = parse_policy_text(textwrap.dedent(TEXT.format(safety=safety)), source="t.yaml")
    listings = {ProjectScope("", "proj1"): trusted_backups(BACKUPS)}
    results = plan_listings(loaded, loaded.policies, listings, NOW, dry_run=True)
    apply_gates(loaded, results, lambda p: listings[p].backups, NOW, memory=memory)
    return results


def test_plan_json_gives_each_deletion_its_clock_and_the_state() -> None:
    since = NOW - timedelta(days=3)
    results = _results("confirm_after: 2d, change_budget: unlimited", {"nightly": PolicyMemory({"b02": since})})
    document = json.loads(render_json(results, NOW, {"backend": "sqlite", "schema_version": 3}))
    assert document["state"] == {"backend": "sqlite", "schema_version": 3}
    (policy,) = document["policies"]
    assert policy["change_held"] is None
    decisions = {d["backup_id"]: d for d in policy["decisions"]}
    assert {k: decisions["b02"][k] for k in ("action", "pending_since", "due_at", "due")} == {
        "action": "delete",
        "pending_since": "2026-11-24T12:00:00Z",
        "due_at": "2026-11-26T12:00:00Z",
        "due": True,
    }
    assert {k: decisions["b03"][k] for k in ("pending_since", "due_at", "due")} == {
        "pending_since": None,
        "due_at": "2026-11-29T12:00:00Z",
        "due": False,
    }
    assert "due" not in decisions["b00"]  # a kept backup has no clock


def test_plan_json_without_two_phase_or_state() -> None:
    document = json.loads(render_json(_results("change_budget: 100"), NOW))
    assert document["state"] is None
    deletion = next(d for d in document["policies"][0]["decisions"] if d["action"] == "delete")
    assert (deletion["pending_since"], deletion["due_at"], deletion["due"]) == (None, None, True)


def test_the_table_shows_pending_with_its_due_time_and_delete_when_due() -> None:
    since = NOW - timedelta(days=3)
    results = _results("confirm_after: 2d, change_budget: unlimited", {"nightly": PolicyMemory({"b02": since})})
    table = render_table(results, NOW)
    rows = {line.split()[2]: line for line in table.splitlines() if line.startswith("  ") and "b0" in line}
    assert rows["b02"].split()[0] == "DELETE"
    assert rows["b03"].split()[0] == "PENDING" and rows["b03"].endswith("expired, due 2026-11-29 12:00")
    assert "=> keep 2, delete 6 (1 due, 5 pending)" in table
    collapsed = render_table(results, NOW, collapse=4)
    assert any(line.split()[:4] == ["PENDING", "g", "5", "backups"] for line in collapsed.splitlines())


def test_a_held_policy_shows_the_gate_in_json_table_summary_and_exit_code() -> None:
    results = _results("change_budget: 5")
    (result,) = results
    assert result.change_held
    document = json.loads(render_json(results, NOW))
    assert document["policies"][0]["change_held"] == {"extra": 6, "budget": 5, "digest": result.gate.digest}  # type: ignore[union-attr]
    table = render_table(results, NOW)
    assert "!! CHANGE HELD: 6 deletions with no baseline (a first run) exceed safety.change_budget=5" in table
    assert f"--digest {result.gate.digest}" in table  # type: ignore[union-attr]
    assert int(exit_code(results)) == 3
    assert policy_outcome(result, interrupted=False) == "change_held"
    result.outcome = "change_held"
    text = render_summary_text(RunSummary("r1", "cli", False, results))
    assert "nightly: change_held" in text and "(change held: 6 extra deletions > change_budget 5" in text
    assert result.to_json()["change_held"] == {"extra": 6, "budget": 5, "digest": result.gate.digest}  # type: ignore[union-attr]


def test_run_counts_gain_pending() -> None:
    result = PolicyResult("nightly", "proj1")
    result.record("pending", "b1")
    result.record("deleted", "b2")
    summary = RunSummary("r1", "cli", False, [result])
    assert summary.counts()["pending"] == 1 and result.to_json()["ids"]["pending"] == ["b1"]
    assert "pending 1" in render_summary_text(summary)


def test_policy_planned_and_the_metrics_carry_the_gate_and_the_clocks() -> None:
    (held,) = _results("change_budget: 5, confirm_after: 2d")
    metrics = Metrics()
    with capture_events() as logs:
        LoggingEvents().policy_planned(held, NOW)
        MetricsEvents(metrics).policy_planned(held, NOW)
    (planned,) = logs.named("policy_planned")
    assert {k: planned[k] for k in ("kept", "planned", "due", "pending", "holds", "change_held")} == {
        "kept": 2,
        "planned": 6,
        "due": 0,
        "pending": 0,  # a held run records no pending row (`policy_finished` says 0 too)
        "holds": 0,
        "change_held": True,
    }
    assert metrics.registry.get_sample_value("ges_retention_policy_change_held", {"policy": "nightly"}) == 1

    (acting,) = _results("change_budget: unlimited, confirm_after: 2d")
    acting.dry_run = False
    with capture_events() as logs:
        LoggingEvents().policy_planned(acting, NOW)
    (planned,) = logs.named("policy_planned")
    assert (planned["due"], planned["pending"], planned["change_held"]) == (0, 6, False)
    for decision in acting.waiting:
        acting.record("pending", decision.backup.id)
    MetricsEvents(metrics).policy_planned(acting, NOW)
    MetricsEvents(metrics).policy_finished(acting, 0.1)
    assert metrics.registry.get_sample_value("ges_retention_policy_change_held", {"policy": "nightly"}) == 0
    assert metrics.registry.get_sample_value("ges_retention_pending_deletions", {"policy": "nightly"}) == 6
