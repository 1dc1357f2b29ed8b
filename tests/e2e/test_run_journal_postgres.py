"""The journal on a real PostgreSQL server (started by the tests, `support.postgres`): a wrong password is exit 2
before any request; an unreachable server is exit 1 for `run` and a daemon that waits, not ready, running nothing,
until it connects; a server lost mid-run stops every further DELETE (exit 1)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from e2e_helpers import cli_env, run_cli, start_cli

from ges_retention.emulator.app import RunningEmulator
from support.postgres import PgServer, free_port
from support.processes import DaemonProcess


@pytest.fixture(scope="module")
def pg_module() -> Iterator[PgServer]:
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def pg(pg_module: PgServer) -> AsyncIterator[PgServer]:
    """The module's server with an empty database; running again after a test that stopped it."""
    await pg_module.reset()
    yield pg_module
    if not (pg_module.data / "postmaster.pid").exists():
        pg_module.resume()


def deletes(emulator: RunningEmulator) -> int:
    return sum(emulator.stats.to_json()["requests"].get("delete_backup", {}).values())


async def test_a_run_journals_on_postgresql(emulator: RunningEmulator, policy_path: Path, pg: PgServer) -> None:
    result = await run_cli(["run", str(policy_path)], cli_env(emulator, GES_RETENTION_STATE=pg.url()))
    assert result.code == 0, result.stderr
    (created,) = result.events("state_created")
    assert created["backend"] == "postgresql" and "ges-test-secret" not in result.stderr
    again = await run_cli(["run", str(policy_path)], cli_env(emulator, GES_RETENTION_STATE=pg.url()))
    assert again.code == 0 and again.events("state_created") == []


async def test_a_wrong_password_is_exit_2_before_any_request(
    emulator: RunningEmulator, policy_path: Path, pg: PgServer
) -> None:
    state = pg.url(password="not-the-password")
    result = await run_cli(["run", str(policy_path)], cli_env(emulator, GES_RETENTION_STATE=state))
    assert result.code == 2, result.stderr
    assert "not-the-password" not in result.stderr
    assert emulator.stats.to_json()["total_requests"] == 0


async def test_an_unreachable_server_is_exit_1_for_run_before_any_request(
    emulator: RunningEmulator, policy_path: Path
) -> None:
    state = f"postgresql://ges:pw@127.0.0.1:{free_port()}/ges"
    result = await run_cli(["run", str(policy_path)], cli_env(emulator, GES_RETENTION_STATE=state))
    assert result.code == 1, result.stderr
    assert result.events("state_unavailable")
    assert emulator.stats.to_json()["total_requests"] == 0


async def test_a_daemon_waits_for_an_unreachable_server_not_ready_running_nothing(
    emulator: RunningEmulator, policy_path: Path, pg: PgServer
) -> None:
    pg.halt()
    env = cli_env(emulator, GES_RETENTION_STATE=pg.url(), GES_RETENTION_HTTP="127.0.0.1:0")
    daemon = await DaemonProcess.start(str(policy_path), env)
    try:
        await daemon.wait_event("daemon_started")
        assert daemon.named("state_unavailable")
        url = daemon.named("http_listening")[0]["url"]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/readyz") as r:
                assert r.status == 503
                assert "state" in " ".join((await r.json())["problems"])
            async with session.post(f"{url}/v1/runs?policy=prod") as r:
                assert r.status == 503
                assert (await r.json())["reason"] == "state_unavailable"
            async with session.post(f"{url}/v1/runs") as r:
                assert r.status == 503
            assert emulator.stats.to_json()["total_requests"] == 0  # nothing ran
            pg.resume()
            await daemon.wait_event("state_connected", timeout_s=30)
            async with session.get(f"{url}/readyz") as r:
                assert r.status == 200, await r.text()
            async with session.post(f"{url}/v1/runs?policy=prod") as r:
                assert r.status == 202
        await daemon.wait_event("run_finished")
    finally:
        assert await daemon.stop() == 0


async def test_a_server_lost_mid_run_stops_every_further_delete(
    emulator: RunningEmulator, policy_path: Path, pg: PgServer
) -> None:
    env = cli_env(emulator, GES_RETENTION_STATE=pg.url(), GES_RETENTION_CONCURRENCY="4")
    await emulator.holds.hold("delete_backup")
    proc = await start_cli(["run", str(policy_path), "--format", "json"], env)
    output = asyncio.create_task(proc.communicate())
    await emulator.holds.release("delete_backup", 6)
    async with asyncio.timeout(30):
        await emulator.holds.wait_until_waiting("delete_backup", 4)
    pg.halt()  # the journal is gone while 4 DELETEs are in flight
    await emulator.holds.unhold("delete_backup")
    stdout, stderr = await asyncio.wait_for(output, 60)
    assert proc.returncode == 1, stderr.decode()[-2000:]
    assert b'"state_unavailable"' in stderr
    # The 6 let through, the 4 in flight, and at most the intents committed before the server stopped and not yet
    # sent (outcomes are written in the background): the batch waiting for a worker and the feeder's next one, 4
    # each. No DELETE without its intent; none once a write was seen to fail.
    assert 10 <= deletes(emulator) <= 10 + 2 * 4
    summary = json.loads(stdout)
    assert summary["state_error"] and summary["not_started"] > 0
    assert summary["deleted"] + summary["not_started"] + summary["failed"] == summary["planned"]
