"""The run-events seam: what a run tells its subscribers, one layer above `ges/observe.py`.

The runner acts and reports through `RunEvents`; it never logs or counts itself. Subscribers render what they hear:
`LoggingEvents` writes the contract's log events, `MetricsEvents` updates the Prometheus series, `progress.Progress`
emits `run_progress`; the journal will be the next. `FanOut` hands every event to each subscriber in turn; no
subscriber knows another.

Events arrive in this order for one run: `run_started`; per project `listing_done` or `listing_failed` (after the
backups and the graph listing), then, after `listing_done`, `quota_read` or `quota_unavailable`; per policy
`policy_planned`; per deletion `deletion_pending` (queued), `deletion_started` (not when the run stops first), then
`deletion_finished` (or, instead of both, `deletion_held`: a hold placed during the run keeps it); per policy
`policy_finished`; `run_finished`. `plan` gives the listing and planning events only.
Subscribers are called on the event loop, inline with the run: they must be quick and must not raise. The context
bound by the runner (`run_id`, `policy`, `project_id`, `graph_id`, `backup_id`, `backup_name`) is in effect.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from ges_retention.backup import Backup
from ges_retention.metrics import Metrics
from ges_retention.quota import low_threshold, quota_low
from ges_retention.report import iso_utc
from ges_retention.retention import Decision, Plan
from ges_retention.summary import DeletionOutcome, PolicyResult, RunSummary, Trigger

__all__ = ["Deletion", "FanOut", "LoggingEvents", "MetricsEvents", "NullRunEvents", "RunEvents"]

log = structlog.get_logger("ges_retention.runner")


@dataclass(frozen=True, slots=True)
class Deletion:
    """How one deletion ended. `attempts`/`duration_s` for a request that was made; the error's facts otherwise."""

    outcome: DeletionOutcome
    attempts: int = 0
    duration_s: float = 0.0
    status: int | None = None
    error_code: str | None = None
    error: str | None = None
    request_id: str | None = None
    """The DELETE's `X-Request-Id` (or the error body's `request_id`): what `why` shows next to the deletion."""


class RunEvents(Protocol):
    def run_started(self, run_id: str, trigger: Trigger, policies: Sequence[str], dry_run: bool) -> None:
        """A run begins; `dry_run` is true only when every policy of the run is dry."""

    def listing_done(self, project_id: str, backups: Sequence[Backup], conflicting_ids: Sequence[str]) -> None:
        """A project's listing is complete and trusted (`conflicting_ids`: later copies that agreed)."""

    def listing_failed(self, project_id: str, error_code: str | None, error: str) -> None:
        """A project's listing failed or cannot be trusted: its policies delete nothing."""

    def quota_read(self, project_id: str, available: int, listed: int) -> None:
        """The project's backup quota has `available` left (-1 = unlimited); `listed` backups were listed."""

    def quota_unavailable(self, project_id: str, error: str) -> None:
        """The project's backup quota could not be read (best effort: nothing else changes)."""

    def policy_planned(self, result: PolicyResult, now: datetime) -> None:
        """A policy's plan, before any deletion."""

    def deletion_pending(self, result: PolicyResult, decision: Decision) -> None:
        """A deletion is queued: it starts unless the run stops or reaches its deadline first. Called outside the
        deletion's log context (only `run_id` is bound; binding five keys per queued deletion costs, and no
        subscriber logs here): a subscriber that logs binds what it needs from `result` and `decision`."""

    def deletion_started(self, result: PolicyResult, decision: Decision) -> None:
        """The request for a deletion is about to be made."""

    def deletion_waiting(self, result: PolicyResult, decision: Decision, due_at: datetime | None) -> None:
        """Two-phase: a planned deletion is kept in this run, its pending clock running until `due_at`."""

    def pending_closed(self, result: PolicyResult, backup_id: str, state: str, reasons: Sequence[str]) -> None:
        """Two-phase: a pending row is `cancelled` (kept, held, no longer selected) or `gone` (absent)."""

    def deletion_finished(self, result: PolicyResult, decision: Decision, deletion: Deletion) -> None:
        """A queued deletion ended (`not_started` when the run stopped first); `result` already counts it."""

    def deletion_held(self, result: PolicyResult, decision: Decision, reason: str) -> None:
        """A queued deletion was not sent: a hold in force when its intent was written keeps it (`reason`)."""

    def policy_finished(self, result: PolicyResult, duration_s: float) -> None:
        """A policy's part of the run is over; `result.outcome` is final."""

    def run_finished(self, summary: RunSummary) -> None:
        """The run is over; `summary.outcome` is final."""


