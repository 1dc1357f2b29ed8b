"""The metrics registry: build info, the process and platform collectors, no `_created` series, per-policy forgetting,
the request-duration histogram fed by the service's request observer."""

from __future__ import annotations

import platform
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from prometheus_client.parser import text_string_to_metric_families

from ges_retention import __version__
from ges_retention.metrics import REQUEST_BUCKETS_S, Metrics
from ges_retention.service import Readiness, _RequestObserver

REPO = Path(__file__).resolve().parents[2]


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def test_build_info_names_the_version_and_python() -> None:
    samples = _samples(Metrics())
    labels = (("python", platform.python_version()), ("version", __version__))
    assert samples[("ges_retention_build_info", labels)] == 1
    assert [name for name, _ in samples if name == "ges_retention_build_info"] == ["ges_retention_build_info"]


def test_process_and_platform_collectors_are_on_the_services_own_registry() -> None:
    names = {name for name, _ in _samples(Metrics())}
    assert "python_info" in names
    if Path("/proc/self/stat").exists():  # prometheus-client's process collector reads /proc (Linux)
        assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_start_time_seconds"} <= names
    # Two instances in one process: registering the collectors again must not clash (own registries).
    Metrics()


def test_no_created_series() -> None:
    metrics = Metrics()
    metrics.deletions.labels("p", "deleted").inc()
    metrics.run_duration.labels("p").observe(3)
    metrics.request_duration.labels("list_backups").observe(0.2)
    metrics.throttled.inc()
    text = metrics.render().decode()
    assert "ges_retention_deletions_total" in text
    assert not re.search(r"_created\b", text), text


def test_forget_policy_drops_only_that_policys_series() -> None:
    metrics = Metrics()
    for policy in ("gone", "kept"):
        metrics.deletions.labels(policy, "deleted").inc()
        metrics.deletions.labels(policy, "failed").inc()
        metrics.run_duration.labels(policy).observe(1)
        metrics.last_run.labels(policy, "ok").set(100)
        metrics.backups.labels(policy, "kept").set(3)
        metrics.newest_success_age.labels(policy).set(60)
    metrics.forget_policy("gone")
    policies = {dict(labels).get("policy") for _, labels in _samples(metrics)}
    assert "kept" in policies
    assert "gone" not in policies
    metrics.forget_policy("never-seen")  # nothing to drop is fine


def test_the_runners_request_observer_feeds_the_request_duration_histogram() -> None:
    metrics = Metrics()
    observer = _RequestObserver(metrics, Readiness())
    observer.on_response("list_backups", 200, 0.2)
    observer.on_response("list_backups", 500, 7.0)
    observer.on_response("delete_backup", 204, 0.01)
    samples = _samples(metrics)
    hist = "ges_retention_request_duration_seconds"
    assert samples[(f"{hist}_count", (("operation", "list_backups"),))] == 2
    assert samples[(f"{hist}_sum", (("operation", "list_backups"),))] == 7.2
    assert samples[(f"{hist}_bucket", (("le", "0.25"), ("operation", "list_backups")))] == 1
    assert samples[(f"{hist}_count", (("operation", "delete_backup"),))] == 1
    assert list(REQUEST_BUCKETS_S) == sorted(REQUEST_BUCKETS_S)


def test_prometheus_client_is_bounded_below_its_next_major_version() -> None:
    # The service relies on prometheus-client's public API only (disable_created_metrics since 0.17, the collectors'
    # registry= argument); a 1.0 may change it, so the dependency stops before it.
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (requirement,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "prometheus-client"]
    assert requirement.specifier.contains(version("prometheus-client"))
    assert not requirement.specifier.contains("0.16")
    assert not requirement.specifier.contains("1.0")
