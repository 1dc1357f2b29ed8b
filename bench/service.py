"""The measured side when it is the service: the real CLI, `python -m ges_retention run POLICY --format json`.

Everything the service does on a run is in the measure: settings, listing, planning, the pacer, the in-flight cap,
retries, the per-deletion JSON log lines (info level, written to a file). The phases are read back from the log's
timestamps: listing (`run_started` -> `backups_listed`), planning (-> the last `backup_expired`), deletion
(-> `run_finished`); the CPU time of each phase from the process's /proc samples at those instants.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.emulator import Emulator
from bench.measure import ChildRun, run_child

__all__ = ["GFS_KEEP", "ServiceRun", "measure_service", "run_service", "service_env", "write_policy"]

# A full grandfather-father-son policy, the kind the planning benchmarks use.
GFS_KEEP: dict[str, Any] = {
    "last": 3,
    "hourly": 24,
    "daily": 7,
    "weekly": 4,
    "monthly": 12,
    "yearly": "unlimited",
    "within": "2d",
    "names": ["*-golden"],
}


def write_policy(
    directory: Path, project_id: str, *, keep: dict[str, Any], max_deletes: int, failed_after: str | None = None
) -> Path:
    """A one-policy file (JSON is YAML) over every graph of the project."""
    policy: dict[str, Any] = {
        "name": "bench",
        "project_id": project_id,
        "keep": keep,
        # A bench measures deleting, on a new state each time: the change gate would hold every first run.
        "safety": {"min_keep": 1, "max_deletes": max_deletes, "change_budget": "unlimited"},
    }
    if failed_after is not None:
        policy["failed"] = {"delete_after": failed_after}
    path = directory / "policy.yaml"
    path.write_text(json.dumps({"version": 1, "policies": [policy]}, indent=2))
    return path


@dataclass(slots=True)
class ServiceRun:
    exit_code: int
    summary: dict[str, Any]
    child: ChildRun
    events: dict[str, float]  # event -> wall time (epoch s)
    counts: dict[str, int]  # event -> lines
    deleted_at: list[float]  # wall time (epoch s) of each `backup_deleted` line, in log order

    @property
    def deleted(self) -> int:
        return int(self.summary.get("deleted", 0))

    def phase_s(self, start: str, end: str) -> float:
        return self.events[end] - self.events[start]

    def phase_cpu_s(self, start: str, end: str) -> float:
        return self.child.trace.between(self.events[start], self.events[end])

    def figures(self) -> dict[str, Any]:
        ev = self.events
        deletion_s = self.phase_s("planned", "run_finished") if "planned" in ev else None
        deletion_cpu = self.phase_cpu_s("planned", "run_finished") if "planned" in ev else None
        result: dict[str, Any] = {
            "exit_code": self.exit_code,
            "deleted": self.deleted,
            "failed": self.summary.get("failed"),
            "listed": self.summary.get("listed"),
            "planned": self.summary.get("planned"),
            "outcome": self.summary.get("outcome"),
            "run_duration_s": self.summary.get("duration_s"),
            "process_wall_s": round(self.child.wall_s, 3),
            "process_cpu_s": round(self.child.cpu_s, 3),
            "process_max_rss_mb": round(self.child.max_rss_mb, 1),
            "log_lines": sum(self.counts.values()),
            "log_events": dict(sorted(self.counts.items())),
            "runqueue_wait_s": round(self.child.runqueue_wait_s, 3),
        }
        if "backups_listed" in ev:
            result["listing_s"] = round(self.phase_s("run_started", "backups_listed"), 3)
        if "planned" in ev and "backups_listed" in ev:
            result["planning_and_plan_logging_s"] = round(self.phase_s("backups_listed", "planned"), 3)
        if "first_expired" in ev and "backups_listed" in ev:
            # plan() runs before the plan is logged: listed -> first `backup_expired` line is planning itself.
            result["planning_s"] = round(self.phase_s("backups_listed", "first_expired"), 3)
            result["plan_logging_s"] = round(self.phase_s("first_expired", "planned"), 3)
        if deletion_s is not None and deletion_cpu is not None and not self.summary.get("dry_run"):
            result["deletion_s"] = round(deletion_s, 3)
            result["deletion_cpu_s"] = round(deletion_cpu, 3)
            if self.deleted and deletion_s > 0:
                result["deletes_per_s"] = round(self.deleted / deletion_s, 1)
                result["cpu_busy_share"] = round(deletion_cpu / deletion_s, 3)
                if self.child.watched.walls:
                    emulator_cpu = self.child.watched.between(ev["planned"], ev["run_finished"])
                    result["emulator_cpu_busy_share"] = round(emulator_cpu / deletion_s, 3)
                result["cpu_s_per_1000_deletes"] = round(1000 * deletion_cpu / self.deleted, 4)
        return result


def service_env(emulator: Emulator, settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GES_RETENTION_", "HUAWEICLOUD_SDK_"))}
    env.update(
        {
            "GES_RETENTION_ENDPOINT": emulator.url,
            "GES_RETENTION_AK": emulator.ak,
            "GES_RETENTION_SK": emulator.sk,
            "GES_RETENTION_LOG_LEVEL": "info",
            "GES_RETENTION_LOG_FORMAT": "json",
        }
    )
    env.update({f"GES_RETENTION_{k.upper()}": v for k, v in settings.items()})
    return env


def run_service(
    emulator: Emulator,
    policy: Path,
    *,
    cpu: int | None,
    concurrency: int,
    rate_limit: float | str,
    page_size: int = 100,
    dry_run: bool = False,
    timeout_s: float = 600.0,
    watch_emulator: bool = True,
    extra_settings: dict[str, str] | None = None,
    state: str | None = None,
) -> ServiceRun:
    """One `ges-retention run` against the emulator; its log goes to a file next to the policy. `state`: the
    journal (`GES_RETENTION_STATE`); default a SQLite file next to the policy (never the machine's own state).
    `rate_limit` may be "auto"; `extra_settings` are more `GES_RETENTION_*` settings (lower-case names without the
    prefix)."""
    rate = rate_limit if isinstance(rate_limit, str) else f"{rate_limit:g}"
    settings = {"concurrency": str(concurrency), "rate_limit": rate, "page_size": str(page_size)}
    settings["state"] = state if state is not None else str(policy.parent / "state.db")
    settings.update(extra_settings or {})
    command = [sys.executable, "-m", "ges_retention", "run", str(policy), "--format", "json"]
    if dry_run:
        command.append("--dry-run")
    log_path = policy.parent / "service.log"
    # The working directory is empty: no `.env` of the checkout is read.
    with tempfile.TemporaryDirectory(prefix="bench-cwd-") as cwd:
        child = run_child(
            command,
            cpu=cpu,
            env=service_env(emulator, settings),
            cwd=cwd,
            stderr_path=log_path,
            timeout_s=timeout_s,
            watch_pid=emulator.proc.pid if watch_emulator else None,
        )
    events, counts, deleted_at = _read_events(log_path)
    log_path.unlink(missing_ok=True)
    try:
        summary: dict[str, Any] = json.loads(child.stdout) if child.stdout.strip() else {}
    except ValueError:
        summary = {}
    if child.returncode not in (0, 1) or not summary:
        raise RuntimeError(f"ges-retention run failed: exit {child.returncode}, stdout {child.stdout[:500]!r}")
    return ServiceRun(child.returncode, summary, child, events, counts, deleted_at)


def _stamp(line: bytes) -> float:
    record = json.loads(line)
    return datetime.fromisoformat(record["timestamp"]).timestamp()


_EVENT = b'"event": "'


def _event_name(line: bytes) -> str:
    start = line.find(_EVENT)
    if start < 0:
        return "(not json)"
    start += len(_EVENT)
    return line[start : line.find(b'"', start)].decode()


def _read_events(path: Path) -> tuple[dict[str, float], dict[str, int], list[float]]:
    """Wall times of the phase boundaries (`planned` is the last `backup_expired` line: the plan is logged by then),
    and the number of lines of each event."""
    events: dict[str, float] = {}
    counts: dict[str, int] = {}
    last_expired: bytes | None = None
    deleted_at: list[float] = []
    with open(path, "rb") as f:
        for line in f:
            name = _event_name(line)
            counts[name] = counts.get(name, 0) + 1
            if b'"backup_expired"' in line:
                if last_expired is None:
                    events["first_expired"] = _stamp(line)
                last_expired = line
            elif b'"run_started"' in line or b'"backups_listed"' in line or b'"run_finished"' in line:
                record = json.loads(line)
                events[record["event"]] = _stamp(line)
            elif b'"backup_deleted"' in line:
                deleted_at.append(_stamp(line))
                events.setdefault("first_deleted", deleted_at[-1])
    if last_expired is not None:
        events["planned"] = _stamp(last_expired)
    elif "backups_listed" in events:
        events["planned"] = events["backups_listed"]
    return events, counts, deleted_at


def measure_service(
    emulator: Emulator,
    policy: Path,
    *,
    cpu: int | None,
    concurrency: int,
    rate_limit: float | str,
    page_size: int = 100,
    dry_run: bool = False,
    extra_settings: dict[str, str] | None = None,
    runs: list[ServiceRun] | None = None,
    state: str | None = None,
) -> dict[str, Any]:
    """`run_service` with the emulator's side of it: its CPU, its wait for a CPU, what it answered. The `ServiceRun`
    itself is appended to `runs` when given."""
    emulator.reset_stats()
    cpu0, wait0 = emulator.cpu_seconds(), emulator.runqueue_wait_s()
    run = run_service(
        emulator,
        policy,
        cpu=cpu,
        concurrency=concurrency,
        rate_limit=rate_limit,
        page_size=page_size,
        dry_run=dry_run,
        extra_settings=extra_settings,
        state=state,
    )
    if runs is not None:
        runs.append(run)
    figures = run.figures()
    stats = emulator.stats()
    emulator_cpu = emulator.cpu_seconds() - cpu0
    figures["emulator"] = {
        "cpu_s": round(emulator_cpu, 3),
        "cpu_busy_share": round(emulator_cpu / run.child.wall_s, 3),
        "runqueue_wait_s": round(emulator.runqueue_wait_s() - wait0, 3),
        "requests": stats["requests"],
        "peak_rps": stats["peak_rps"],
        "max_in_flight": stats["max_in_flight"],
    }
    return figures