class NullRunEvents:
    """Hears everything, does nothing: a subscriber overrides what it renders."""

    __slots__ = ()

    def run_started(self, run_id: str, trigger: Trigger, policies: Sequence[str], dry_run: bool) -> None:
        pass

    def listing_done(self, project_id: str, backups: Sequence[Backup], conflicting_ids: Sequence[str]) -> None:
        pass

    def listing_failed(self, project_id: str, error_code: str | None, error: str) -> None:
        pass

    def quota_read(self, project_id: str, available: int, listed: int) -> None:
        pass

    def quota_unavailable(self, project_id: str, error: str) -> None:
        pass

    def policy_planned(self, result: PolicyResult, now: datetime) -> None:
        pass

    def deletion_pending(self, result: PolicyResult, decision: Decision) -> None:
        pass

    def deletion_started(self, result: PolicyResult, decision: Decision) -> None:
        pass

    def deletion_waiting(self, result: PolicyResult, decision: Decision, due_at: datetime | None) -> None:
        pass

    def pending_closed(self, result: PolicyResult, backup_id: str, state: str, reasons: Sequence[str]) -> None:
        pass

    def deletion_finished(self, result: PolicyResult, decision: Decision, deletion: Deletion) -> None:
        pass

    def deletion_held(self, result: PolicyResult, decision: Decision, reason: str) -> None:
        pass

    def policy_finished(self, result: PolicyResult, duration_s: float) -> None:
        pass

    def run_finished(self, summary: RunSummary) -> None:
        pass


class FanOut:
    """Every event to each subscriber, in the order given."""

    __slots__ = ("subscribers",)

    def __init__(self, *subscribers: RunEvents) -> None:
        self.subscribers = subscribers

    def run_started(self, run_id: str, trigger: Trigger, policies: Sequence[str], dry_run: bool) -> None:
        for s in self.subscribers:
            s.run_started(run_id, trigger, policies, dry_run)

    def listing_done(self, project_id: str, backups: Sequence[Backup], conflicting_ids: Sequence[str]) -> None:
        for s in self.subscribers:
            s.listing_done(project_id, backups, conflicting_ids)

    def listing_failed(self, project_id: str, error_code: str | None, error: str) -> None:
        for s in self.subscribers:
            s.listing_failed(project_id, error_code, error)

    def quota_read(self, project_id: str, available: int, listed: int) -> None:
        for s in self.subscribers:
            s.quota_read(project_id, available, listed)

    def quota_unavailable(self, project_id: str, error: str) -> None:
        for s in self.subscribers:
            s.quota_unavailable(project_id, error)

    def policy_planned(self, result: PolicyResult, now: datetime) -> None:
        for s in self.subscribers:
            s.policy_planned(result, now)

    def deletion_pending(self, result: PolicyResult, decision: Decision) -> None:
        for s in self.subscribers:
            s.deletion_pending(result, decision)

    def deletion_started(self, result: PolicyResult, decision: Decision) -> None:
        for s in self.subscribers:
            s.deletion_started(result, decision)

    def deletion_waiting(self, result: PolicyResult, decision: Decision, due_at: datetime | None) -> None:
        for s in self.subscribers:
            s.deletion_waiting(result, decision, due_at)

    def pending_closed(self, result: PolicyResult, backup_id: str, state: str, reasons: Sequence[str]) -> None:
        for s in self.subscribers:
            s.pending_closed(result, backup_id, state, reasons)

    def deletion_finished(self, result: PolicyResult, decision: Decision, deletion: Deletion) -> None:
        for s in self.subscribers:
            s.deletion_finished(result, decision, deletion)

    def deletion_held(self, result: PolicyResult, decision: Decision, reason: str) -> None:
        for s in self.subscribers:
            s.deletion_held(result, decision, reason)

    def policy_finished(self, result: PolicyResult, duration_s: float) -> None:
        for s in self.subscribers:
            s.policy_finished(result, duration_s)

    def run_finished(self, summary: RunSummary) -> None:
        for s in self.subscribers:
            s.run_finished(summary)


