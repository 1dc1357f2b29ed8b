"""Run locks and the daemon lock on one SQLite journal, and a run killed between its intents and its outcomes.

Overlaps are made with the emulator's hold gate (`delete_backup` requests wait there), never with latency."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
from contextlib import closing
from pathlib import Path

import aiohttp
from e2e_helpers import PROJECT, cli_env, run_cli, start_cli

from ges_retention.emulator.app import RunningEmulator
from ges_retention.state import open_store, resolve_state_location
from support.processes import DaemonProcess
from support.waiting import wait_for

HOST = socket.gethostname()


def current_ids(emulator: RunningEmulator) -> set[str]:
    return {b["id"] for b in emulator.store.backups(PROJECT)}


def intents_written(state: Path) -> int:
    """How many DELETEs the journal (a SQLite file another process writes) has an intent for, read-only."""
    with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
        (count,) = db.execute("SELECT count(*) FROM deletions WHERE state NOT IN ('pending', 'cancelled')").fetchone()
        return int(count)


async def start_daemon(policy_path: Path, emulator: RunningEmulator, state: Path) -> DaemonProcess:
    env = cli_env(
        emulator, GES_RETENTION_STATE=str(state), GES_RETENTION_HTTP="127.0.0.1:0", GES_RETENTION_RELOAD_SETTLE_S="0"
    )
    daemon = await DaemonProcess.start(str(policy_path), env)
    await daemon.wait_event("daemon_started")
    return daemon


async def test_a_second_daemon_on_the_same_sqlite_file_exits_2_naming_the_first(
    emulator: RunningEmulator, policy_path: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    first = await start_daemon(policy_path, emulator, state)
    try:
        env = cli_env(emulator, GES_RETENTION_STATE=str(state), GES_RETENTION_HTTP="127.0.0.1:0")
        second = await run_cli(["daemon", str(policy_path)], env, timeout_s=30)
        assert second.code == 2, second.stderr
        (failure,) = second.events("command_failed")
        assert f"{HOST}:{first.proc.pid}" in failure["error"]
        assert second.events("daemon_started") == []
    finally:
        assert await first.stop() == 0


async def test_a_one_shot_run_beside_a_daemon_running_the_policy_waits_then_exits_1_naming_it(
    emulator: RunningEmulator, policy_path: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    daemon = await start_daemon(policy_path, emulator, state)
    try:
        await emulator.holds.hold("delete_backup")
        url = daemon.named("http_listening")[0]["url"]
        async with aiohttp.ClientSession() as session, session.post(f"{url}/v1/runs?policy=prod") as r:
            assert r.status == 202
        async with asyncio.timeout(20):
            await emulator.holds.wait_until_waiting("delete_backup", 1)  # the daemon is mid-run, holding the lock
        listed_before = emulator.stats.to_json()["requests"].get("list_backups", {})
        env = cli_env(emulator, GES_RETENTION_STATE=str(state), GES_RETENTION_STATE_LOCK_TIMEOUT_S="0.3")
        result = await run_cli(["run", str(policy_path), "--policy", "prod"], env)
        assert result.code == 1, result.stderr
        (failure,) = result.events("command_failed")
        assert f"{HOST}:{daemon.proc.pid}" in failure["error"] and "prod" in failure["error"]
        assert emulator.stats.to_json()["requests"].get("list_backups", {}) == listed_before  # it listed nothing
    finally:
        await emulator.holds.unhold("delete_backup")
        await daemon.wait_event("run_finished")
        assert await daemon.stop() == 0


async def test_a_daemon_fire_beside_a_one_shot_run_is_skipped_running_elsewhere(
    emulator: RunningEmulator, policy_path: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    daemon = await start_daemon(policy_path, emulator, state)
    await emulator.holds.hold("delete_backup")
    proc = await start_cli(
        ["run", str(policy_path), "--policy", "prod"], cli_env(emulator, GES_RETENTION_STATE=str(state))
    )
    output = asyncio.create_task(proc.communicate())
    try:
        async with asyncio.timeout(20):
            await emulator.holds.wait_until_waiting("delete_backup", 1)
        url = daemon.named("http_listening")[0]["url"]
        async with aiohttp.ClientSession() as session, session.post(f"{url}/v1/runs?policy=prod") as r:
            assert r.status == 202
        skipped = await daemon.wait_event("run_skipped", reason="running_elsewhere")
        assert (skipped["policy"], skipped["holder"]) == ("prod", f"{HOST}:{proc.pid}")
    finally:
        await emulator.holds.unhold("delete_backup")
        await output
        assert await daemon.stop() == 0
    assert proc.returncode == 0


async def test_sigkill_between_intents_and_outcomes_then_a_clean_run_agrees_with_ges(
    emulator: RunningEmulator, policy_path: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    env = cli_env(emulator, GES_RETENTION_STATE=str(state), GES_RETENTION_CONCURRENCY="4")
    listed = current_ids(emulator)
    await emulator.holds.hold("delete_backup")
    proc = await start_cli(["run", str(policy_path)], env)
    output = asyncio.create_task(proc.communicate())
    # A pseudo-random point between intents and outcomes: some DELETEs done, 4 in flight (their intents written),
    # and the next batch's intents committed but not sent.
    released = 3 + os.getpid() % 9
    await emulator.holds.release("delete_backup", released)
    async with asyncio.timeout(30):
        await emulator.holds.wait_until_waiting("delete_backup", 4)
    # The feeder commits the next batch while the workers wait: kill only once it has (a gate, not a delay).
    await wait_for(lambda: intents_written(state) > released + 4, timeout_s=30)
    proc.kill()
    await proc.wait()
    await output
    # The 4 DELETEs in flight reach GES after all (their client is gone): the journal never heard how they ended.
    await emulator.holds.unhold("delete_backup")
    await wait_for(lambda: sum(emulator.stats.to_json()["requests"].get("delete_backup", {}).values()) == released + 4)

    store = await open_store(resolve_state_location(str(state)), mode="create")
    assert store is not None
    try:
        records = {bid: (await store.why(bid)).records for bid in sorted(listed)}
        deleting = sorted(bid for bid, rows in records.items() if rows and rows[-1].state == "deleting")
        # The 4 in flight at least (outcomes are written in the background: some done ones may lack theirs too).
        assert len([b for b in deleting if b not in current_ids(emulator)]) >= 4
        # A committed intent whose DELETE was never sent: an operator holds that backup now.
        held = next(bid for bid in deleting if bid in current_ids(emulator))
        await store.put_hold(held, "an operator keeps it", by="test")
    finally:
        await store.close()

    sent_before = sum(emulator.stats.to_json()["requests"].get("delete_backup", {}).values())
    result = await run_cli(["run", str(policy_path), "--format", "json"], env)
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    sent = sum(emulator.stats.to_json()["requests"].get("delete_backup", {}).values()) - sent_before
    decided = {i for p in summary["policies"] for k in ("deleted", "already_deleted", "failed") for i in p["ids"][k]}
    assert sent == len(decided)  # every DELETE of the clean run is one its own batches committed
    assert held in current_ids(emulator) and held not in decided  # an old intent never sends a DELETE
    # The hold was placed before the run: the planner keeps the backup (`held: ...`), so no intent batch meets it.
    assert summary["policies"][0]["held"] == {}
    assert [e["holds"] for e in result.events("policy_planned") if e["policy"] == "prod"] == [1]

    store = await open_store(resolve_state_location(str(state)), mode="existing")
    assert store is not None
    try:
        present = current_ids(emulator)
        for backup_id in sorted(listed):
            rows = (await store.why(backup_id)).records
            assert all(r.state != "deleting" for r in rows), (backup_id, rows)
            last = rows[-1].state if rows else None
            if backup_id in present:
                assert last not in ("deleted", "already_deleted"), f"the journal says {backup_id} is gone"
            else:
                assert last in ("deleted", "already_deleted"), f"GES lost {backup_id}, the journal says {last}"
    finally:
        await store.close()
