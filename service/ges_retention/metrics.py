"""The service's Prometheus metrics (prometheus-client), in a registry of their own.

Names are the contract's. A `Metrics` owns its `CollectorRegistry` so a test (or a second daemon in one process) never
sees another's counters. prometheus-client's process and platform collectors are registered on that registry too (the
default registry is never used), and the `_created` series are off: they double the series count and no alert or
dashboard reads them.
"""

from __future__ import annotations

import platform
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from ges_retention import __version__

__all__ = ["CONTENT_TYPE", "REQUEST_BUCKETS_S", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_RUN_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
# One GES/IAM request: send to body read. The client's own timeout is 30 s by default.
REQUEST_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf"))

# A process-wide switch in prometheus-client (>= 0.17): off for every registry of the process, which is what the
# service wants; calling it again is harmless.
disable_created_metrics()  # type: ignore[no-untyped-call]

_PolicyMetric = Counter | Gauge | Histogram
_M = TypeVar("_M", Counter, Gauge, Histogram)


class Metrics:
    __slots__ = (
        "_per_policy",
        "backup_quota_available",
        "backups",
        "build_info",
        "deleted_megabytes",
        "deletions",
        "holds",
        "last_run",
        "lease_held",
        "newest_success_age",
        "next_run",
        "pending_deletions",
        "policies_loaded",
        "policy_change_held",
        "rate_limit",
        "registry",
        "reload_errors",
        "request_duration",
        "requests",
        "run_duration",
        "throttled",
    )

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.build_info = Gauge(
            "ges_retention_build_info",
            "The running ges-retention's version and Python",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        # Every per-policy metric with its label names, kept here rather than read back from prometheus-client's
        # private attributes: `forget_policy` needs them.
        self._per_policy: list[tuple[_PolicyMetric, tuple[str, ...]]] = []
        self.deletions = self._policy_metric(
            Counter, "ges_retention_deletions", "Backup deletions by policy and outcome", ("policy", "outcome")
        )
        self.deleted_megabytes = self._policy_metric(
            Counter,
            "ges_retention_deleted_megabytes",
            "Megabytes of the backups a policy deleted (backups without a size are not counted)",
            ("policy",),
        )
        self.backup_quota_available = Gauge(
            "ges_retention_backup_quota_available",
            "Backups left in the project's GES backup quota at the last read (-1 = unlimited)",
            ["project_id"],
            registry=r,
        )
        self.requests = Counter(
            "ges_retention_requests",
            "GES/IAM requests by operation and HTTP status",
            ["operation", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "ges_retention_request_duration_seconds",
            "Duration of one GES/IAM request attempt (send to body read), by operation",
            ["operation"],
            buckets=REQUEST_BUCKETS_S,
            registry=r,
        )
        self.throttled = Counter("ges_retention_throttled", "Requests answered 429 (throttled)", registry=r)
        self.rate_limit = Gauge(
            "ges_retention_rate_limit",
            "Requests per second the pacer of an (endpoint, project) allows now (0 = no limit; moves with auto)",
            ["endpoint", "project_id"],
            registry=r,
        )
        self.run_duration = self._policy_metric(
            Histogram,
            "ges_retention_run_duration_seconds",
            "Duration of a policy's run",
            ("policy",),
            buckets=_RUN_BUCKETS,
        )
        self.last_run = self._policy_metric(
            Gauge,
            "ges_retention_last_run_timestamp_seconds",
            "Unix time a policy's last run finished, by outcome",
            ("policy", "outcome"),
        )
        self.backups = self._policy_metric(
            Gauge, "ges_retention_backups", "Backups a policy selected at its last run, by status", ("policy", "status")
        )
        self.newest_success_age = self._policy_metric(
            Gauge,
            "ges_retention_newest_success_age_seconds",
            "Age of the newest successful backup a policy selected at its last run",
            ("policy",),
        )
        self.next_run = self._policy_metric(
            Gauge,
            "ges_retention_next_run_timestamp_seconds",
            "Unix time of a scheduled policy's next run (no series when it has no schedule or is paused)",
            ("policy",),
        )
        self.lease_held = self._policy_metric(
            Gauge,
            "ges_retention_lease_held",
            "1 while this process holds the policy's lease (PostgreSQL state, several replicas), else 0",
            ("policy",),
        )
        self.pending_deletions = self._policy_metric(
            Gauge,
            "ges_retention_pending_deletions",
            "Deletions a policy has pending (two-phase: waiting out safety.confirm_after)",
            ("policy",),
        )
        self.policy_change_held = self._policy_metric(
            Gauge,
            "ges_retention_policy_change_held",
            "1 while a policy's changed definition is held by the change gate until acknowledged",
            ("policy",),
        )
        self.holds = Gauge("ges_retention_holds", "Holds in force", registry=r)
        self.policies_loaded = Gauge("ges_retention_policies_loaded", "Policies in the loaded file", registry=r)
        self.reload_errors = Counter(
            "ges_retention_policy_reload_errors", "Policy file reloads rejected as invalid", registry=r
        )

    def _policy_metric(
        self, kind: type[_M], name: str, documentation: str, labels: tuple[str, ...], **kwargs: Any
    ) -> _M:
        metric = kind(name, documentation, labels, registry=self.registry, **kwargs)
        self._per_policy.append((metric, labels))
        return metric

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def forget_policy(self, policy: str) -> None:
        """Drop every series of a policy removed from the file, so its alerts stop with it."""
        for metric, names in self._per_policy:
            stale = {
                tuple(sample.labels[n] for n in names)
                for family in metric.collect()
                for sample in family.samples
                if sample.labels.get("policy") == policy
            }
            for values in stale:
                metric.remove(*values)
