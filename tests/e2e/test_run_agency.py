"""Other accounts, end to end: `ges-retention run` (a subprocess) against the emulator, with one policy in this
account and one acting through an IAM agency in another account's project.

- the agency's policy deletes exactly its plan in the other account, with temporary credentials (the process's own
  AK/SK cannot touch that project);
- IAM refusing the agency fails that project's listing with `error_code` `agency_refused`; the other policy runs;
- a security token expiring in the middle of the run is refreshed once and the run completes;
- credentials that are refused again after the refresh are a clear failure (APIGW.0307) of that listing only;
- a static token with an agency, and two agencies in one project, are exit 2 before any request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from e2e_helpers import PROJECT, cli_env, run_cli, start_cli

from ges_retention.backup import Backup
from ges_retention.demo import seed_demo_project
from ges_retention.emulator.app import EMULATOR_KEY, RunningEmulator, running_emulator
from ges_retention.emulator.config import DEFAULT_TOKEN, Agency
from ges_retention.policy_loading import parse_policy_text
from ges_retention.retention import plan_file
from support.emulators import seeded_config, seeded_store
from support.processes import Output

OTHER = "9f8e7d6c5b4a39281706"
AGENCY = {"domain": "other-account", "name": "ges-retention"}

POLICY = f"""\
version: 1
defaults:
  keep: {{last: 3, daily: 7, weekly: 4, names: ["*-golden"]}}
  safety: {{max_deletes: 1000, change_budget: unlimited}}
policies:
  - name: home
    project_id: {PROJECT}
  - name: remote
    project_id: {OTHER}
    agency: {{domain: other-account, name: ges-retention}}
