"""Scenario 9, cold start: `ges-retention --version` (< 0.15 s) and `ges-retention validate
config/policy.example.yaml` (< 0.35 s), the median of N fresh processes each, with `python -c pass` measured in the
same run as the floor (issue 17: a one-shot CronJob or systemd timer pays the start-up on every run).

The three commands take turns, round after round, so that a busy moment of the machine weighs on all three alike;
one unmeasured round first writes the bytecode caches. Each process is pinned to the measured CPU and timed from
`Popen` to `wait4` (no polling), with its CPU time from rusage.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.measure import ROOT, child_env

__all__ = ["run_cold_start"]

POLICY_FILE = "config/policy.example.yaml"
SETTINGS_PREFIXES = ("GES_RETENTION_", "HUAWEICLOUD_SDK_")


def _cli() -> list[str]:
    """The installed console script, as a CronJob runs it; `python -m ges_retention` where it is not installed."""
    script = Path(sys.executable).parent / "ges-retention"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ges_retention"]


def _commands() -> dict[str, list[str]]:
    return {
        "python_pass": [sys.executable, "-c", "pass"],
        "version": [*_cli(), "--version"],
        "validate": [*_cli(), "validate", POLICY_FILE],
    }


def _time_once(command: list[str], *, cpu: int | None, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process run to its end."""
    from bench.machine import preexec_pin

    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
        preexec_fn=preexec_pin(cpu),  # the orchestrator starts no threads: safe
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def run_cold_start(*, runs: int = 5) -> dict[str, Any]:
    from bench.machine import cpu_plan
    from bench.report import Target, scenario_result

    cpu = cpu_plan().measured
    # The machine's service settings would change what `validate` logs (or make it fail): none, like a fresh host.
    env = {k: v for k, v in child_env().items() if not k.startswith(SETTINGS_PREFIXES)}
    # An installed package has its bytecode: the warm-up round writes it here too, whatever this shell says.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    commands = _commands()
    for command in commands.values():  # the bytecode caches, and the page cache, warm: not measured
        _time_once(command, cpu=cpu, env=env)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            wall, cpu_s = _time_once(command, cpu=cpu, env=env)
            walls[name].append(wall)
            cpus[name].append(cpu_s)
    median = {name: round(statistics.median(values), 4) for name, values in walls.items()}
    figures: dict[str, Any] = {f"{name}_s": median[name] for name in commands} | {
        f"{name}_cpu_s": round(statistics.median(cpus[name]), 4) for name in commands
    }
    figures["version_above_python_s"] = round(median["version"] - median["python_pass"], 4)
    figures["validate_above_python_s"] = round(median["validate"] - median["python_pass"], 4)
    figures["walls_s"] = {name: [round(w, 4) for w in values] for name, values in walls.items()}
    parameters = {
        "runs": runs,
        "commands": {name: " ".join(command) for name, command in commands.items()},
        "measured": "wall time from Popen to wait4 of each fresh process (median of the runs), the three commands "
        "taking turns; CPU time from rusage",
        "cpu": cpu,
    }
    targets = [
        Target("version_s", median["version"], "<=", 0.15, "ges-retention --version, median s"),
        Target("validate_s", median["validate"], "<=", 0.35, f"ges-retention validate {POLICY_FILE}, median s"),
    ]
    # Start-up is CPU work (the files are cached): wall time beyond the CPU time is, mostly, waiting for a CPU (plus
    # a millisecond of exec and exit per process), summed over every run, so that the longest commands weigh most.
    all_walls = [w for values in walls.values() for w in values]
    all_cpus = [c for values in cpus.values() for c in values]
    waited = max(0.0, sum(all_walls) - sum(all_cpus)) / max(1e-9, sum(all_walls))
    return scenario_result(parameters, figures, targets, disturbed=round(waited, 4))
