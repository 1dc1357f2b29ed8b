"""Helpers for daemon tests: a daemon subprocess whose JSON log events can be awaited."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from ges_retention.emulator.app import RunningEmulator
from subprocess_env import emulator_env

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


async def start_daemon(policy: Path, emulator: RunningEmulator, **extra: str) -> DaemonProcess:
    env = emulator_env(
        emulator.url,
        **{
            "GES_RETENTION_HTTP": "127.0.0.1:0",
            "GES_RETENTION_LOG_LEVEL": "info",
            # Shorter than the default 1 s so that a test's edits load sooner; the settling itself is the same.
            "GES_RETENTION_RELOAD_SETTLE_S": "0.2",
            **extra,
        },
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
