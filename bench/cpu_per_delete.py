"""Scenario 12, CPU per delete (issue 17): the service against the bare aiohttp ceiling with nothing pinned.

Scenario 6 pins the emulator and the measured side to different CPUs, which hides what a delete costs the service:
each side has a core of its own and the round trip bounds both. Here the emulator (10 ms latency), the service and
the bare loops share the machine's cores as a real deployment next to other work would: every CPU second the service
spends per delete is one the emulator cannot use. In one run, on fresh data each time, taking turns for `rounds`
rounds: `ges-retention run` (the real CLI, JSON logs at info to a file, 64 in flight, no rate limit) and the two bare
loops of `bench.peers` (the same AK/SK-signed DELETEs, 64 in flight, no logging, nothing else). Each side's figure is
its best round; the ceiling is the faster bare loop. Alongside, not as a ceiling, `bare_journal`: the bare loop plus
the write-ahead journal's own SQLite writes (intents before each batch, outcomes in groups), which tells how much of
the gap is the journal the service must keep (issue 14) rather than the service's own overhead.

Targets: the service's deletion rate >= 0.85 of the ceiling's (0.62 before issue 17) and its CPU seconds per delete
<= 1.3x the ceiling's.

Nothing is pinned, so the processes wait for each other's CPU: the run-queue share reported as `disturbance` is an
upper bound of what other work on the machine cost; compare `load_average` before and after.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.emulator import running_emulator
from bench.peers import run_peer
from bench.report import Target, disturbance, scenario_result
from bench.service import measure_service, write_policy

__all__ = ["run_cpu_per_delete"]

BARE = ("bare", "bare_workers")
# Measured alongside, not a ceiling: the bare loop plus the journal's own writes (what a write-ahead journal costs).
JOURNALED = "bare_journal"


def _best(runs: list[dict[str, Any]], key: str, *, lowest: bool) -> float | None:
    values = [float(r[key]) for r in runs if r.get(key)]
    if not values:
        return None
    return min(values) if lowest else max(values)


def run_cpu_per_delete(
    *, deletions: int = 20_000, latency_ms: float = 10.0, concurrency: int = 64, rounds: int = 4, per_graph: int = 100
) -> dict[str, Any]:
    parameters = {
        "deletions": deletions,
        "emulator_latency_ms": latency_ms,
        "concurrency": concurrency,
        "rate_limit": 0,
        "rounds": rounds,
        "pinned": False,
        "policy": "keep: {last: 1}",
        "measured": "service: ges-retention run (subprocess, JSON logs at info to a file), deletion phase = last "
        "backup_expired line -> run_finished, CPU from /proc samples; bare loops: their deletion loop only, "
        "in-process timers, CPU of every thread (getrusage). Each side's best round.",
    }
    service_runs: list[dict[str, Any]] = []
    bare_runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in (*BARE, JOURNALED)}
    now_ms = int(time.time() * 1000)
    with (
        running_emulator(cpu=None, latency_ms=latency_ms) as emulator,
        tempfile.TemporaryDirectory(prefix="bench-cpu-per-delete-") as tmp,
    ):
        workdir = Path(tmp)
        policy = write_policy(workdir, emulator.project_id, keep={"last": 1}, max_deletes=10_000_000)
        for _ in range(rounds):
            emulator.load_expired(deletions, per_graph=per_graph, now_ms=now_ms)
            service_runs.append(measure_service(emulator, policy, cpu=None, concurrency=concurrency, rate_limit=0))
            for kind in (*BARE, JOURNALED):
                sample = emulator.load_expired(deletions, per_graph=per_graph, now_ms=now_ms)
                bare_runs[kind].append(
                    run_peer(
                        kind, emulator=emulator, targets=sample, concurrency=concurrency, cpu=None, workdir=workdir
                    )
                )
    rate = _best(service_runs, "deletes_per_s", lowest=False)
    cpu_k = _best(service_runs, "cpu_s_per_1000_deletes", lowest=True)
    bare_rates = {kind: _best(bare_runs[kind], "deletes_per_s", lowest=False) or 0.0 for kind in BARE}
    ceiling_kind = max(bare_rates, key=lambda kind: bare_rates[kind])
    ceiling_rate = bare_rates[ceiling_kind]
    ceiling_cpu_k = _best(bare_runs[ceiling_kind], "cpu_s_per_1000_deletes", lowest=True)
    rate_ratio = round(rate / ceiling_rate, 3) if rate and ceiling_rate else None
    cpu_ratio = round(cpu_k / ceiling_cpu_k, 3) if cpu_k and ceiling_cpu_k else None
    # Rounds take turns, so round i of each side saw the same machine: the median of the per-round ratios is less
    # swayed by a machine whose speed drifts than the ratio of the best rounds (reported, not a target).
    paired = [
        float(s["cpu_s_per_1000_deletes"]) / float(b["cpu_s_per_1000_deletes"])
        for s, b in zip(service_runs, bare_runs[ceiling_kind], strict=True)
        if s.get("cpu_s_per_1000_deletes") and b.get("cpu_s_per_1000_deletes")
    ]
    journaled_cpu_k = _best(bare_runs[JOURNALED], "cpu_s_per_1000_deletes", lowest=True)
    journaled_ratio = round(cpu_k / journaled_cpu_k, 3) if cpu_k and journaled_cpu_k else None
    figures = {
        "service_deletes_per_s": rate,
        "service_cpu_s_per_1000_deletes": cpu_k,
        "ceiling_kind": ceiling_kind,
        "ceiling_deletes_per_s": ceiling_rate,
        "ceiling_cpu_s_per_1000_deletes": ceiling_cpu_k,
        "throughput_vs_ceiling": rate_ratio,
        "cpu_per_delete_vs_ceiling": cpu_ratio,
        "cpu_per_delete_vs_ceiling_paired_median": round(statistics.median(paired), 3) if paired else None,
        # Not a target: the bare loop with the journal's writes, and the service's CPU per delete against it.
        "journaled_loop_cpu_s_per_1000_deletes": journaled_cpu_k,
        "journaled_loop_deletes_per_s": _best(bare_runs[JOURNALED], "deletes_per_s", lowest=False),
        "cpu_per_delete_vs_journaled_loop": journaled_ratio,
        "rounds": {
            "service": [(r.get("deletes_per_s"), r.get("cpu_s_per_1000_deletes")) for r in service_runs],
            **{
                kind: [(r.get("deletes_per_s"), r.get("cpu_s_per_1000_deletes")) for r in runs]
                for kind, runs in bare_runs.items()
            },
        },
        "runs": {"service": service_runs, **bare_runs},
    }
    every = [*service_runs, *(r for runs in bare_runs.values() for r in runs)]
    all_deleted = all(r["deleted"] == deletions for r in every)
    targets = [
        Target("throughput_vs_ceiling", rate_ratio, ">=", 0.85, "service / bare aiohttp loop, nothing pinned"),
        Target("cpu_per_delete_vs_ceiling", cpu_ratio, "<=", 1.3, "CPU per delete, service / bare loop, unpinned"),
        Target("all_deleted", 1.0 if all_deleted else 0.0, ">=", 1, "every run deleted all of its sample"),
    ]
    return scenario_result(parameters, figures, targets, disturbed=disturbance(*every))
