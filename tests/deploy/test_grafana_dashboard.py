"""deploy/grafana/ges-retention.json: every query names only metrics the service exports and parses as PromQL.

The exported names come from a real `Metrics().render()` after every metric has a series; the parse is promtool's
(`promtool check rules` on the queries written as recording rules, Grafana's variables replaced by values), skipped
with its reason where promtool is not installed (`make promtool` says how to get it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from promql import promql_metric_names

from ges_retention.metrics import Metrics
from ges_retention.service import Readiness, _RequestObserver

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ges-retention.json"
PROMETHEUS_OWN = {"up"}  # set by Prometheus on every scrape target
# Grafana's variables, replaced by values of the same kind so that promtool can parse the query.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1d",
    "$job": "ges-retention",
    "$policy": "prod-nightly",
}


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    dashboard = _dashboard()
    queries = [
        (f"panel {panel['title']!r}", target["expr"])
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
            assert match, variable["name"]
            queries.append((f"variable ${variable['name']}", match.group(1)))
    assert queries
    return queries


def _exported_metric_names() -> set[str]:
    """Every sample name /metrics shows once each of the service's metrics has a series."""
    metrics = Metrics()
    metrics.deletions.labels("p", "deleted").inc()
    metrics.requests.labels("list_backups", "200").inc()
    _RequestObserver(metrics, Readiness()).on_response("list_backups", 200, 0.1)  # the client observer feeds it
    metrics.throttled.inc()
    metrics.run_duration.labels("p").observe(1)
    metrics.last_run.labels("p", "ok").set(1)
    metrics.backups.labels("p", "success").set(1)
    metrics.newest_success_age.labels("p").set(1)
    metrics.next_run.labels("p").set(1)
    metrics.policies_loaded.set(1)
    metrics.reload_errors.inc()
    metrics.deleted_megabytes.labels("p").inc(12.5)
    metrics.backup_quota_available.labels("0a1b2c3d4e5f").set(40)
    return {
        sample.name for family in text_string_to_metric_families(metrics.render().decode()) for sample in family.samples
    }


def _substituted(expr: str) -> str:
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def test_every_query_names_only_exported_metrics() -> None:
    exported = _exported_metric_names() | PROMETHEUS_OWN
    for where, expr in _queries():
        names = promql_metric_names(expr)
        assert names, f"{where}: no metric in {expr}"
        assert names <= exported, f"{where} reads {sorted(names - exported)}, which the service does not export"


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    used = set().union(*(promql_metric_names(expr) for _, expr in _queries()))
    for metric in (
        "ges_retention_last_run_timestamp_seconds",  # runs and outcomes per policy
        "ges_retention_deletions_total",  # deletions and failures
        "ges_retention_newest_success_age_seconds",  # freshness
        "ges_retention_next_run_timestamp_seconds",
        "ges_retention_throttled_total",  # throttling
        "ges_retention_request_duration_seconds_bucket",  # request latency
        "ges_retention_run_duration_seconds_bucket",
        "ges_retention_backups",
        "ges_retention_deleted_megabytes_total",  # what retention frees
        "ges_retention_backup_quota_available",  # when it falls behind, new backups fail (GES.7019)
        "ges_retention_build_info",
        "up",
    ):
        assert metric in used, f"no panel shows {metric}"


def test_the_dashboard_is_importable() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "ges-retention" and dashboard["title"]
    panels = list(_panels(dashboard["panels"]))
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in panels:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        # No datasource baked in: every panel asks for the dashboard's datasource variable.
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert 'job=~"$job"' in target["expr"], f"{panel['title']}: not filtered by $job"


def _promtool_check(tmp_path: Path, exprs: list[str]) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool is not None
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt-get install prometheus)")
def test_every_query_parses_under_promtool(tmp_path: Path) -> None:
    queries = _queries()
    result = _promtool_check(tmp_path, [_substituted(expr) for _, expr in queries])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout
    # The check can fail: a query with a syntax error is refused.
    assert _promtool_check(tmp_path, ["sum by (policy (ges_retention_backups)"]).returncode != 0
