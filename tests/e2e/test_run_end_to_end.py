"""`ges-retention run` and live `plan` as subprocesses against the emulator: what is deleted is exactly the plan."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import datetime
from pathlib import Path

from e2e_helpers import PROJECT, cli_env, expected_plan, run_cli, start_cli

from ges_retention.emulator.app import RunningEmulator
from ges_retention.emulator.config import FaultRates
from support.processes import Output


def current_ids(emulator: RunningEmulator) -> set[str]:
    return {r["id"] for r in emulator.store.backups(PROJECT)}


async def test_run_deletes_exactly_the_plan(emulator: RunningEmulator, policy_path: Path, now: datetime) -> None:
    delete, keep = expected_plan(emulator.store, now)
    assert len(delete) > 100 and len(keep) > 20

    result = await run_cli(["run", str(policy_path), "--format", "json"], cli_env(emulator))

    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "ok"
    assert summary["deleted"] == len(delete)
    assert set(emulator.stats.deleted_ids) == delete
    assert current_ids(emulator) == keep
    finished = result.events("run_finished")
    assert len(finished) == 1 and finished[0]["deleted"] == len(delete)
    assert {e["backup_id"] for e in result.events("backup_deleted")} == delete
    assert all(e["run_id"] == finished[0]["run_id"] for e in result.events("backup_deleted"))


async def test_second_run_deletes_nothing(emulator: RunningEmulator, policy_path: Path) -> None:
    first = await run_cli(["run", str(policy_path)], cli_env(emulator))
    assert first.code == 0, first.stderr
    left = current_ids(emulator)

    second = await run_cli(["run", str(policy_path), "--format", "json"], cli_env(emulator))

    assert second.code == 0, second.stderr
    summary = json.loads(second.stdout)
    assert (summary["planned"], summary["deleted"], summary["failed"]) == (0, 0, 0)
    assert current_ids(emulator) == left


async def test_dry_run_deletes_nothing_and_logs_the_plan(
    emulator: RunningEmulator, policy_path: Path, now: datetime
) -> None:
    delete, _ = expected_plan(emulator.store, now)
    before = current_ids(emulator)

    result = await run_cli(["run", str(policy_path), "--dry-run"], cli_env(emulator))

    assert result.code == 0, result.stderr
    assert current_ids(emulator) == before
    assert {e["backup_id"] for e in result.events("backup_expired")} == delete
    assert result.events("run_finished")[0]["outcome"] == "dry_run"


async def test_live_plan_matches_the_planner_and_deletes_nothing(
    emulator: RunningEmulator, policy_path: Path, now: datetime
) -> None:
    delete, keep = expected_plan(emulator.store, now)

    result = await run_cli(["plan", str(policy_path), "--format", "json"], cli_env(emulator))

    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    planned = {d["backup_id"] for p in doc["policies"] for d in p["decisions"] if d["action"] == "delete"}
    assert planned == delete
    assert current_ids(emulator) == delete | keep
    assert emulator.stats.deleted_ids == []


async def test_max_deletes_override_is_a_safety_stop(emulator: RunningEmulator, policy_path: Path) -> None:
    before = current_ids(emulator)

    result = await run_cli(["run", str(policy_path), "--max-deletes", "5"], cli_env(emulator))

    assert result.code == 3, result.stderr
    assert current_ids(emulator) == before
    assert {e["policy"] for e in result.events("safety_stop")} == {"prod", "staging"}


async def test_faulty_deletes_are_retried_until_done(
    emulator: RunningEmulator, policy_path: Path, now: datetime
) -> None:
    delete, keep = expected_plan(emulator.store, now)
    emulator.config.faults["delete_backup"] = FaultRates(error_503=0.1, drop=0.1)

    result = await run_cli(["run", str(policy_path)], cli_env(emulator, GES_RETENTION_MAX_ATTEMPTS="10"))

    assert result.code == 0, result.stderr
    assert current_ids(emulator) == keep
    assert set(emulator.stats.deleted_ids) == delete
    assert emulator.stats.to_json()["faults"], "faults were injected"


async def test_failed_listing_deletes_nothing(emulator: RunningEmulator, policy_path: Path) -> None:
    before = current_ids(emulator)
    emulator.config.faults["list_backups"] = FaultRates(error_500=1.0)

    result = await run_cli(["run", str(policy_path)], cli_env(emulator, GES_RETENTION_MAX_ATTEMPTS="2"))

    assert result.code == 1
    assert current_ids(emulator) == before
    failed = result.events("listing_failed")
    assert failed and failed[0]["project_id"] == PROJECT
    assert result.events("run_finished")[0]["skipped_projects"] == [PROJECT]


async def test_invalid_record_makes_the_listing_untrusted(emulator: RunningEmulator, policy_path: Path) -> None:
    emulator.store.add_backup(PROJECT, {"id": "broken", "graph_id": "g", "status": "success"}, complete=False)
    before = current_ids(emulator)

    result = await run_cli(["run", str(policy_path)], cli_env(emulator))

    assert result.code == 1
    assert current_ids(emulator) == before
    assert result.events("listing_failed")[0]["error_code"] == "invalid_record"


async def test_throttling_slows_the_run_and_it_completes(
    emulator: RunningEmulator, policy_path: Path, now: datetime
) -> None:
    _delete, keep = expected_plan(emulator.store, now)
    emulator.config.rate_limit_per_s = 100

    result = await run_cli(
        ["run", str(policy_path)],
        cli_env(
            emulator, GES_RETENTION_RATE_LIMIT="400", GES_RETENTION_MAX_ATTEMPTS="10", GES_RETENTION_CONCURRENCY="16"
        ),
    )

    assert result.code == 0, result.stderr
    assert current_ids(emulator) == keep
    assert result.events("request_throttled"), "the emulator throttled the client"


async def test_kill_9_then_a_clean_run_equals_one_clean_run(
    emulator: RunningEmulator, policy_path: Path, now: datetime
) -> None:
    _, keep = expected_plan(emulator.store, now)
    # The run is stopped mid-way at an explicit gate: 10 deletions let through, the next ones held, then kill -9.
    await emulator.holds.hold("delete_backup")
    proc = await start_cli(["run", str(policy_path)], cli_env(emulator, GES_RETENTION_CONCURRENCY="2"))
    output = asyncio.create_task(proc.communicate())  # read as it comes: a full pipe would stall the run
    await emulator.holds.release("delete_backup", 10)
    async with asyncio.timeout(30):
        await emulator.holds.wait_until_waiting("delete_backup", 2)
    assert len(emulator.stats.deleted_ids) == 10
    proc.kill()
    await proc.wait()
    await output
    await emulator.holds.unhold("delete_backup")
    assert keep < current_ids(emulator), "the killed run was in the middle"

    result = await run_cli(["run", str(policy_path)], cli_env(emulator))

    assert result.code == 0, result.stderr
    assert current_ids(emulator) == keep


async def test_sigterm_drains_and_exits_143(emulator: RunningEmulator, policy_path: Path, now: datetime) -> None:
    delete, keep = expected_plan(emulator.store, now)
    # 8 deletions let through, 4 more in flight at the gate when SIGTERM arrives; they are let go once the signal
    # was handled: they finish, and no other starts.
    await emulator.holds.hold("delete_backup")
    proc = await start_cli(["run", str(policy_path)], cli_env(emulator, GES_RETENTION_CONCURRENCY="4"))
    output = Output(proc)  # read as it comes: a full pipe would stall the run
    await emulator.holds.release("delete_backup", 8)
    async with asyncio.timeout(30):
        await emulator.holds.wait_until_waiting("delete_backup", 4)
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        await output.seen('"shutdown_requested"')
    await emulator.holds.unhold("delete_backup")
    stdout, stderr = await output.finish()

    assert proc.returncode == 143, stderr.decode()
    deleted = set(emulator.stats.deleted_ids)
    assert deleted < delete, "stopped before the end, deleted only planned backups"
    assert keep <= current_ids(emulator)
    events = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    finished = [e for e in events if e["event"] == "run_finished"]
    assert len(finished) == 1 and finished[0]["outcome"] == "interrupted"
    # Every deletion that started also finished and was logged: no request was abandoned in flight.
    logged = {e["backup_id"] for e in events if e["event"] == "backup_deleted"}
    assert logged == deleted
    assert b"interrupted" in stdout


async def test_run_deadline_reports_what_did_not_start(
    emulator: RunningEmulator, policy_path: Path, now: datetime
) -> None:
    # The deadline passes while the first two DELETEs wait at the emulator's gate, so nothing else can start however
    # fast the machine is; `deadline_s` only has to cover listing and planning before them, under load too.
    delete, keep = expected_plan(emulator.store, now)
    deadline_s = 3.0
    await emulator.holds.hold("delete_backup")
    env = cli_env(
        emulator,
        GES_RETENTION_RUN_DEADLINE_S=str(deadline_s),
        GES_RETENTION_CONCURRENCY="2",
        GES_RETENTION_REQUEST_TIMEOUT_S="60",  # a safety net: the held requests must outlive the deadline, not time out
    )
    proc = await start_cli(["run", str(policy_path), "--format", "json"], env)
    output = Output(proc)  # read as it comes: a full pipe would stall the run
    try:
        async with asyncio.timeout(30):
            await emulator.holds.wait_until_waiting("delete_backup", 2)
        # The run started before these requests: its deadline, on the machine's monotonic clock (our loop's too), is
        # past once `deadline_s` more has gone by here. Waiting for that is waiting for the event under test.
        await asyncio.sleep(deadline_s + 0.01)  # + 0.01: the loop may wake a clock tick early
    finally:
        await emulator.holds.unhold("delete_backup")
    stdout, stderr = await output.finish()

    assert proc.returncode == 1, stderr.decode()
    summary = json.loads(stdout)
    # The two held deletions finish; no other started past the deadline.
    assert (summary["deleted"], summary["failed"]) == (2, 0)
    assert summary["not_started"] == summary["planned"] - 2 == len(delete) - 2
    assert summary["outcome"] == "partial"
    assert len(emulator.stats.deleted_ids) == 2
    assert keep < current_ids(emulator)


async def test_token_and_iam_password_credentials(emulator: RunningEmulator, policy_path: Path, now: datetime) -> None:
    from ges_retention.emulator.config import DEFAULT_IAM_DOMAIN, DEFAULT_IAM_PASSWORD, DEFAULT_IAM_USER

    _, keep = expected_plan(emulator.store, now)
    emulator.config.tokens = {"static-token-for-tests": PROJECT}
    env = cli_env(emulator)
    del env["GES_RETENTION_AK"], env["GES_RETENTION_SK"]
    token_env = {**env, "GES_RETENTION_TOKEN": "static-token-for-tests"}
    planned = await run_cli(["plan", str(policy_path), "--format", "json"], token_env)
    assert planned.code == 0, planned.stderr

    password_env = {
        **env,
        "GES_RETENTION_IAM_USER": DEFAULT_IAM_USER,
        "GES_RETENTION_IAM_PASSWORD": DEFAULT_IAM_PASSWORD,
        "GES_RETENTION_IAM_DOMAIN": DEFAULT_IAM_DOMAIN,
        "GES_RETENTION_IAM_ENDPOINT": emulator.url,
    }
    result = await run_cli(["run", str(policy_path)], password_env)
    assert result.code == 0, result.stderr
    assert current_ids(emulator) == keep
    assert emulator.stats.to_json()["requests"]["iam_token"] == {"201": 1}


async def test_wrong_credentials_fail_the_listing_and_delete_nothing(
    emulator: RunningEmulator, policy_path: Path
) -> None:
    before = current_ids(emulator)
    result = await run_cli(["run", str(policy_path)], cli_env(emulator, GES_RETENTION_SK="not-the-secret-key"))
    assert result.code == 1
    assert current_ids(emulator) == before
    failed = result.events("listing_failed")[0]
    assert failed["error_code"] == "APIGW.0301"
    assert "not-the-secret-key" not in result.stderr + result.stdout
