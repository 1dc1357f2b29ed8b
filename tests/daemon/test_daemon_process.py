"""`ges-retention daemon` as a real process: real signals, real listener, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ges_retention.demo import seed_demo_project
from ges_retention.emulator.app import RunningEmulator, running_emulator
from ges_retention.emulator.config import DEFAULT_AK, DEFAULT_SK, AccessKey, EmulatorConfig
from ges_retention.emulator.store import Store

PROJECT = "0a1b2c3d4e5f"
POLICY = f"""\
version: 1
policies:
  - name: prod
    project_id: {PROJECT}
    schedule: "30 2 * * *"
    select: {{graphs: ["prod-*"]}}
    keep: {{last: 3, daily: 7}}
    safety: {{max_deletes: 1000}}
  - name: staging
    project_id: {PROJECT}
    select: {{graphs: ["staging-*"]}}
    keep: {{last: 2}}
"""


class DaemonProcess:
    """A daemon subprocess whose stderr JSON events are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode().rstrip("\n")
            self.lines.append(line)
            if line.startswith("{"):
                self.events.append(json.loads(line))
            self._changed.set()

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]

    async def wait_event(self, name: str, count: int = 1, timeout_s: float = 20.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while len(self.named(name)) < count:
                self._changed.clear()
                if self.proc.returncode is not None and self._reader.done():
                    raise AssertionError(f"daemon exited before {name!r}: {self.lines[-5:]}")
                await self._changed.wait()
        return self.named(name)[count - 1]

    async def stop(self, signum: int | None = signal.SIGTERM) -> int:
        """Send `signum` (None: send nothing) and wait, bounded, for the exit code."""
        if signum is not None and self.proc.returncode is None:
            self.proc.send_signal(signum)
        async with asyncio.timeout(30):
            code = await self.proc.wait()
            await self._reader
        return code


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    store = Store()
    seed_demo_project(store, PROJECT, datetime.now(UTC))
    config = EmulatorConfig(project_ids=[PROJECT], access_keys=[AccessKey(DEFAULT_AK, DEFAULT_SK, PROJECT)])
    async with running_emulator(store=store, config=config) as emu:
        yield emu


async def start_daemon(policy: Path, emulator: RunningEmulator, **extra: str) -> DaemonProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GES_RETENTION_", "HUAWEICLOUD_SDK_"))}
    env.update(
        GES_RETENTION_ENDPOINT=emulator.url,
        GES_RETENTION_AK=DEFAULT_AK,
        GES_RETENTION_SK=DEFAULT_SK,
        GES_RETENTION_RATE_LIMIT="0",
        GES_RETENTION_HTTP="127.0.0.1:0",
        GES_RETENTION_LOG_LEVEL="info",
        **extra,
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ges_retention",
        "daemon",
        str(policy),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return DaemonProcess(proc)


def count(emulator: RunningEmulator, prefix: str) -> int:
    return sum(1 for b in emulator.store.backups(PROJECT) if b["graph_name"].startswith(prefix))


async def test_daemon_signals_and_clean_shutdown(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    daemon = await start_daemon(policy, emulator)
    try:
        await daemon.wait_event("daemon_started")
        # The on-demand policy ran at start.
        finished = await daemon.wait_event("run_finished")
        assert finished["outcome"] == "ok"
        assert count(emulator, "staging-") == 2
        prod_before = count(emulator, "prod-")

        daemon.proc.send_signal(signal.SIGHUP)
        await daemon.wait_event("policy_loaded", count=2)
        await daemon.wait_event("run_finished", count=2)  # reload runs the on-demand policies again
        assert daemon.named("run_started")[1]["trigger"] == "file"

        daemon.proc.send_signal(signal.SIGUSR1)
        await daemon.wait_event("run_finished", count=3)
        started = daemon.named("run_started")[2]
        assert started["trigger"] == "signal" and started["policies"] == ["prod", "staging"]
        assert count(emulator, "prod-") < prod_before

        listening = daemon.named("http_listening")[0]["url"]
        async with aiohttp.ClientSession() as session, session.get(f"{listening}/healthz") as r:
            assert r.status == 200
    finally:
        code = await daemon.stop(signal.SIGTERM)
    assert code == 0
    assert daemon.named("shutdown_requested") and daemon.named("daemon_stopped")
    assert not any("Traceback" in line for line in daemon.lines)


async def test_sigterm_mid_run_drains_and_exits_0(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    daemon = await start_daemon(policy, emulator, GES_RETENTION_CONCURRENCY="2")
    try:
        await daemon.wait_event("run_finished")
        emulator.config.latency_ms = 40
        daemon.proc.send_signal(signal.SIGUSR1)
        await daemon.wait_event("backup_deleted", count=len(daemon.named("backup_deleted")) + 3)
    finally:
        code = await daemon.stop(signal.SIGTERM)
    assert code == 0
    last = daemon.named("run_finished")[-1]
    assert last["outcome"] == "interrupted"
    logged = {e["backup_id"] for e in daemon.named("backup_deleted")}
    assert logged == set(emulator.stats.deleted_ids), "every started deletion finished and was logged"
    assert daemon.named("daemon_stopped")


async def test_invalid_file_at_start_is_exit_2(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("last: 2", "last: -2"))
    daemon = await start_daemon(policy, emulator)
    code = await daemon.stop(None)
    assert code == 2
    assert any("policies[1].keep.last" in line for line in daemon.lines)
    assert emulator.stats.to_json()["total_requests"] == 0