"""


@pytest.fixture
async def emulator(now: datetime) -> AsyncIterator[RunningEmulator]:
    store = seeded_store(now)
    seed_demo_project(store, OTHER, now)
    config = seeded_config()
    config.project_ids.append(OTHER)
    config.agencies.append(Agency(AGENCY["domain"], AGENCY["name"], (OTHER,)))
    async with running_emulator(store=store, config=config) as emu:
        yield emu


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def env(emulator: RunningEmulator, **extra: str) -> dict[str, str]:
    return cli_env(emulator, GES_RETENTION_IAM_ENDPOINT=emulator.url, **extra)


def ids(emulator: RunningEmulator, project_id: str) -> set[str]:
    return {r["id"] for r in emulator.store.backups(project_id)}


def expected_keep(emulator: RunningEmulator, now: datetime, project_id: str) -> set[str]:
    """The ids the file's policies keep in `project_id`, as the planner decides them over the emulator's backups."""
    policy_file = parse_policy_text(POLICY)
    backups = {p: [Backup.from_api(r) for r in emulator.store.backups(p)] for p in (PROJECT, OTHER)}
    plans = plan_file(policy_file.policies, policy_file.policies, lambda p: backups[p], now)
    deleted = {d.backup.id for plan in plans for d in plan.deletions if plan.project_id == project_id}
    return ids(emulator, project_id) - deleted


def requests(emulator: RunningEmulator, operation: str) -> dict[str, int]:
    return dict(emulator.stats.to_json()["requests"].get(operation, {}))


async def test_a_policy_with_an_agency_deletes_in_the_other_account(
    emulator: RunningEmulator, policy_path: Path, now: datetime
) -> None:
    keep_home, keep_other = expected_keep(emulator, now, PROJECT), expected_keep(emulator, now, OTHER)
    assert len(ids(emulator, OTHER)) - len(keep_other) > 50

    result = await run_cli(
        ["run", str(policy_path), "--format", "json"], env(emulator, GES_RETENTION_LOG_LEVEL="debug")
    )

    assert result.code == 0, result.stderr
    assert ids(emulator, OTHER) == keep_other
    assert ids(emulator, PROJECT) == keep_home
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "ok" and summary["failed"] == 0
    # One assume_role for the whole run (cached), and nothing secret in the logs, even at debug level.
    assert requests(emulator, "iam_securitytokens") == {"201": 1}
    (issued,) = emulator.app[EMULATOR_KEY].tokens.temporary_keys()
    for secret in (issued.sk, issued.security_token):
        assert secret not in result.stderr and secret not in result.stdout


async def test_an_agency_iam_refuses_fails_that_listing_and_the_other_policy_runs(
    emulator: RunningEmulator, policy_path: Path, now: datetime
) -> None:
    emulator.config.agencies.clear()  # the other account withdrew its agency
    keep_home = expected_keep(emulator, now, PROJECT)
    before_other = ids(emulator, OTHER)

    result = await run_cli(["run", str(policy_path), "--format", "json"], env(emulator))

    assert result.code == 1, result.stderr
    failed = result.events("listing_failed")
    assert [(e["project_id"], e["error_code"]) for e in failed] == [(OTHER, "agency_refused")]
    assert "ges-retention" in failed[0]["error"] and "other-account" in failed[0]["error"]
    assert ids(emulator, OTHER) == before_other  # nothing of the refused project was touched
    assert ids(emulator, PROJECT) == keep_home  # the other policy ran
    assert requests(emulator, "iam_securitytokens") == {"403": 1}


async def test_a_security_token_expiring_mid_run_is_refreshed_once(
    emulator: RunningEmulator, policy_path: Path, now: datetime
) -> None:
    keep_home, keep_other = expected_keep(emulator, now, PROJECT), expected_keep(emulator, now, OTHER)
    await emulator.holds.hold("delete_backup")
    proc = await start_cli(["run", str(policy_path), "--format", "json"], env(emulator))
    output = Output(proc)  # read as it comes: a full pipe would stall the run before its deletions
    try:
        # Deletions have started (the listings used the first credentials); then the credentials expire.
        async with asyncio.timeout(60):
            await emulator.holds.wait_until_waiting("delete_backup", 4)
        assert emulator.expire_security_tokens() == 1
    finally:
        await emulator.holds.unhold("delete_backup")
    async with asyncio.timeout(60):
        stdout, stderr = await output.finish()

    assert proc.returncode == 0, stderr.decode()[-3000:]
    assert json.loads(stdout)["outcome"] == "ok"
    assert ids(emulator, OTHER) == keep_other
    assert ids(emulator, PROJECT) == keep_home
    assert requests(emulator, "iam_securitytokens") == {"201": 2}  # refreshed once, shared by every request
    assert requests(emulator, "delete_backup").get("401", 0) >= 1  # (the requests that met the expired token)


async def test_credentials_refused_after_the_refresh_are_a_clear_failure(
    emulator: RunningEmulator, policy_path: Path, now: datetime
) -> None:
    emulator.config.security_token_lifetime_s = 0  # every agency credential is expired when issued
    keep_home = expected_keep(emulator, now, PROJECT)
    before_other = ids(emulator, OTHER)

    result = await run_cli(["run", str(policy_path), "--format", "json"], env(emulator))

    assert result.code == 1, result.stderr
    failed = result.events("listing_failed")
    assert [(e["project_id"], e["error_code"]) for e in failed] == [(OTHER, "APIGW.0307")]
    assert "The token must be updated" in failed[0]["error"]
    assert requests(emulator, "iam_securitytokens") == {"201": 2}  # the first credentials and one refresh
    assert requests(emulator, "list_backups").get("401") == 2
    assert ids(emulator, OTHER) == before_other
    assert ids(emulator, PROJECT) == keep_home


async def test_a_static_token_with_an_agency_is_exit_2_before_any_request(
    emulator: RunningEmulator, policy_path: Path
) -> None:
    settings = env(emulator, GES_RETENTION_TOKEN=DEFAULT_TOKEN)
    del settings["GES_RETENTION_AK"], settings["GES_RETENTION_SK"]
    settings["GES_RETENTION_HTTP"] = ""  # (the daemon: no listener)
    for command in (["run", str(policy_path)], ["plan", str(policy_path)], ["daemon", str(policy_path)]):
        result = await run_cli(command, settings)
        assert result.code == 2, result.stderr
        assert "static token" in result.stderr and "'remote'" in result.stderr
        assert DEFAULT_TOKEN not in result.stderr
    assert emulator.stats.to_json()["total_requests"] == 0


async def test_two_agencies_in_one_project_are_exit_2_before_any_request(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY + f"  - name: remote-too\n    project_id: {OTHER}\n    agency: {{domain: third, name: x}}\n")
    for command in (["validate", str(path)], ["run", str(path)]):
        result = await run_cli(command, env(emulator))
        assert result.code == 2, result.stderr
        assert "'remote'" in result.stderr and "'remote-too'" in result.stderr
    assert emulator.stats.to_json()["total_requests"] == 0


async def test_a_live_plan_lists_the_other_account_through_the_agency(
    emulator: RunningEmulator, policy_path: Path, now: datetime
) -> None:
    keep_other = expected_keep(emulator, now, OTHER)
    before = ids(emulator, OTHER)

    result = await run_cli(["plan", str(policy_path), "--format", "json"], env(emulator))

    assert result.code == 0, result.stderr
    remote = next(p for p in json.loads(result.stdout)["policies"] if p["name"] == "remote")
    assert remote["project_id"] == OTHER
    assert {d["backup_id"] for d in remote["decisions"] if d["action"] == "keep"} == keep_other
    assert ids(emulator, OTHER) == before  # a plan deletes nothing
    assert requests(emulator, "iam_securitytokens") == {"201": 1}
