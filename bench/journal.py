"""Scenario 10, from the journal issue: what write-ahead costs. The same zero-latency deletion run (64 in flight, no
rate limit, the emulator in its own process) three times in one benchmark run, on fresh data each time, with the
journal (`GES_RETENTION_STATE`) on `:memory:`, on a SQLite file, and on a PostgreSQL server of its own.

Every DELETE waits for its intent's commit (a batch of at most 64 per transaction) and reports its outcome after
(outcomes are group-committed). Target: the SQLite file >= 0.85 of `:memory:`; the PostgreSQL figure is recorded.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.emulator import running_emulator
from bench.machine import cpu_plan
from bench.postgres import postgres_server
from bench.report import Target, disturbance, least_disturbed, scenario_result
from bench.service import measure_service, write_policy

__all__ = ["run_journal"]


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def run_journal(*, deletions: int = 20_000, concurrency: int = 64, per_graph: int = 100) -> dict[str, Any]:
    cpus = cpu_plan()
    parameters = {
        "deletions": deletions,
        "emulator_latency_ms": 0,
        "concurrency": concurrency,
        "rate_limit": 0,
        "policy": "keep: {last: 1}",
        "states": [":memory:", "sqlite file (WAL, synchronous=NORMAL)", "postgresql (local, fsync on)"],
        "measured": "deletion phase of `ges-retention run` (last backup_expired -> run_finished), as scenario 2b",
        **cpus.to_json(),
    }
    runs: dict[str, dict[str, Any]] = {}
    with (
        running_emulator(cpu=cpus.emulator, latency_ms=0) as emulator,
        tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp,
        postgres_server() as pg_url,
    ):
        workdir = Path(tmp)
        policy = write_policy(workdir, emulator.project_id, keep={"last": 1}, max_deletes=1_000_000)
        now_ms = int(time.time() * 1000)
        states = {"memory": ":memory:", "sqlite": str(workdir / "state.db"), "postgresql": pg_url}
        for name, state in states.items():

            def measure(state: str = state) -> dict[str, Any]:
                emulator.load_expired(deletions, per_graph=per_graph, now_ms=now_ms)
                return measure_service(emulator, policy, cpu=cpus.measured, concurrency=concurrency, rate_limit=0,
                                       state=state)  # fmt: skip

            runs[name] = least_disturbed(measure)
    rates = {name: run.get("deletes_per_s") for name, run in runs.items()}
    sqlite_vs_memory = _ratio(rates["sqlite"], rates["memory"])
    figures: dict[str, Any] = {
        "deletes_per_s": rates,
        "sqlite_vs_memory": sqlite_vs_memory,
        "postgresql_vs_memory": _ratio(rates["postgresql"], rates["memory"]),
        "runs": runs,
    }
    deleted_all = all(run.get("deleted") == deletions for run in runs.values())
    targets = [
        Target("sqlite_vs_memory", sqlite_vs_memory, ">=", 0.85, "SQLite file journal / :memory:"),
        Target("all_deleted", 1.0 if deleted_all else 0.0, ">=", 1, f"all {deletions} deleted on every state"),
    ]
    return scenario_result(parameters, figures, targets, disturbed=disturbance(*runs.values()))
