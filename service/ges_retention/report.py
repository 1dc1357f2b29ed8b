"""Rendering plans and run summaries: tables and text for people, JSON documents for scripts.

The plan document is deterministic: the same plans and `generated_at` give byte-identical output, so plans can be
diffed and reviewed. Names come from the API: in text they are printed with control characters escaped, so that a
name holding ANSI escapes or line breaks cannot forge or hide rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ges_retention.retention_decisions import Decision
from ges_retention.summary import PolicyResult, RunSummary

__all__ = ["iso_utc", "plain", "plan_document", "render_json", "render_summary_text", "render_table"]

# C0, DEL and C1 controls (ESC starts ANSI sequences, CR/LF forge lines), plus the bidi overrides that reorder text.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROL.update({c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def iso_utc(when: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the second (milliseconds when present)."""
    value = when.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def plain(text: str) -> str:
    """`text` with every control character escaped (`\\x1b`), for a terminal."""
    return text.translate(_CONTROL)


def _decision_json(decision: Decision, report: PolicyResult) -> dict[str, Any]:
    backup = decision.backup
    entry: dict[str, Any] = {
        "backup_id": backup.id,
        "backup_name": backup.name,
        "graph_id": backup.graph_id,
        "graph_name": backup.graph_name,
        "backup_method": backup.backup_method,
        "status": backup.status,
        "start_time": iso_utc(backup.start),
        "size_mb": backup.size_mb,
        "orphan": backup.orphan,
        "action": decision.action,
        "reasons": list(decision.reasons),
    }
    if decision.action == "delete":
        # Two-phase deletion: without it every deletion is due now (`pending_since` and `due_at` null).
        clock = report.two_phase.clock(backup.id) if report.two_phase is not None else None
        since, due_at = (clock.pending_since, clock.due_at) if clock is not None else (None, None)
        entry["pending_since"] = iso_utc(since) if since is not None else None
        entry["due_at"] = iso_utc(due_at) if due_at is not None else None
        entry["due"] = clock.due if clock is not None else True
    return entry


