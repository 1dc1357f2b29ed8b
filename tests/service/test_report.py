"""Rendering: names from the API cannot forge rows; the run summary's text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ges_retention.backup import Backup
from ges_retention.report import plain, render_json, render_summary_text, render_table
from ges_retention.retention_decisions import Decision, Plan
from ges_retention.summary import PolicyResult, RunSummary

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FORGED = "prod\x1b[2K\r  keep  prod-orders  golden\nKEEP"


def result_with(backup: Backup) -> PolicyResult:
    plan = Plan("prod", "p", (Decision(backup, "delete", ("expired",)),), safety_stop=False, max_deletes=10)
    return PolicyResult("prod", "p", plan=plan)


def test_control_characters_in_api_names_are_escaped_in_tables() -> None:
    backup = Backup(
        "b\x07", "g1", "success", 1_700_000_000_000, name=FORGED, graph_name="g\u202eevil", backup_method="a\tb"
    )
    table = render_table([result_with(backup)], NOW)
    assert "\x1b" not in table and "\r" not in table and "\x07" not in table and "\u202e" not in table
    assert "\\x1b[2K\\x0d" in table and "\\u202e" in table and "a\\x09b" in table
    body = table.splitlines()
    assert len(body) == 6, "one header, one column line, one row, the total: no forged line"


def test_the_json_document_keeps_names_exact() -> None:
    backup = Backup("b1", "g1", "success", 1_700_000_000_000, name=FORGED)
    document = json.loads(render_json([result_with(backup)], NOW))
    assert document["policies"][0]["decisions"][0]["backup_name"] == FORGED


def test_plain_leaves_printable_text_alone() -> None:
    assert plain("prod-orders 2026 ünïcode ✓") == "prod-orders 2026 ünïcode ✓"


def test_summary_text_marks_a_dry_policy_in_a_live_run_and_escapes_errors() -> None:
    live = PolicyResult("prod", "p")
    dry = PolicyResult("staging", "p", dry_run=True, outcome="dry_run")
    failed = PolicyResult("other", "q", listing_error="bad name \x1b[31m", outcome="failed")
    summary = RunSummary("r1", "cli", False, [live, dry, failed], skipped_projects=["q"])
    text = render_summary_text(summary)
    assert "  staging: dry_run (dry run): planned 0" in text
    assert "(listing failed: bad name \\x1b[31m)" in text
    assert text.splitlines()[0].startswith("run r1: ok in ")
