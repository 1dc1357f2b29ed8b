"""The journal as people and scripts read it: `why`, `history` and `holds`, as text or tables and as JSON documents.

Pure: records in, text or JSON-ready values out. The same documents are the CLI's `--format json` and the HTTP
answers (`GET /v1/backups/{id}` is the `why` document, `GET /v1/holds` the `holds` one), so the two never drift.
Names and reasons come from the API and from operators: text escapes control characters (`report.plain`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ges_retention.report import iso_utc, plain
from ges_retention.state.records import DeletionRecord, Hold, RunRecord, WhyReport

__all__ = [
    "history_document",
    "hold_json",
    "holds_document",
    "render_history_text",
    "render_holds_table",
    "render_why_text",
    "run_json",
    "why_document",
]

# The counts a run summary has, in the order people read them; any other key follows, sorted.
_COUNT_ORDER = (
    "listed",
    "kept",
    "planned",
    "pending",
    "deleted",
    "already_deleted",
    "failed",
    "not_started",
    "cancelled",
    "held",
    "skipped_projects",
    "freed_mb",
    "would_free_mb",
)
_DELETED = frozenset({"deleted", "already_deleted"})


def _iso(when: datetime | None) -> str | None:
    return None if when is None else iso_utc(when)


# --- holds ------------------------------------------------------------------------------------------------------------


def hold_json(hold: Hold, now: datetime) -> dict[str, Any]:
    return {
        "backup_id": hold.backup_id,
        "reason": hold.reason,
        "until": _iso(hold.until),
        "placed_at": iso_utc(hold.placed_at),
        "placed_by": hold.placed_by,
        "in_force": hold.in_force(now),
    }


def holds_document(holds: Iterable[Hold], now: datetime) -> dict[str, Any]:
    return {"holds": [hold_json(hold, now) for hold in holds]}


def render_holds_table(holds: Sequence[Hold]) -> str:
    if not holds:
        return "no holds in force\n"
    rows = [("BACKUP_ID", "UNTIL", "PLACED", "BY", "REASON")]
    rows += [
        (
            plain(h.backup_id),
            _iso(h.until) or "until released",
            iso_utc(h.placed_at),
            plain(h.placed_by) or "-",
            plain(h.reason),
        )
        for h in holds
    ]
    return _table(rows)


def _hold_line(hold: Hold | None, now: datetime) -> str:
    if hold is None:
        return "hold: none"
    until = f" until {iso_utc(hold.until)}" if hold.until is not None else " until released"
    state = "" if hold.in_force(now) else " (ended: no longer protects it)"
    by = f" by {plain(hold.placed_by)}" if hold.placed_by else ""
    return f"hold: {plain(hold.reason)}{until}{state} (placed {iso_utc(hold.placed_at)}{by})"


# --- why --------------------------------------------------------------------------------------------------------------


def _record_json(record: DeletionRecord) -> dict[str, Any]:
    backup = record.backup
    return {
        "policy": record.scope.policy,
        "endpoint": record.scope.endpoint,
        "project_id": record.scope.project_id,
        "backup_name": backup.name,
        "graph_id": backup.graph_id,
        "graph_name": backup.graph_name,
        "backup_method": backup.method,
        "start_time": _iso(backup.started_at),
        "size_mb": backup.size_mb,
        "state": record.state,
        "reasons": list(record.reasons),
        "closed_reasons": list(record.closed_reasons),
        "planned_at": iso_utc(record.planned_at),
        "planned_run_id": record.planned_run_id,
        "pending_since": _iso(record.pending_since),
        "run_id": record.run_id,
        "updated_at": iso_utc(record.updated_at),
        "finished_at": _iso(record.finished_at),
        "deleted_at": _iso(record.finished_at) if record.state in _DELETED else None,
        "attempts": record.attempts,
        "request_id": record.request_id,
        "error": record.error,
    }


def why_document(report: WhyReport, now: datetime) -> dict[str, Any]:
    """`why --format json` and `GET /v1/backups/{id}`: every record oldest first, and the hold (in force or not)."""
    return {
        "backup_id": report.backup_id,
        "records": [_record_json(record) for record in report.records],
        "hold": hold_json(report.hold, now) if report.hold is not None else None,
    }


def _outcome_line(record: DeletionRecord) -> str:
    by = f"by run {record.run_id}"
    attempts = f"{record.attempts} attempt{'' if record.attempts == 1 else 's'}"
    request = f", request_id {plain(record.request_id)}" if record.request_id else ""
    finished = _iso(record.finished_at) or iso_utc(record.updated_at)
    state = record.state
    if state == "pending":
        since = _iso(record.pending_since) or iso_utc(record.planned_at)
        return f"pending since {since} (two-phase deletion: deleted once due)"
    if state == "deleting":
        return f"deleting since {iso_utc(record.updated_at)} {by}: intent written, outcome not recorded yet"
    if state == "deleted":
        return f"deleted {finished} {by}, {attempts}{request}"
    if state == "already_deleted":
        return f"already deleted (GES.7024) {finished} {by}, {attempts}{request}"
    if state == "failed":
        error = f": {plain(record.error)}" if record.error else ""
        return f"failed {finished} {by}, {attempts}{request}{error}"
    if state == "not_started":
        return f"not started {finished} {by} (the DELETE was never sent; decided afresh by a later run)"
    closed = f": {plain(', '.join(record.closed_reasons))}" if record.closed_reasons else ""
    if state == "cancelled":
        return f"cancelled {finished} {by}: kept{closed}"
    if state == "gone":
        return f"gone {finished} {by}: absent from the listing before it was due"
    return f"{state} {finished} {by}"


def render_why_text(report: WhyReport, now: datetime) -> str:
    lines = [f"backup {plain(report.backup_id)}"]
    if report.records:
        facts = report.records[-1].backup
        details = [
            f"name {plain(facts.name)}" if facts.name else "",
            f"graph {plain(facts.graph_name or '?')} ({plain(facts.graph_id)})" if facts.graph_id else "",
            plain(facts.method),
            f"started {iso_utc(facts.started_at)}" if facts.started_at else "",
            f"{facts.size_mb:g} MB" if facts.size_mb is not None else "",
        ]
        shown = ", ".join(d for d in details if d)
        if shown:
            lines[0] += f": {shown}"
    for number, record in enumerate(report.records, start=1):
        scope = record.scope
        lines += [
            f"{number}. policy {plain(scope.policy)} (project {plain(scope.project_id)} at {plain(scope.endpoint)})",
            f"   planned {iso_utc(record.planned_at)} by run {record.planned_run_id}",
            f"   reasons: {plain(', '.join(record.reasons)) or '-'}",
            f"   {_outcome_line(record)}",
        ]
    if not report.records:
        lines.append("no deletion was ever planned for it")
    lines.append(_hold_line(report.hold, now))
    return "\n".join(lines) + "\n"


# --- history ----------------------------------------------------------------------------------------------------------


def run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "trigger": run.trigger,
        "policies": list(run.policies),
        "host": run.host,
        "started_at": iso_utc(run.started_at),
        "ended_at": _iso(run.ended_at),
        "outcome": run.outcome,
        "counts": dict(run.counts),
    }


def history_document(runs: Iterable[RunRecord]) -> dict[str, Any]:
    return {"runs": [run_json(run) for run in runs]}


def _counts_text(counts: Mapping[str, Any]) -> str:
    keys = [k for k in _COUNT_ORDER if k in counts] + sorted(k for k in counts if k not in _COUNT_ORDER)
    shown = []
    for key in keys:
        value = counts[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue  # lists of ids and the like belong to the JSON document
        shown.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(shown) or "-"


def render_history_text(runs: Sequence[RunRecord]) -> str:
    if not runs:
        return "no runs recorded\n"
    rows = [("STARTED", "RUN", "TRIGGER", "OUTCOME", "POLICIES", "COUNTS")]
    rows += [
        (
            iso_utc(run.started_at),
            run.run_id,
            run.trigger,
            run.outcome or ("running" if run.ended_at is None else "-"),
            plain(",".join(run.policies)),
            _counts_text(run.counts),
        )
        for run in runs
    ]
    return _table(rows)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip() + "\n"
        for row in rows
    )
