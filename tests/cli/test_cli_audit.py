"""`why` and `history` over a seeded journal (`support.journal`): what they show, as text and JSON, and exit codes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ges_retention.audit_command import history_command
from ges_retention.cli import main
from ges_retention.state import StateLocation, resolve_state_location
from subprocess_env import clean_env
from support.journal import ENDPOINT, T0, seed_journal
from support.processes import run_cli


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StateLocation:
    location = resolve_state_location(str(tmp_path / "state.db"))
    asyncio.run(seed_journal(location))
    monkeypatch.setenv("GES_RETENTION_STATE", str(location.path))
    return location


def test_why_shows_the_deletion_with_policy_run_reasons_and_request_id(
    state: StateLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["why", "b-del"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "backup b-del: name nightly-b-del, graph prod-orders (g-1), auto, started 2026-01-20T02:00:00Z, 512 MB",
        f"1. policy nightly (project proj1 at {ENDPOINT})",
        "   planned 2026-03-01T02:00:00Z by run r1",
        "   reasons: expired",
        "   deleted 2026-03-01T02:00:05Z by run r1, 1 attempt, request_id req-1",
        "hold: none",
    ]


def test_why_json_is_every_record_oldest_first_and_the_hold(
    state: StateLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["why", "b-held", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["backup_id"] == "b-held"
    [record] = document["records"]
    assert record["policy"] == "nightly" and record["run_id"] == "r3" and record["planned_run_id"] == "r3"
    assert record["state"] == "cancelled"
    assert (record["reasons"], record["closed_reasons"]) == (["expired"], ["held: legal: case 42"])
    assert record["deleted_at"] is None and record["request_id"] is None
    assert document["hold"] == {
        "backup_id": "b-held",
        "reason": "legal: case 42",
        "until": None,
        "placed_at": "2026-03-03T02:00:00Z",
        "placed_by": "cli:test@host",
        "in_force": True,
    }

    assert main(["why", "b-del", "--format", "json"]) == 0
    [deleted] = json.loads(capsys.readouterr().out)["records"]
    assert {k: deleted[k] for k in ("state", "deleted_at", "attempts", "request_id", "reasons", "endpoint")} == {
        "state": "deleted",
        "deleted_at": "2026-03-01T02:00:05Z",
        "attempts": 1,
        "request_id": "req-1",
        "reasons": ["expired"],
        "endpoint": ENDPOINT,
    }
    assert deleted["start_time"] == "2026-01-20T02:00:00Z" and deleted["size_mb"] == 512.0


def test_why_of_a_pending_and_a_failed_deletion(state: StateLocation, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["why", "b-pend"]) == 0
    out = capsys.readouterr().out
    assert "policy weekly" in out and "pending since 2026-03-02T02:00:00Z" in out
    assert main(["why", "b-fail"]) == 0
    out = capsys.readouterr().out
    assert "failed 2026-03-01T02:00:05Z by run r1, 2 attempts, request_id req-2: GES.0001 internal error" in out


def test_why_of_a_backup_only_held_is_its_hold(state: StateLocation, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hold", "b-new", "--reason", "keep"]) == 0
    capsys.readouterr()
    assert main(["why", "b-new"]) == 0
    out = capsys.readouterr().out
    assert "no deletion was ever planned for it" in out and "hold: keep until released" in out


def test_why_of_an_unknown_backup_is_exit_1(state: StateLocation, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-format", "console", "why", "b-unknown"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "no record of b-unknown" in captured.err
    assert main(["--log-format", "console", "why", "b/unknown"]) == 2
    assert "malformed" in capsys.readouterr().err


def test_history_lists_runs_newest_first_with_trigger_outcome_and_counts(
    state: StateLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["STARTED", "RUN", "TRIGGER", "OUTCOME", "POLICIES", "COUNTS"]
    assert [row[1:5] for row in rows[1:]] == [
        ["r3", "http", "ok", "nightly"],
        ["r2", "cli", "ok", "weekly"],
        ["r1", "schedule", "partial", "nightly"],
    ]
    assert rows[3][5:] == ["listed=10", "planned=2", "deleted=1", "failed=1"]


def test_history_filters_by_policy_and_limit_as_json(state: StateLocation, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--policy", "nightly", "--format", "json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["run_id"] for r in runs] == ["r3", "r1"]
    assert runs[1] == {
        "run_id": "r1",
        "trigger": "schedule",
        "policies": ["nightly"],
        "host": "host-a",
        "started_at": "2026-03-01T02:00:00Z",
        "ended_at": "2026-03-01T02:01:00Z",
        "outcome": "partial",
        "counts": {"listed": 10, "planned": 2, "deleted": 1, "failed": 1},
    }
    assert main(["history", "--limit", "1", "--format", "json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)["runs"]] == ["r3"]
    assert main(["history", "--policy", "nobody"]) == 0
    assert capsys.readouterr().out == "no runs recorded\n"


def test_history_since_counts_back_from_now(state: StateLocation, capsys: pytest.CaptureFixture[str]) -> None:
    now = T0 + timedelta(days=2, hours=12)
    assert history_command(state, policy=None, since="2d", limit=20, fmt="json", now=now) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)["runs"]] == ["r3", "r2"]
    assert history_command(state, policy=None, since="1h", limit=20, fmt="text", now=now) == 0
    assert capsys.readouterr().out == "no runs recorded\n"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["history", "--limit", "0"], "must be >= 1"),
        (["history", "--limit", "ten"], "whole number"),
        (["history", "--since", "yesterday"], "invalid duration"),
        (["history", "--policy", " "], "not blank"),
        (["why", "b-del", "--format", "yaml"], "invalid choice"),
    ],
)
def test_bad_input_is_exit_2(
    state: StateLocation, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    assert main(["--log-format", "console", *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err


async def test_as_processes_results_on_stdout_errors_as_json_lines_on_stderr(tmp_path: Path) -> None:
    """The real entry point: no credentials needed, stdout only the result, the error a JSON line with its code."""
    location = resolve_state_location(str(tmp_path / "state.db"))
    await seed_journal(location)
    env = clean_env(GES_RETENTION_STATE=str(location.path))

    held = await run_cli(["hold", "b-del", "--reason", "investigate the deletion", "--until", "2999-01-01"], env)
    assert held.code == 0, held.stderr
    assert held.stdout.splitlines()[-1] == f"state: {location.path}" and held.stderr == ""

    why = await run_cli(["why", "b-del", "--format", "json"], env)
    assert why.code == 0, why.stderr
    document = json.loads(why.stdout)
    assert document["records"][0]["request_id"] == "req-1"
    assert document["hold"]["until"] == "2999-01-01T00:00:00Z"

    unknown = await run_cli(["why", "b-nothing"], env)
    assert unknown.code == 1 and unknown.stdout == ""
    [line] = unknown.events()
    assert line["level"] == "error" and "no record of b-nothing" in json.dumps(line) and line["exit_code"] == 1

    released = await run_cli(["release", "b-nothing"], env)
    assert released.code == 1 and released.stdout == ""

    memory = await run_cli(["hold", "b-1", "--reason", "r"], clean_env(GES_RETENTION_STATE=":memory:"))
    assert memory.code == 2 and memory.stdout == "" and ":memory:" in memory.stderr

    missing = tmp_path / "missing.db"
    absent = await run_cli(["history"], clean_env(GES_RETENTION_STATE=str(missing)))
    assert absent.code == 2 and str(missing) in absent.stderr and not missing.exists()


def test_history_of_runs_still_running_shows_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ges_retention.state import RunRecord, open_store

    location = resolve_state_location(str(tmp_path / "s.db"))

    async def seed() -> None:
        store = await open_store(location, mode="create")
        assert store is not None
        await store.start_run(RunRecord("r9", "schedule", ("a", "b"), "h", datetime(2026, 1, 1, tzinfo=UTC)))
        await store.close()

    asyncio.run(seed())
    assert history_command(location, policy=None, since=None, limit=5, fmt="text", now=datetime.now(UTC)) == 0
    [_, row] = capsys.readouterr().out.splitlines()
    assert row.split() == ["2026-01-01T00:00:00Z", "r9", "schedule", "running", "a,b", "-"]