def plan_document(
    reports: Sequence[PolicyResult], generated_at: datetime, state: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The `plan --format json` document; `state`: `{"backend", "schema_version"}` of the state read, or None."""
    policies = []
    for report in reports:
        entry: dict[str, Any] = {
            "name": report.name,
            "project_id": report.project_id,
            "enabled": report.enabled,
            "safety_stop": bool(report.plan and report.plan.safety_stop),
            "change_held": report.gate.to_json() if report.change_held and report.gate is not None else None,
            "decisions": [_decision_json(d, report) for d in report.plan.decisions] if report.plan else [],
        }
        if report.listing_error is not None:
            entry["error"] = report.listing_error
        policies.append(entry)
    return {
        "generated_at": iso_utc(generated_at),
        "state": dict(state) if state is not None else None,
        "policies": policies,
    }


def render_json(reports: Sequence[PolicyResult], generated_at: datetime, state: Mapping[str, Any] | None = None) -> str:
    return json.dumps(plan_document(reports, generated_at, state), indent=2, ensure_ascii=False) + "\n"


_COLUMNS = ("ACTION", "GRAPH", "BACKUP", "METHOD", "STATUS", "START (UTC)", "SIZE MB", "ORPHAN", "REASONS")
_START, _SIZE, _ORPHAN, _REASONS = 5, 6, 7, 8


def _size(size_mb: float | None) -> str:
    if size_mb is None:
        return "-"
    value = float(size_mb)
    return f"{value:.0f}" if value.is_integer() else f"{value:.3f}".rstrip("0")


def _orphan(orphan: bool | None) -> str:
    # None: not known (`plan --from-file` has no graph listing).
    return {True: "orphan", False: "-", None: "?"}[orphan]


def _row(decision: Decision, report: PolicyResult) -> tuple[str, ...]:
    backup = decision.backup
    action: str = decision.action
    reasons = plain(", ".join(decision.reasons))
    if action == "delete":
        clock = report.two_phase.clock(backup.id) if report.two_phase is not None else None
        if clock is not None and not clock.due and clock.due_at is not None:
            action = "pending"  # two-phase: kept in this run, deleted by a run after its due time
            reasons += f", due {clock.due_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M')}"
    return (
        action.upper() if decision.action == "delete" else action,
        plain(backup.graph_name or backup.graph_id),
        plain(backup.name or backup.id),
        plain(backup.backup_method or "-"),
        plain(backup.status),
        backup.start.strftime("%Y-%m-%d %H:%M"),
        _size(backup.size_mb),
        _orphan(backup.orphan),
        reasons,
    )


def _collapse(rows: list[tuple[str, ...]], min_run: int) -> list[tuple[str, ...]]:
    """Runs of `min_run` or more deletions of one graph for one reason become one summary row."""
    out: list[tuple[str, ...]] = []
    i = 0
    while i < len(rows):
        j = i
        deleting = rows[i][0] in ("DELETE", "PENDING")  # (a pending row's reasons end with its due time)
        same = (rows[i][0], rows[i][1], rows[i][_REASONS])
        while deleting and j < len(rows) and (rows[j][0], rows[j][1], rows[j][_REASONS]) == same:
            j += 1
        if deleting and j - i >= min_run:
            oldest, newest = rows[j - 1], rows[i]  # rows are newest first
            sizes = [float(r[_SIZE]) for r in rows[i:j] if r[_SIZE] != "-"]
            orphans = {r[_ORPHAN] for r in rows[i:j]}
            out.append(
                (
                    rows[i][0],
                    rows[i][1],
                    f"{j - i} backups",
                    "*",
                    "*",
                    f"{oldest[_START]} .. {newest[_START]}",
                    _size(sum(sizes)) if sizes else "-",
                    orphans.pop() if len(orphans) == 1 else "*",
                    rows[i][_REASONS],
                )
            )
            i = j
        else:
            out.append(rows[i])
            i += 1
    return out


def render_table(reports: Sequence[PolicyResult], generated_at: datetime, *, collapse: int = 0) -> str:
    """One row per decision; with `collapse=N`, runs of N or more deletions of a graph are summarised in one row."""
    lines = [f"Plan at {iso_utc(generated_at)}"]
    for report in reports:
        lines.append("")
        paused = "" if report.enabled else ", PAUSED: enabled: false"
        header = f"policy {report.name} (project {report.project_id}{paused})"
        if report.plan is None:
            lines.append(f"{header}: NOT PLANNED: {plain(report.listing_error or '')}")
            continue
        plan = report.plan
        rows = [_row(d, report) for d in plan.decisions]
        if collapse:
            rows = _collapse(rows, collapse)
        widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(_COLUMNS)]
        lines.append(header)
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)).rstrip())
        lines.extend("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
        planned = len(plan.planned)
        waiting = len(report.waiting)
        totals = f"  => keep {len(plan.decisions) - planned}, delete {planned}"
        lines.append(
            totals
            + (f" ({planned - waiting} due, {waiting} pending)" if report.two_phase and waiting else "")
            + _freed(report)
        )
        if plan.safety_stop:
            lines.append(
                f"  !! SAFETY STOP: {planned} deletions exceed safety.max_deletes={plan.max_deletes}; "
                "this policy will delete nothing"
            )
        if report.change_held and report.gate is not None:
            lines.append(_held_line(report))
    return "\n".join(lines) + "\n"


def _freed(report: PolicyResult) -> str:
    """`, freeing N MB now` for a plan's due deletions (sizes not known are left out, and said so)."""
    if report.plan is None or report.safety_stop or not report.due:
        return ""
    unknown = sum(1 for d in report.due if d.backup.size_mb is None)
    text = f", freeing {_size(report.would_free_mb)} MB"
    return text + (f" (+{unknown} of unknown size)" if unknown else "")


def _sizes_text(sizes: dict[str, float]) -> str:
    parts = []
    if "freed_mb" in sizes:
        parts.append(f"freed {_size(sizes['freed_mb'])} MB")
    if "would_free_mb" in sizes:
        parts.append(f"would free {_size(sizes['would_free_mb'])} MB")
    return "".join(f", {p}" for p in parts)


def _held_line(report: PolicyResult) -> str:
    gate = report.gate
    assert gate is not None
    budget = gate.to_json()["budget"]
    against = "its baseline would keep" if gate.has_baseline else "with no baseline (a first run)"
    return (
        f"  !! CHANGE HELD: {len(gate.extra)} deletions {against} exceed safety.change_budget={budget}; this policy "
        f"will delete nothing until acknowledged: ges-retention ack POLICY_FILE --policy {report.name} "
        f"--digest {gate.digest} (or safety.ack: {gate.digest} in the file)"
    )


def render_summary_text(summary: RunSummary) -> str:
    """The run summary `run` prints by default: one line for the run, one per policy."""
    lines = [
        f"run {summary.run_id}: {summary.outcome}"
        + (" (dry run)" if summary.dry_run else "")
        + f" in {summary.duration_s:.1f}s: listed {summary.listed}, kept {summary.kept}, "
        f"planned {summary.total('planned')}, deleted {summary.total('deleted')}, "
        f"already deleted {summary.total('already_deleted')}, failed {summary.total('failed')}, "
        f"not started {summary.total('not_started')}"
        + (f", pending {summary.total('pending')}" if summary.total("pending") else "")
        + _sizes_text(summary.sizes())
    ]
    for p in summary.policies:
        detail = f"  {p.name}: {p.outcome}" + (" (dry run)" if p.dry_run and not summary.dry_run else "")
        detail += f": planned {p.planned}, deleted {p.deleted}, already deleted {p.already_deleted}, failed {p.failed}"
        if p.not_started:
            detail += f", not started {p.not_started}"
        if p.pending:
            detail += f", pending {p.pending}"
        detail += _sizes_text(p.sizes())
        if p.listing_error:
            detail += f" (listing failed: {plain(p.listing_error)})"
        if p.plan is not None and p.plan.safety_stop:
            detail += f" (safety stop: {p.planned} > max_deletes {p.plan.max_deletes})"
        if p.change_held and p.gate is not None:
            detail += (
                f" (change held: {len(p.gate.extra)} extra deletions > change_budget {p.gate.to_json()['budget']}; "
                f"acknowledge digest {p.gate.digest})"
            )
        lines.append(detail)
    if summary.skipped_projects:
        lines.append(f"  projects skipped (listing failed): {', '.join(summary.skipped_projects)}")
    return "\n".join(lines) + "\n"