class LoggingEvents(NullRunEvents):
    """The contract's log events of a run."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        # A run writes a line per planned and per finished deletion: a logger bound once per run (to the logging
        # configured when it starts) spares each of them structlog's lazy proxy.
        self._lines = log.bind()

    def run_started(self, run_id: str, trigger: Trigger, policies: Sequence[str], dry_run: bool) -> None:
        log.info("run_started", policies=list(policies), dry_run=dry_run, trigger=trigger)

    def listing_done(self, project_id: str, backups: Sequence[Backup], conflicting_ids: Sequence[str]) -> None:
        if conflicting_ids:
            log.warning("listing_conflict", project_id=project_id, backup_ids=list(conflicting_ids)[:20])
        graphs = len({b.graph_id for b in backups})
        orphans = sum(1 for b in backups if b.orphan)
        log.info("backups_listed", project_id=project_id, count=len(backups), graphs=graphs, orphans=orphans)

    def listing_failed(self, project_id: str, error_code: str | None, error: str) -> None:
        log.error("listing_failed", project_id=project_id, error_code=error_code, error=error)

    def quota_read(self, project_id: str, available: int, listed: int) -> None:
        if quota_low(available, listed):
            threshold = low_threshold(available, listed)
            log.warning(
                "backup_quota_low", project_id=project_id, available=available, listed=listed, threshold=threshold
            )
        else:
            log.debug("backup_quota", project_id=project_id, available=available, listed=listed)

    def quota_unavailable(self, project_id: str, error: str) -> None:
        log.warning("quota_unavailable", project_id=project_id, error=error)

    def policy_planned(self, result: PolicyResult, now: datetime) -> None:
        if result.plan is None:
            return
        _log_plan(result.plan, self._lines)
        for backup_id, hold in result.hold_details.items():
            until = hold.until
            log.debug("backup_held", backup_id=backup_id, reason=hold.reason, until=iso_utc(until) if until else None)
        log.info(
            "policy_planned",
            kept=result.kept,
            planned=result.planned,
            due=0 if result.safety_stop else len(result.due),
            # What this run records: only a run that acts (neither dry, held nor safety-stopped) starts pending
            # clocks; `plan` shows the clocks a run would start.
            pending=len(result.waiting) if result.acts else 0,
            holds=result.holds,
            change_held=result.change_held,
            dry_run=result.dry_run,
        )
        gate = result.gate
        if gate is not None and result.change_held:
            log.error(
                "policy_change_held",
                extra=len(gate.extra),
                budget=gate.to_json()["budget"],
                digest=gate.digest,
                sample_backup_ids=gate.sample_ids,
                baseline=gate.has_baseline,
            )
        elif gate is not None and gate.held and result.acked_by is not None:
            log.info("policy_change_acked", digest=gate.digest, by=result.acked_by, extra=len(gate.extra))

    def deletion_waiting(self, result: PolicyResult, decision: Decision, due_at: datetime | None) -> None:
        log.info("deletion_pending", due_at=iso_utc(due_at) if due_at is not None else None)

    def pending_closed(self, result: PolicyResult, backup_id: str, state: str, reasons: Sequence[str]) -> None:
        log.info("deletion_cancelled", reasons=list(reasons), state=state)

    def deletion_finished(self, result: PolicyResult, decision: Decision, deletion: Deletion) -> None:
        if deletion.outcome == "deleted":
            duration_ms = round(deletion.duration_s * 1000, 1)
            size_mb = decision.backup.size_mb
            self._lines.info("backup_deleted", attempts=deletion.attempts, duration_ms=duration_ms, size_mb=size_mb)
        elif deletion.outcome == "already_deleted":
            log.info("backup_already_deleted", error_code=deletion.error_code or "GES.7024")
        elif deletion.outcome == "failed":
            log.error(
                "backup_delete_failed",
                status=deletion.status,
                error_code=deletion.error_code,
                error=deletion.error,
                attempts=deletion.attempts,
            )

    def deletion_held(self, result: PolicyResult, decision: Decision, reason: str) -> None:
        log.info("deletion_cancelled", reasons=[reason])

    def policy_finished(self, result: PolicyResult, duration_s: float) -> None:
        log.info("policy_finished", **result.counts(), **result.sizes(), dry_run=result.dry_run, outcome=result.outcome)

    def run_finished(self, summary: RunSummary) -> None:
        log.info(
            "run_finished",
            **summary.counts(),
            **summary.sizes(),
            skipped_projects=summary.skipped_projects,
            duration_s=round(summary.duration_s, 3),
            outcome=summary.outcome,
        )


def _log_plan(plan: Plan, lines: structlog.typing.FilteringBoundLogger) -> None:
    for warning in plan.warnings:
        if warning.kind == "policy_overlap":
            log.warning("policy_overlap", backup_id=warning.backup_id, policies=warning.detail.split(", "))
        elif warning.kind == "future":
            log.warning("backup_in_future", backup_id=warning.backup_id, detail=warning.detail)
        else:
            log.warning("backup_status_unknown", backup_id=warning.backup_id, status=warning.detail)
    # `backup_kept` is debug: below the level, nothing is built for it.
    enabled_for = getattr(lines, "is_enabled_for", None)
    kept_lines = enabled_for is None or bool(enabled_for(logging.DEBUG))
    for decision in plan.decisions:
        if decision.action != "delete" and not kept_lines:
            continue
        backup = decision.backup
        keys = {"graph_id": backup.graph_id, "backup_id": backup.id, "backup_name": backup.name}
        if decision.action == "delete":
            lines.info("backup_expired", reasons=list(decision.reasons), **keys)
        else:
            lines.debug("backup_kept", reasons=list(decision.reasons), **keys)
    if plan.safety_stop:
        log.error("safety_stop", planned=len(plan.planned), limit=plan.max_deletes)


class MetricsEvents(NullRunEvents):
    """The Prometheus series a run moves (per policy: backups by status, newest success, deletions, run duration)."""

    __slots__ = ("metrics",)

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def policy_planned(self, result: PolicyResult, now: datetime) -> None:
        if result.plan is None:
            return
        plan = result.plan
        self.metrics.policy_change_held.labels(result.name).set(1 if result.change_held else 0)
        self.metrics.holds.set(result.holds_in_force)
        statuses = Counter(d.backup.status for d in plan.decisions)
        for status in ("success", "failed", "backing_up"):
            statuses.setdefault(status, 0)
        for status, count in statuses.items():
            self.metrics.backups.labels(result.name, status).set(count)
        newest = max((d.backup.start_ms for d in plan.decisions if d.backup.status == "success"), default=None)
        if newest is not None:
            age_s = max(0.0, now.timestamp() - newest / 1000)
            self.metrics.newest_success_age.labels(result.name).set(age_s)

    def deletion_finished(self, result: PolicyResult, decision: Decision, deletion: Deletion) -> None:
        if deletion.outcome != "not_started":
            self.metrics.deletions.labels(result.name, deletion.outcome).inc()
        size_mb = decision.backup.size_mb
        if deletion.outcome == "deleted" and size_mb:
            self.metrics.deleted_megabytes.labels(result.name).inc(size_mb)

    def quota_read(self, project_id: str, available: int, listed: int) -> None:
        self.metrics.backup_quota_available.labels(project_id).set(available)

    def policy_finished(self, result: PolicyResult, duration_s: float) -> None:
        if result.acts and result.two_phase is not None:  # only such a run moves the policy's pending rows
            self.metrics.pending_deletions.labels(result.name).set(result.pending)
        self.metrics.run_duration.labels(result.name).observe(duration_s)
        self.metrics.last_run.labels(result.name, result.outcome).set(time.time())
