"""Running a measured child process: pinned, its CPU sampled from /proc while it runs, its rusage when it ends."""

from __future__ import annotations

import bisect
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench.machine import cpu_seconds_of, preexec_pin, runqueue_wait_s

__all__ = ["ChildRun", "CpuTrace", "child_env", "run_child"]

_SAMPLE_EVERY_S = 0.02
# The checkout holding the `bench` package: children run `python -m bench.<module>` from any working directory.
ROOT = str(Path(__file__).resolve().parent.parent)


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with the checkout on PYTHONPATH."""
    result = dict(env if env is not None else os.environ)
    paths = [p for p in result.get("PYTHONPATH", "").split(os.pathsep) if p]
    result["PYTHONPATH"] = os.pathsep.join([ROOT, *(p for p in paths if p != ROOT)])
    return result


@dataclass(slots=True)
class CpuTrace:
    """(wall clock, CPU seconds) samples of one process, to read its CPU time at any instant of its life."""

    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.walls.append(wall)
        self.cpus.append(cpu)

    def at(self, wall: float) -> float:
        """CPU seconds used by `wall` (epoch seconds), interpolated between the two nearest samples."""
        if not self.walls:
            return 0.0
        i = bisect.bisect_left(self.walls, wall)
        if i <= 0:
            return self.cpus[0]
        if i >= len(self.walls):
            return self.cpus[-1]
        w0, w1 = self.walls[i - 1], self.walls[i]
        c0, c1 = self.cpus[i - 1], self.cpus[i]
        return c0 if w1 <= w0 else c0 + (c1 - c0) * (wall - w0) / (w1 - w0)

    def between(self, start: float, end: float) -> float:
        return max(0.0, self.at(end) - self.at(start))


@dataclass(slots=True)
class ChildRun:
    returncode: int
    stdout: str
    wall_s: float
    cpu_s: float  # user + system of the whole process, from wait4
    user_s: float
    system_s: float
    max_rss_mb: float
    trace: CpuTrace
    watched: CpuTrace  # the CPU of `watch_pid` (the emulator) over the same instants
    runqueue_wait_s: float  # waiting for a CPU taken by another process (last sample before the exit)


def run_child(
    command: Sequence[str],
    *,
    cpu: int | None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stderr_path: str | Path | None = None,
    timeout_s: float = 600.0,
    watch_pid: int | None = None,
) -> ChildRun:
    """Run `command` pinned to `cpu`, sampling its CPU time; stdout is captured (through a temporary file, so that a
    large output never blocks the child), stderr goes to `stderr_path` (default: /dev/null)."""
    trace = CpuTrace()
    watched = CpuTrace()
    waited = 0.0
    with tempfile.TemporaryFile() as out, _open_err(stderr_path) as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=child_env(env),
            cwd=cwd,
            preexec_fn=preexec_pin(cpu),  # the orchestrator starts no threads: safe
        )
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                now = time.time()
                if watch_pid is not None:
                    watched.add(now, cpu_seconds_of(watch_pid))
                try:
                    trace.add(now, cpu_seconds_of(proc.pid))
                    waited = max(waited, runqueue_wait_s(proc.pid))
                except (OSError, ValueError, IndexError):
                    pass  # exited between wait4 and the read
                if time.monotonic() - started > timeout_s:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(_SAMPLE_EVERY_S)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode()
    trace.add(time.time(), usage.ru_utime + usage.ru_stime)
    return ChildRun(
        returncode=proc.returncode,
        stdout=stdout,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        user_s=usage.ru_utime,
        system_s=usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        trace=trace,
        watched=watched,
        runqueue_wait_s=waited,
    )


def _open_err(path: str | Path | None) -> IO[bytes]:
    return open(path if path is not None else os.devnull, "wb")
