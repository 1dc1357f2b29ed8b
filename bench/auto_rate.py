"""Scenario 11, the adaptive rate: `GES_RETENTION_RATE_LIMIT=auto` against a limit the service is not told.

For each limit L (50, 150, 400 requests per sliding second, the emulator's rate gate; 10 ms latency), the service
(`GES_RETENTION_RATE_MAX=1000`, start 10/s, 64 in flight, a SQLite state of its own) deletes 6,000 expired backups,
then, with the same state, a second batch. Figures per limit, read from the service's own log (`backup_deleted`
timestamps) and the emulator's answers:

- the first run's deletion rate after its first 10 s (from the start of the deletion phase) as a share of L
  (target >= 0.8);
- 429s as a share of every request the emulator answered in that run (target <= 2%);
- the second run's start: deletions in its first 2 s of deleting, per second, as a share of L (target >= 0.75);
  it starts at 0.8 of the rate the first run learned, kept in the state.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.emulator import Emulator, running_emulator
from bench.machine import cpu_plan
from bench.report import Target, disturbance, scenario_result
from bench.service import ServiceRun, measure_service, write_policy

__all__ = ["run_auto_rate"]

_START_WINDOW_S = 2.0
_WARMUP_S = 10.0


def run_auto_rate(
    *,
    deletions: int = 6000,
    limits: tuple[int, ...] = (50, 150, 400),
    second_run_s: float = 4.0,
    latency_ms: float = 10.0,
    concurrency: int = 64,
    rate_max: float = 1000.0,
    per_graph: int = 100,
) -> dict[str, Any]:
    """`second_run_s`: the second run deletes about this many seconds' worth at L (at least 50 backups)."""
    cpus = cpu_plan()
    parameters = {
        "deletions": deletions,
        "limits_per_s": list(limits),
        "emulator_latency_ms": latency_ms,
        "client_rate_limit": "auto",
        "client_rate_start_per_s": 10,
        "client_rate_max_per_s": rate_max,
        "client_concurrency": concurrency,
        "second_run_deletions": {str(limit): _second_size(limit, second_run_s) for limit in limits},
        "policy": "keep: {last: 1}",
        "measured": "two `ges-retention run POLICY --format json` per limit (subprocesses, one SQLite state per limit)",
        **cpus.to_json(),
    }
    per_limit: dict[str, Any] = {}
    targets: list[Target] = []
    runs: list[dict[str, Any]] = []
    with (
        running_emulator(cpu=cpus.emulator, latency_ms=latency_ms) as emulator,
        tempfile.TemporaryDirectory(prefix="bench-auto-rate-") as tmp,
    ):
        policy = write_policy(Path(tmp), emulator.project_id, keep={"last": 1}, max_deletes=1_000_000)
        for limit in limits:
            emulator.configure(rate_limit_per_s=limit)
            state = Path(tmp) / f"state-{limit}.db"
            settings = {"rate_max": f"{rate_max:g}", "rate_start": "10"}

            first, first_run = _measure(
                emulator, policy, cpus.measured, concurrency, settings, state, deletions, per_graph
            )
            learned = _learned_rate(state)
            second_size = _second_size(limit, second_run_s)
            second, second_run = _measure(
                emulator, policy, cpus.measured, concurrency, settings, state, second_size, per_graph
            )
            runs += [first, second]
            figures = _figures(limit, first, first_run, second, second_run, learned)
            per_limit[str(limit)] = figures
            targets += [
                Target(
                    f"L{limit}_rate_after_10s_share",
                    figures["rate_after_10s_share"],
                    ">=",
                    0.8,
                    f"L={limit}/s: deletions per second after the first 10 s / L",
                ),
                Target(
                    f"L{limit}_429_share",
                    figures["responses_429_share"],
                    "<=",
                    0.02,
                    f"L={limit}/s: 429s / requests, first run",
                ),
                Target(
                    f"L{limit}_second_start_share",
                    figures["second_run_start_share"],
                    ">=",
                    0.75,
                    f"L={limit}/s: second run (same state), deletions per second in its first 2 s / L",
                ),
                Target(
                    f"L{limit}_all_deleted",
                    1.0 if first["deleted"] == deletions else 0.0,
                    ">=",
                    1,
                    f"L={limit}/s: all {deletions} backups deleted",
                ),
            ]
    return scenario_result(parameters, {"limits": per_limit}, targets, disturbed=disturbance(*runs))


