"""The service's Prometheus metrics (prometheus-client), in a registry of their own.

Names are the contract's. A `Metrics` owns its `CollectorRegistry` so a test (or a second daemon in one process) never
sees another's counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_RUN_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))


class Metrics:
    __slots__ = (
        "backups",
        "deletions",
        "last_run",
        "newest_success_age",
        "next_run",
        "policies_loaded",
        "registry",
        "reload_errors",
        "requests",
        "run_duration",
        "throttled",
    )

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.deletions = Counter(
            "ges_retention_deletions", "Backup deletions by policy and outcome", ["policy", "outcome"], registry=r
        )
        self.requests = Counter(
            "ges_retention_requests",
            "GES/IAM requests by operation and HTTP status",
            ["operation", "status"],
            registry=r,
        )
        self.throttled = Counter("ges_retention_throttled", "Requests answered 429 (throttled)", registry=r)
        self.run_duration = Histogram(
            "ges_retention_run_duration_seconds",
            "Duration of a policy's run",
            ["policy"],
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.last_run = Gauge(
            "ges_retention_last_run_timestamp_seconds",
            "Unix time a policy's last run finished, by outcome",
            ["policy", "outcome"],
            registry=r,
        )
        self.backups = Gauge(
            "ges_retention_backups",
            "Backups a policy selected at its last run, by status",
            ["policy", "status"],
            registry=r,
        )
        self.newest_success_age = Gauge(
            "ges_retention_newest_success_age_seconds",
            "Age of the newest successful backup a policy selected at its last run",
            ["policy"],
            registry=r,
        )
        self.next_run = Gauge(
            "ges_retention_next_run_timestamp_seconds",
            "Unix time of a scheduled policy's next run (no series when it has no schedule or is paused)",
            ["policy"],
            registry=r,
        )
        self.policies_loaded = Gauge("ges_retention_policies_loaded", "Policies in the loaded file", registry=r)
        self.reload_errors = Counter(
            "ges_retention_policy_reload_errors", "Policy file reloads rejected as invalid", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def forget_policy(self, policy: str) -> None:
        """Drop every series of a policy removed from the file, so its alerts stop with it."""
        for metric in (
            self.deletions,
            self.run_duration,
            self.last_run,
            self.backups,
            self.newest_success_age,
            self.next_run,
        ):
            names = metric._labelnames
            stale = {
                tuple(sample.labels[n] for n in names)
                for family in metric.collect()
                for sample in family.samples
                if sample.labels.get("policy") == policy
            }
            for values in stale:
                metric.remove(*values)
