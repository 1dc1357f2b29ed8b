"""Rendering plans: a table for people, one JSON document for scripts (the contract's plan document).

The JSON document is deterministic: the same plans and `generated_at` give byte-identical output, so plans can be
diffed and reviewed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ges_retention.retention import Decision, Plan

__all__ = ["PolicyReport", "iso_utc", "plan_document", "render_json", "render_table"]


def iso_utc(when: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the second (milliseconds when present)."""
    value = when.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


@dataclass(frozen=True, slots=True)
class PolicyReport:
    """A policy's plan, or the reason there is none (its project's listing failed)."""

    name: str
    project_id: str
    plan: Plan | None
    error: str | None = None


def _decision_json(decision: Decision) -> dict[str, Any]:
    backup = decision.backup
    return {
        "backup_id": backup.id,
        "backup_name": backup.name,
        "graph_id": backup.graph_id,
        "graph_name": backup.graph_name,
        "backup_method": backup.backup_method,
        "status": backup.status,
        "start_time": iso_utc(backup.start),
        "action": decision.action,
        "reasons": list(decision.reasons),
    }


def plan_document(reports: Sequence[PolicyReport], generated_at: datetime) -> dict[str, Any]:
    policies = []
    for report in reports:
        entry: dict[str, Any] = {
            "name": report.name,
            "project_id": report.project_id,
            "safety_stop": bool(report.plan and report.plan.safety_stop),
            "decisions": [_decision_json(d) for d in report.plan.decisions] if report.plan else [],
        }
        if report.error is not None:
            entry["error"] = report.error
        policies.append(entry)
    return {"generated_at": iso_utc(generated_at), "policies": policies}


def render_json(reports: Sequence[PolicyReport], generated_at: datetime) -> str:
    return json.dumps(plan_document(reports, generated_at), indent=2, ensure_ascii=False) + "\n"


_COLUMNS = ("ACTION", "GRAPH", "BACKUP", "METHOD", "STATUS", "START (UTC)", "REASONS")


def _row(decision: Decision) -> tuple[str, ...]:
    backup = decision.backup
    return (
        decision.action.upper() if decision.action == "delete" else decision.action,
        backup.graph_name or backup.graph_id,
        backup.name or backup.id,
        backup.backup_method or "-",
        backup.status,
        backup.start.strftime("%Y-%m-%d %H:%M"),
        ", ".join(decision.reasons),
    )


def _collapse(rows: list[tuple[str, ...]], min_run: int) -> list[tuple[str, ...]]:
    """Runs of `min_run` or more deletions of one graph for one reason become one summary row."""
    out: list[tuple[str, ...]] = []
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j][0] == "DELETE" and rows[j][1] == rows[i][1] and rows[j][6] == rows[i][6]:
            j += 1
        if rows[i][0] == "DELETE" and j - i >= min_run:
            oldest, newest = rows[j - 1], rows[i]  # rows are newest first
            out.append(("DELETE", rows[i][1], f"{j - i} backups", "*", "*", f"{oldest[5]} .. {newest[5]}", rows[i][6]))
            i = j
        else:
            out.append(rows[i])
            i += 1
    return out


def render_table(reports: Sequence[PolicyReport], generated_at: datetime, *, collapse: int = 0) -> str:
    """One row per decision; with `collapse=N`, runs of N or more deletions of a graph are summarised in one row."""
    lines = [f"Plan at {iso_utc(generated_at)}"]
    for report in reports:
        lines.append("")
        header = f"policy {report.name} (project {report.project_id})"
        if report.plan is None:
            lines.append(f"{header}: NOT PLANNED: {report.error}")
            continue
        plan = report.plan
        rows = [_row(d) for d in plan.decisions]
        if collapse:
            rows = _collapse(rows, collapse)
        widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(_COLUMNS)]
        lines.append(header)
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)).rstrip())
        lines.extend("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
        planned = len(plan.planned)
        lines.append(f"  => keep {len(plan.decisions) - planned}, delete {planned}")
        if plan.safety_stop:
            lines.append(
                f"  !! SAFETY STOP: {planned} deletions exceed safety.max_deletes={plan.max_deletes}; "
                "this policy will delete nothing"
            )
    return "\n".join(lines) + "\n"
