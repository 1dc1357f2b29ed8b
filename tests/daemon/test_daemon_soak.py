"""Soak: runs triggered back to back over HTTP, with faults, must not grow memory, tasks or open sockets."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from daemon_helpers import POLICY, PROJECT, DaemonProcess, start_daemon

from ges_retention.emulator.app import RunningEmulator
from ges_retention.emulator.config import FaultRates


def proc_figures(pid: int) -> dict[str, int]:
    fds = os.listdir(f"/proc/{pid}/fd")
    sockets = 0
    for fd in fds:
        try:
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    rss_kb = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return {"fds": len(fds), "sockets": sockets, "rss_kb": rss_kb}


def add_fresh_backups(emulator: RunningEmulator, round_: int) -> None:
    """New newest backups on every prod graph, so every run has something to delete."""
    now = datetime.now(UTC)
    for graph in emulator.store.graphs(PROJECT):
        if graph["name"].startswith("prod-"):
            for i in range(4):
                start = now - timedelta(minutes=30 - i)
                emulator.store.add_backup(
                    PROJECT,
                    {
                        "id": f"soak-{round_}-{graph['id']}-{i}",
                        "graph_id": graph["id"],
                        "start_timestamp": int(start.timestamp() * 1000),
                    },
                )


async def run_rounds(daemon: DaemonProcess, emulator: RunningEmulator, url: str, rounds: int, start: int) -> None:
    async with aiohttp.ClientSession() as session:
        for round_ in range(start, start + rounds):
            add_fresh_backups(emulator, round_)
            finished = len(daemon.named("run_finished"))
            await _idle(session, url)
            async with session.post(f"{url}/v1/runs") as r:
                assert r.status == 202, await r.text()
            await daemon.wait_event("run_finished", count=finished + 1, timeout_s=60)


@pytest.mark.parametrize(
    "rounds", [pytest.param(15, id="short"), pytest.param(1500, id="long", marks=pytest.mark.slow)]
)
async def test_back_to_back_runs_do_not_leak(emulator: RunningEmulator, tmp_path: Path, rounds: int) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace('    schedule: "30 2 * * *"\n', ""))
    emulator.config.faults["delete_backup"] = FaultRates(error_503=0.1, drop=0.05)
    daemon = await start_daemon(policy, emulator, GES_RETENTION_MAX_ATTEMPTS="8", GES_RETENTION_BACKOFF_MAX_S="0.02")
    pid = daemon.proc.pid
    try:
        await daemon.wait_event("daemon_started")
        url = str(daemon.named("http_listening")[0]["url"])
        warmup = max(5, rounds // 10)
        await run_rounds(daemon, emulator, url, warmup, 0)
        before = proc_figures(pid)
        tasks_before = await _tasks(url)
        await run_rounds(daemon, emulator, url, rounds, warmup)
        after = proc_figures(pid)
        tasks_after = await _tasks(url)
    finally:
        code = await daemon.stop()
    assert code == 0
    deleted = len(emulator.stats.deleted_ids)
    print(f"soak rounds={rounds} deleted={deleted} before={before} after={after} tasks {tasks_before}->{tasks_after}")
    assert deleted >= rounds * 2
    assert tasks_after <= tasks_before
    assert after["sockets"] <= before["sockets"] + 2
    assert after["fds"] <= before["fds"] + 2
    assert after["rss_kb"] <= before["rss_kb"] * 1.10 + 4096


async def _idle(session: aiohttp.ClientSession, url: str) -> None:
    """Bounded wait until the daemon reports no run in progress (a run logs run_finished just before it ends)."""
    async with asyncio.timeout(10):
        while True:
            async with session.get(f"{url}/healthz") as r:
                if (await r.json())["runs_in_progress"] == 0:
                    return
            await asyncio.sleep(0.005)


async def _tasks(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as r:
        body = await r.json()
    return int(body["tasks"])
