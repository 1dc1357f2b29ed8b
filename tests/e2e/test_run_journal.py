"""`ges-retention run` as a subprocess with the journal: what it records, where, and the state settings that are
misconfiguration (exit 2 before any request)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from e2e_helpers import PROJECT, cli_env, run_cli

from ges_retention.emulator.app import RunningEmulator
from ges_retention.state import CURRENT_VERSION, open_store, resolve_state_location


async def test_a_run_is_journalled_and_why_shows_each_deletion(
    emulator: RunningEmulator, policy_path: Path, tmp_path: Path
) -> None:
    state = tmp_path / "nested" / "state.db"  # parent directories are created
    result = await run_cli(
        ["run", str(policy_path), "--format", "json"], cli_env(emulator, GES_RETENTION_STATE=str(state))
    )
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    (created,) = result.events("state_created")
    assert created["level"] == "warning" and created["location"] == str(state)
    deleted = summary["policies"][0]["ids"]["deleted"]
    assert deleted
    store = await open_store(resolve_state_location(str(state)), mode="existing")
    assert store is not None
    try:
        report = await store.why(deleted[0])
        (record,) = report.records
        assert (record.state, record.scope.policy, record.scope.project_id) == ("deleted", "prod", PROJECT)
        assert record.run_id == summary["run_id"] and record.reasons
        assert record.request_id and len(record.request_id) == 32  # the emulator's X-Request-Id
        assert emulator.store.backup(PROJECT, deleted[0]) is None
        run = await store.get_run(summary["run_id"])
        assert run is not None and run.outcome == "ok" and run.counts["deleted"] == summary["deleted"]
    finally:
        await store.close()
    again = await run_cli(["run", str(policy_path)], cli_env(emulator, GES_RETENTION_STATE=str(state)))
    assert again.code == 0 and again.events("state_created") == []


async def test_the_default_state_is_under_xdg_state_home(
    emulator: RunningEmulator, policy_path: Path, tmp_path: Path
) -> None:
    result = await run_cli(["run", str(policy_path)], cli_env(emulator, XDG_STATE_HOME=str(tmp_path / "xdg")))
    assert result.code == 0, result.stderr
    expected = tmp_path / "xdg" / "ges-retention" / "state.db"
    assert expected.is_file()
    assert result.events("state_created")[0]["location"] == str(expected)


async def test_memory_state_runs_and_keeps_nothing(emulator: RunningEmulator, policy_path: Path) -> None:
    result = await run_cli(["run", str(policy_path)], cli_env(emulator, GES_RETENTION_STATE=":memory:"))
    assert result.code == 0, result.stderr
    assert result.events("state_created")[0]["location"] == ":memory:"


async def _newer_state(path: Path) -> str:
    store = await open_store(resolve_state_location(str(path)), mode="create")
    assert store is not None
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', '2099-01-01T00:00:00Z')",
            (CURRENT_VERSION + 1,),
        )
    return str(path)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("{tmp}/a-directory/", "names a directory"),
        ("mysql://db.example/ges", "unsupported state URL scheme"),
        ("postgresql://ges:s3cret-pw@127.0.0.1:0/ges", "port"),
        ("{tmp}/not-a-dir/state.db", "state"),
        ("{newer}", "newer than this program"),
        ("{tmp}/foreign.db", "not a ges-retention state"),
        ("/sys/ges-retention-test/state.db", "permission denied"),  # root may not create it either
    ],
)
async def test_a_misconfigured_state_is_exit_2_before_any_request(
    emulator: RunningEmulator, policy_path: Path, tmp_path: Path, state: str, message: str
) -> None:
    (tmp_path / "not-a-dir").write_text("a file where a directory is needed\n")
    with sqlite3.connect(tmp_path / "foreign.db") as conn:
        conn.execute("CREATE TABLE other (x)")
    newer = await _newer_state(tmp_path / "newer.db") if "{newer}" in state else ""
    value = state.format(tmp=tmp_path, newer=newer)
    result = await run_cli(["run", str(policy_path)], cli_env(emulator, GES_RETENTION_STATE=value))
    assert result.code == 2, result.stderr
    (failure,) = result.events("command_failed")
    assert message in failure["error"]
    assert "s3cret-pw" not in result.stderr
    assert emulator.stats.to_json()["total_requests"] == 0


async def test_a_daemon_with_a_misconfigured_state_exits_2_before_any_request(
    emulator: RunningEmulator, policy_path: Path
) -> None:
    env = cli_env(emulator, GES_RETENTION_STATE="mysql://db.example/ges", GES_RETENTION_HTTP="127.0.0.1:0")
    result = await run_cli(["daemon", str(policy_path)], env)
    assert result.code == 2, result.stderr
    assert "unsupported state URL scheme" in result.events("command_failed")[0]["error"]
    assert result.events("daemon_started") == []
    assert emulator.stats.to_json()["total_requests"] == 0


async def test_plan_reads_a_state_and_never_creates_or_writes_one(
    emulator: RunningEmulator, policy_path: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    env = cli_env(emulator, GES_RETENTION_STATE=str(state))
    planned = await run_cli(["plan", str(policy_path), "--format", "json"], env)
    assert planned.code == 0, planned.stderr
    assert not state.exists() and planned.events("state_created") == []
    assert (await run_cli(["run", str(policy_path)], env)).code == 0
    before = state.stat().st_mtime_ns, state.stat().st_size
    again = await run_cli(["plan", str(policy_path), "--format", "json"], env)
    assert again.code == 0, again.stderr
    assert (state.stat().st_mtime_ns, state.stat().st_size) == before