def _measure(
    emulator: Emulator,
    policy: Path,
    cpu: int | None,
    concurrency: int,
    settings: dict[str, str],
    state: Path,
    count: int,
    per_graph: int,
) -> tuple[dict[str, Any], ServiceRun]:
    emulator.load_expired(count, per_graph=per_graph, now_ms=int(time.time() * 1000))
    time.sleep(1.0)  # the rate window starts empty: nothing of the previous run counts against this one
    kept: list[ServiceRun] = []
    figures = measure_service(
        emulator,
        policy,
        cpu=cpu,
        concurrency=concurrency,
        rate_limit="auto",
        extra_settings=settings,
        runs=kept,
        state=str(state),
    )
    return figures, kept[0]


def _second_size(limit: int, seconds: float) -> int:
    return max(50, int(limit * seconds))


def _learned_rate(state: Path) -> float | None:
    """The learned rate the first run kept (None when the state has none, e.g. no journal)."""
    if not state.is_file():
        return None
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        try:
            row = db.execute("SELECT MAX(rate_per_s) FROM rates").fetchone()
        except sqlite3.Error:
            return None
    return None if row is None or row[0] is None else float(row[0])


def _rate_between(stamps: list[float], start: float, end: float) -> float | None:
    if end <= start:
        return None
    return sum(1 for t in stamps if start <= t < end) / (end - start)


def _requests(figures: dict[str, Any]) -> tuple[int, int]:
    by_operation: dict[str, dict[str, int]] = figures["emulator"]["requests"]
    total = sum(sum(statuses.values()) for statuses in by_operation.values())
    refused = sum(statuses.get("429", 0) for statuses in by_operation.values())
    return total, refused


def _figures(
    limit: int,
    first: dict[str, Any],
    first_run: ServiceRun,
    second: dict[str, Any],
    second_run: ServiceRun,
    learned: float | None,
) -> dict[str, Any]:
    stamps = first_run.deleted_at
    begin = first_run.events.get("planned")
    after = (
        _rate_between(stamps, begin + _WARMUP_S, stamps[-1]) if begin is not None and stamps else None
    )  # from the first deletion phase's start + 10 s to its last deletion
    total, refused = _requests(first)
    second_begin = second_run.events.get("planned")
    second_stamps = second_run.deleted_at
    start_rate = None
    if second_begin is not None and second_stamps:
        window = min(_START_WINDOW_S, second_stamps[-1] - second_begin)
        start_rate = _rate_between(second_stamps, second_begin, second_begin + window)
    second_total, second_refused = _requests(second)

    def share(value: float | None) -> float | None:
        return None if value is None else round(value / limit, 4)

    return {
        "rate_after_10s_per_s": None if after is None else round(after, 1),
        "rate_after_10s_share": share(after),
        "deletion_phase_per_s": first.get("deletes_per_s"),
        "responses_429": refused,
        "requests": total,
        "responses_429_share": round(refused / total, 4) if total else None,
        "learned_rate_per_s": None if learned is None else round(learned, 1),
        "learned_share": share(learned),
        "second_run_start_per_s": None if start_rate is None else round(start_rate, 1),
        "second_run_start_share": share(start_rate),
        "second_run_deletion_phase_per_s": second.get("deletes_per_s"),
        "second_run_responses_429": second_refused,
        "second_run_requests": second_total,
        "first_run": first,
        "second_run": second,
    }
