"""`audit_report`: the `why`, `history` and `holds` renderings of journal records, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ges_retention.audit_report import (
    render_history_text,
    render_holds_table,
    render_why_text,
    run_json,
    why_document,
)
from ges_retention.state import BackupFacts, DeletionRecord, DeletionState, Hold, RunRecord, Scope, WhyReport

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
SCOPE = Scope("nightly", "https://ges.example", "p1")


def record(state: DeletionState, **changes: object) -> DeletionRecord:
    values: dict[str, object] = {
        "id": 1,
        "scope": SCOPE,
        "backup": BackupFacts("b1", name="n1", graph_id="g1", graph_name="graph", method="auto"),
        "state": state,
        "reasons": ("expired",),
        "run_id": "r2",
        "planned_run_id": "r1",
        "planned_at": T0,
        "updated_at": T0 + timedelta(hours=1),
        "finished_at": T0 + timedelta(hours=1),
        "attempts": 3,
        "request_id": "req-9",
    }
    values.update(changes)
    return DeletionRecord(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "changes", "line"),
    [
        ("pending", {"pending_since": T0, "finished_at": None}, "pending since 2026-03-01T02:00:00Z"),
        ("deleting", {"finished_at": None}, "deleting since 2026-03-01T03:00:00Z by run r2: intent written"),
        ("deleted", {}, "deleted 2026-03-01T03:00:00Z by run r2, 3 attempts, request_id req-9"),
        ("already_deleted", {"attempts": 1}, "already deleted (GES.7024) 2026-03-01T03:00:00Z by run r2, 1 attempt"),
        (
            "failed",
            {"error": "GES.0001 boom"},
            "failed 2026-03-01T03:00:00Z by run r2, 3 attempts, request_id req-9: GES.0001 boom",
        ),
        ("not_started", {"request_id": None}, "not started 2026-03-01T03:00:00Z by run r2 (the DELETE was never sent"),
        ("cancelled", {"reasons": ("held: case 1",)}, "cancelled 2026-03-01T03:00:00Z by run r2: kept"),
        ("gone", {}, "gone 2026-03-01T03:00:00Z by run r2: absent from the listing"),
    ],
)
def test_every_state_reads_as_a_sentence(state: DeletionState, changes: dict[str, object], line: str) -> None:
    text = render_why_text(WhyReport("b1", (record(state, **changes),), None), T0)
    assert line in text
    assert "planned 2026-03-01T02:00:00Z by run r1" in text


def test_deleted_at_only_for_deleted_records() -> None:
    report = WhyReport("b1", (record("failed"), record("deleted", id=2), record("already_deleted", id=3)), None)
    document = why_document(report, T0)
    assert [r["deleted_at"] for r in document["records"]] == [None, "2026-03-01T03:00:00Z", "2026-03-01T03:00:00Z"]
    assert [r["state"] for r in document["records"]] == ["failed", "deleted", "already_deleted"]


def test_control_characters_from_the_api_or_an_operator_are_escaped_in_text() -> None:
    evil = record("deleted", backup=BackupFacts("b1", name="x\x1b[2Jy", graph_id="g\nforged line"))
    hold = Hold("b1", "reason\x1b[31m", None, T0, "cli:a\rb")
    text = render_why_text(WhyReport("b1", (evil,), hold), T0)
    assert "\x1b" not in text and "\r" not in text and "\\x1b[2J" in text
    assert text.count("\n") == 6  # one line per item: nothing forged
    assert "\x1b" not in render_holds_table([hold])


def test_an_ended_hold_says_it_no_longer_protects() -> None:
    hold = Hold("b1", "was kept", T0 + timedelta(days=1), T0, "")
    assert "(ended: no longer protects it)" in render_why_text(WhyReport("b1", (), hold), T0 + timedelta(days=2))
    assert "ended" not in render_why_text(WhyReport("b1", (), hold), T0)


def test_history_counts_show_numbers_in_reading_order_and_leave_lists_to_json() -> None:
    run = RunRecord(
        "r1",
        "schedule",
        ("a",),
        "h",
        T0,
        T0 + timedelta(minutes=1),
        "ok",
        {"failed": 0, "deleted": 4, "listed": 9, "skipped_projects": ["p2"], "zeta": 1, "freed_mb": 12.5},
    )
    [_, row] = render_history_text([run]).splitlines()
    assert row.split()[5:] == ["listed=9", "deleted=4", "failed=0", "freed_mb=12.5", "zeta=1"]
    assert run_json(run)["counts"]["skipped_projects"] == ["p2"]
