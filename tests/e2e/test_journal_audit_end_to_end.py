"""The journal end to end: `run` against the emulator, then `why` and `history` as a person would use them; and a
hold placed with the CLI while a run is deleting protects that backup in the same run.

Overlaps are made with the emulator's hold gate (`/_emulator/holds/delete_backup`), never with latency.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

from e2e_helpers import POLICY, PROJECT, cli_env, run_cli, start_cli

from ges_retention.backup import Backup
from ges_retention.emulator.app import RunningEmulator
from ges_retention.policy_loading import parse_policy_text
from ges_retention.retention import plan_file
from ges_retention.retention_decisions import Decision
from ges_retention.state import open_store, resolve_state_location
from support.processes import finish


def planned_deletions(emulator: RunningEmulator, now: datetime) -> dict[str, tuple[str, Decision]]:
    """backup id -> (policy, decision) of every deletion the planner decides now, in plan order."""
    policy_file = parse_policy_text(POLICY)
    backups = [Backup.from_api(r) for r in emulator.store.backups(PROJECT)]
    plans = plan_file(policy_file.policies, policy_file.policies, lambda _p: backups, now)
    return {d.backup.id: (p.policy, d) for p in plans for d in p.deletions}


def current_ids(emulator: RunningEmulator) -> set[str]:
    return {r["id"] for r in emulator.store.backups(PROJECT)}


async def test_why_after_a_run_shows_policy_run_reasons_and_the_deletes_request_id(
    emulator: RunningEmulator, policy_path: Path, now: datetime, tmp_path: Path
) -> None:
    env = cli_env(emulator, GES_RETENTION_STATE=str(tmp_path / "state.db"))
    planned = planned_deletions(emulator, now)
    assert len(planned) > 20

    result = await run_cli(["run", str(policy_path), "--format", "json"], env)
    assert result.code == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]

    for backup_id in sorted(planned)[:5]:
        policy, decision = planned[backup_id]
        why = await run_cli(["why", backup_id, "--format", "json"], env)
        assert why.code == 0, why.stderr
        document = json.loads(why.stdout)
        [record] = document["records"]
        assert record["state"] == "deleted"
        assert (record["policy"], record["run_id"], record["planned_run_id"]) == (policy, run_id, run_id)
        assert record["reasons"] == list(decision.reasons)
        assert record["request_id"] == emulator.stats.delete_request_ids[backup_id]
        assert record["deleted_at"] is not None and record["attempts"] >= 1
        assert record["graph_id"] == decision.backup.graph_id and record["project_id"] == PROJECT
        assert document["hold"] is None

    text = await run_cli(["why", sorted(planned)[0]], env)
    assert text.code == 0
    assert f"by run {run_id}" in text.stdout
    assert f"request_id {emulator.stats.delete_request_ids[sorted(planned)[0]]}" in text.stdout

    kept = sorted(current_ids(emulator))[0]
    unknown = await run_cli(["why", kept], env)
    assert unknown.code == 1 and unknown.stdout == ""
    assert f"no record of {kept}" in unknown.events("command_failed")[0]["error"]

    history = await run_cli(["history", "--format", "json"], env)
    assert history.code == 0, history.stderr
    [run] = json.loads(history.stdout)["runs"]
    assert (run["run_id"], run["trigger"], run["outcome"]) == (run_id, "cli", "ok")
    assert run["counts"]["deleted"] == len(planned)


async def test_a_hold_placed_while_a_run_deletes_protects_that_backup_in_the_same_run(
    emulator: RunningEmulator, policy_path: Path, now: datetime, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    env = cli_env(emulator, GES_RETENTION_STATE=str(state), GES_RETENTION_CONCURRENCY="1")
    planned = planned_deletions(emulator, now)
    gate = emulator.holds
    await gate.hold("delete_backup")
    proc = await start_cli(["run", str(policy_path), "--format", "json"], env)
    try:
        async with asyncio.timeout(30):
            await gate.wait_until_waiting("delete_backup", 1)  # the run has planned and sent its first DELETE
        # The backup the run will reach last, and whose intent is certainly not written yet.
        store = await open_store(resolve_state_location(str(state)), mode="existing")
        assert store is not None
        try:
            candidates = [bid for bid in reversed(list(planned)) if not (await store.why(bid)).records]
        finally:
            await store.close()
        target = candidates[0]
        held = await run_cli(["hold", target, "--reason", "restore drill"], env)
        assert held.code == 0, held.stderr
        assert f"state: {state}" in held.stdout
    finally:
        await gate.unhold("delete_backup")
    result = await finish(proc, 60)

    assert result.code == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    assert target in current_ids(emulator)
    assert target not in emulator.stats.deleted_ids
    assert set(emulator.stats.deleted_ids) == set(planned) - {target}
    why = await run_cli(["why", target, "--format", "json"], env)
    assert why.code == 0, why.stderr
    document = json.loads(why.stdout)
    [record] = document["records"]
    assert (record["state"], record["run_id"], record["closed_reasons"]) == (
        "cancelled",
        run_id,
        ["held: restore drill"],
    )
    assert record["reasons"] and not any(r.startswith("held") for r in record["reasons"])  # why it was planned
    assert record["request_id"] is None
    assert document["hold"]["reason"] == "restore drill" and document["hold"]["in_force"] is True
    text = await run_cli(["why", target], env)
    assert "cancelled" in text.stdout and ": kept: held: restore drill" in text.stdout
