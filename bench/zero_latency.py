"""Scenario 2b, from the client issue: with 64 requests in flight, no rate limit and zero emulator latency, at least
2,000 deletes/s end to end on this 2-core machine (the emulator in its own process on the other CPU).

The bare aiohttp loop (the ceiling of scenario 6) runs in the same run at the same settings, for context: at zero
latency, what bounds both is CPU, the service's and the emulator's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.emulator import running_emulator
from bench.machine import cpu_plan
from bench.report import Target, disturbance, scenario_result
from bench.unthrottled import ceiling, compare_with_peers

__all__ = ["run_zero_latency"]


def run_zero_latency(
    *, deletions: int = 20_000, concurrency: int = 64, ceiling_sample: int | None = None, per_graph: int = 100
) -> dict[str, Any]:
    cpus = cpu_plan()
    ceiling_n = ceiling_sample or deletions
    parameters = {
        "deletions": deletions,
        "emulator_latency_ms": 0,
        "concurrency": concurrency,
        "rate_limit": 0,
        "samples": {"service": deletions, "ceiling_bare_aiohttp": ceiling_n},
        "policy": "keep: {last: 1}",
        "page_size": 100,
        **cpus.to_json(),
    }
    with (
        running_emulator(cpu=cpus.emulator, latency_ms=0) as emulator,
        tempfile.TemporaryDirectory(prefix="bench-zero-") as tmp,
    ):
        runs = compare_with_peers(
            emulator,
            Path(tmp),
            cpu=cpus.measured,
            deletions=deletions,
            concurrency=concurrency,
            peers={"bare": ceiling_n, "bare_workers": ceiling_n},
            per_graph=per_graph,
        )
    service, bare = runs["service"], ceiling(runs)
    rate = service.get("deletes_per_s")
    whole_run = round(service["deleted"] / service["run_duration_s"], 1) if service.get("run_duration_s") else None
    figures = {
        "deletes_per_s": rate,
        "deletes_per_s_whole_run": whole_run,
        "cpu_s_per_1000_deletes": service.get("cpu_s_per_1000_deletes"),
        "ceiling_deletes_per_s": bare["deletes_per_s"],
        "ceiling_cpu_s_per_1000_deletes": bare["cpu_s_per_1000_deletes"],
        "ceiling_kind": bare["kind"],
        "throughput_vs_ceiling": round(rate / bare["deletes_per_s"], 3) if rate else None,
        "cpu_per_delete_vs_ceiling": round(service["cpu_s_per_1000_deletes"] / bare["cpu_s_per_1000_deletes"], 3)
        if service.get("cpu_s_per_1000_deletes")
        else None,
        "runs": runs,
    }
    targets = [
        Target("deletes_per_s", rate, ">=", 2000, "deletion phase, 64 in flight, no limit, zero latency"),
        Target("all_deleted", 1.0 if service["deleted"] == deletions else 0.0, ">=", 1, f"all {deletions} deleted"),
    ]
    return scenario_result(parameters, figures, targets, disturbed=disturbance(*runs.values()))
