"""`ges-retention` subprocesses: a CLI run and its result, and a daemon whose stderr events can be awaited.

One implementation for every test folder (`e2e`, `daemon`, `reliability` add only what is theirs, e.g. the secret
scan). Waiting is on events (a line arrived, the process ended), bounded by a timeout; nothing polls.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CliResult", "DaemonProcess", "Output", "run_cli", "start_cli"]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    _events: list[dict[str, Any]] | None = field(default=None, repr=False)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The JSON log events on stderr (all, or those named `name`)."""
        if self._events is None:
            self._events = [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]
        return [e for e in self._events if name is None or e.get("event") == name]


async def start_cli(args: list[str], env: Mapping[str, str]) -> asyncio.subprocess.Process:
    """`python -m ges_retention ARGS` with exactly `env`, stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ges_retention",
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process, timeout_s: float) -> CliResult:
    """Wait (bounded) for a CLI subprocess and collect its output; killed if it overstays."""
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CliResult(proc.returncode, stdout.decode(), stderr.decode())


async def run_cli(args: list[str], env: Mapping[str, str], timeout_s: float = 60) -> CliResult:
    """Run the real CLI in a subprocess while this loop keeps serving the emulator."""
    return await finish(await start_cli(args, env), timeout_s)


class Output:
    """A running CLI's stderr, read as it comes (so a full pipe never stalls it), with a wait for a given text."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stderr = bytearray()
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        try:
            async for line in self.proc.stderr:
                self.stderr += line
                self._changed.set()
        finally:
            self._changed.set()

    async def seen(self, text: str) -> None:
        """Until `text` appeared on stderr (bound it with a timeout); fails if stderr closes first."""
        needle = text.encode()
        while needle not in self.stderr:
            if self._reader.done():
                raise AssertionError(f"stderr closed before {text!r}")
            self._changed.clear()
            await self._changed.wait()

    async def finish(self) -> tuple[bytes, bytes]:
        """(stdout, stderr) once the process ended."""
        assert self.proc.stdout is not None
        stdout = await self.proc.stdout.read()
        await self.proc.wait()
        await self._reader
        return stdout, bytes(self.stderr)


class DaemonProcess:
    """A `ges-retention daemon` subprocess; its stderr lines (and JSON events) are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.stdout_lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, policy_path: str, env: Mapping[str, str]) -> DaemonProcess:
        return cls(await start_cli(["daemon", policy_path], env))

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        try:
            async for raw in self.proc.stderr:
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if line.startswith("{"):
                    self.events.append(json.loads(line))
                self._changed.set()
        finally:
            self._changed.set()  # stderr closed: the process is ending, wake every waiter

    def named(self, name: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name and all(e.get(k) == v for k, v in match.items())]

    async def wait_event(self, name: str, count: int = 1, timeout_s: float = 20.0, **match: Any) -> dict[str, Any]:
        """The `count`-th event `name` (with the `match` keys), once it arrives; fails if the daemon exits first."""
        async with asyncio.timeout(timeout_s):
            while len(self.named(name, **match)) < count:
                if self._reader.done():
                    raise AssertionError(f"the daemon exited before {name!r}: {self.lines[-5:]}")
                self._changed.clear()
                await self._changed.wait()
        return self.named(name, **match)[count - 1]

    async def lines_past(self, count: int) -> None:
        """Until more than `count` stderr lines arrived; bound it with a timeout. Fails if stderr closes first."""
        while len(self.lines) <= count:
            if self._reader.done():
                raise AssertionError(f"the daemon exited: {self.lines[-5:]}")
            self._changed.clear()
            await self._changed.wait()

    async def stop(self, signum: int | None = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Send `signum` (None: send nothing) and wait, bounded, for the exit code; stdout is kept in
        `stdout_lines`. Killed if it overstays."""
        if signum is not None and self.proc.returncode is None:
            self.proc.send_signal(signum)
        try:
            async with asyncio.timeout(timeout_s):
                code = await self.proc.wait()
                await self._reader
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise
        assert self.proc.stdout is not None
        self.stdout_lines = (await self.proc.stdout.read()).decode().splitlines()
        return code
