"""Scenario 1, throughput at a rate limit: 5,000 expired backups, 50 ms emulator latency, the service at 200
requests/s with 32 in flight, the emulator limiting at 220 per sliding 1-second window.

Figures: the deletion phase's rate as a fraction of 200 (target >= 0.97) and the 429s the emulator answered (target 0).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.emulator import running_emulator
from bench.machine import cpu_plan
from bench.report import Target, disturbance, least_disturbed, scenario_result
from bench.service import measure_service, write_policy

__all__ = ["run_rate_limit"]


def run_rate_limit(
    *,
    deletions: int = 5000,
    latency_ms: float = 50.0,
    rate: float = 200.0,
    concurrency: int = 32,
    emulator_limit: int = 220,
    per_graph: int = 100,
) -> dict[str, Any]:
    cpus = cpu_plan()
    parameters = {
        "deletions": deletions,
        "emulator_latency_ms": latency_ms,
        "client_rate_limit_per_s": rate,
        "client_concurrency": concurrency,
        "emulator_rate_limit_per_s": emulator_limit,
        "backups_per_graph": per_graph + 1,
        "policy": "keep: {last: 1}",
        "page_size": 100,
        "measured": "ges-retention run POLICY --format json (subprocess, JSON logs at info to a file)",
        **cpus.to_json(),
    }
    with (
        running_emulator(cpu=cpus.emulator, latency_ms=latency_ms, rate_limit=emulator_limit) as emulator,
        tempfile.TemporaryDirectory(prefix="bench-rate-") as tmp,
    ):
        policy = write_policy(Path(tmp), emulator.project_id, keep={"last": 1}, max_deletes=1_000_000)

        def measure() -> dict[str, Any]:
            emulator.load_expired(deletions, per_graph=per_graph, now_ms=int(time.time() * 1000))
            # The rate-limit windows start empty: nothing of a previous attempt counts against this one.
            time.sleep(1.0)
            return measure_service(emulator, policy, cpu=cpus.measured, concurrency=concurrency, rate_limit=rate)

        service = least_disturbed(measure)
    answered_429 = sum(by_status.get("429", 0) for by_status in service["emulator"]["requests"].values())
    achieved = service.get("deletes_per_s")
    fraction = round(achieved / rate, 4) if achieved else None
    figures = {
        "achieved_deletes_per_s": achieved,
        "fraction_of_rate": fraction,
        "responses_429": answered_429,
        "request_throttled_log_lines": service["log_events"].get("request_throttled", 0),
        "emulator_peak_rps": service["emulator"]["peak_rps"],
        "service": service,
    }
    targets = [
        Target("fraction_of_rate", fraction, ">=", 0.97, "deletion-phase rate / the 200/s client rate"),
        Target("responses_429", answered_429, "<=", 0, "429s answered by the emulator (limit 220 per 1 s window)"),
    ]
    ok = service["deleted"] == deletions
    targets.append(Target("all_deleted", 1.0 if ok else 0.0, ">=", 1, f"all {deletions} backups deleted"))
    return scenario_result(parameters, figures, targets, disturbed=disturbance(service))
