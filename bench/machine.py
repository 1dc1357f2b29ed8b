"""The machine and the processes: CPU pinning, CPU time from /proc, load average, peak RSS."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CPUS",
    "CpuPlan",
    "cpu_plan",
    "cpu_seconds_of",
    "load_average",
    "machine_info",
    "pin",
    "preexec_pin",
    "runqueue_wait_s",
    "source_info",
]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
CPUS: list[int] = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Where each side runs: the emulator on one CPU, the measured side on another (when there are two)."""

    emulator: int | None
    measured: int | None

    def to_json(self) -> dict[str, int | None]:
        return {"emulator_cpu": self.emulator, "measured_cpu": self.measured}


def cpu_plan() -> CpuPlan:
    if len(CPUS) >= 2:
        return CpuPlan(CPUS[0], CPUS[1])
    return CpuPlan(None, None)


def pin(pid: int, cpu: int | None) -> None:
    """Pin a process (its main thread, and every thread it starts later) to one CPU; a no-op without a CPU."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, {cpu})


def preexec_pin(cpu: int | None) -> Callable[[], None] | None:
    """For `subprocess.Popen(preexec_fn=...)`: the child is pinned before it runs any Python."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads), from /proc (10 ms resolution)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def runqueue_wait_s(pid: int) -> float:
    """Seconds the process's main thread was runnable but waited for a CPU held by something else: a measure
    disturbed by the rest of the machine shows here (/proc/PID/schedstat; 0 where unavailable). The main thread only:
    the threads of one process pinned to one CPU wait for each other, which is no disturbance."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 2)
    except OSError:
        pass
    return None


def source_info(root: str) -> dict[str, object]:
    """What was measured: the service's version and the checkout's commit (and whether service/ had changes)."""
    import subprocess

    from ges_retention import __version__

    info: dict[str, object] = {"ges_retention_version": __version__}
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "service"], cwd=root, capture_output=True, text=True
        )
    except OSError:
        return info
    if head.returncode == 0:
        info["git_commit"] = head.stdout.strip()
        info["service_tree_modified"] = bool(status.stdout.strip())
    return info


def machine_info() -> dict[str, object]:
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": CPUS,
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }
