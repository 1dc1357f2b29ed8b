"""Scenarios 2, 3 and 6, measured in one run against one emulator (10 ms latency, no rate limit):

2. the service, unthrottled: 20,000 deletions, concurrency 64: deletes/s and CPU seconds per 1,000 deletes;
3. the peer, the official SDK (`huaweicloudsdkges`, AK/SK): (a) a plain loop of `delete_backup2`, (b) `GesAsyncClient`
   with its default pool; on smaller samples (they are slow), compared per delete;
6. the ceiling: a bare aiohttp loop (one session, a semaphore of 64, the same signed DELETEs, nothing else), written
   both usual ways (`bare`: a task per deletion, gathered; `bare_workers`: 64 workers over one iterator); the faster
   of the two is the ceiling.

Ratios: the service's throughput and CPU per delete over each peer's, and its throughput over the ceiling's.
Targets: >= 25x the SDK loop, >= 5x `GesAsyncClient`, CPU per delete <= 1/4 of the SDK's (both ways of using it),
>= 0.9 of the ceiling.
"""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.emulator import Emulator, running_emulator
from bench.machine import cpu_plan
from bench.peers import run_peer
from bench.report import Target, disturbance, least_disturbed, scenario_result
from bench.service import measure_service, write_policy

__all__ = ["ceiling", "compare_with_peers", "run_unthrottled"]

CEILINGS = ("bare", "bare_workers")


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def ceiling(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The faster bare loop of those run."""
    name = max((k for k in CEILINGS if k in runs), key=lambda k: runs[k]["deletes_per_s"])
    run = runs[name]
    return {
        "kind": name,
        "deletes_per_s": run["deletes_per_s"],
        "cpu_s_per_1000_deletes": run["cpu_s_per_1000_deletes"],
    }


def compare_with_peers(
    emulator: Emulator,
    workdir: Path,
    *,
    cpu: int | None,
    deletions: int,
    concurrency: int,
    peers: dict[str, int],
    per_graph: int,
) -> dict[str, dict[str, Any]]:
    """The service and each peer (kind -> sample size) in turn, each on fresh data."""
    runs: dict[str, dict[str, Any]] = {}
    now_ms = int(time.time() * 1000)
    policy = write_policy(workdir, emulator.project_id, keep={"last": 1}, max_deletes=1_000_000)

    def service() -> dict[str, Any]:
        emulator.load_expired(deletions, per_graph=per_graph, now_ms=now_ms)
        return measure_service(emulator, policy, cpu=cpu, concurrency=concurrency, rate_limit=0)

    def peer(kind: str, sample: int) -> dict[str, Any]:
        targets = emulator.load_expired(sample, per_graph=per_graph, now_ms=now_ms)
        return run_peer(kind, emulator=emulator, targets=targets, concurrency=concurrency, cpu=cpu, workdir=workdir)

    runs["service"] = least_disturbed(service)
    for kind, sample in peers.items():
        runs[kind] = least_disturbed(functools.partial(peer, kind, sample))
    return runs


def run_unthrottled(
    *,
    deletions: int = 20_000,
    latency_ms: float = 10.0,
    concurrency: int = 64,
    sdk_loop_sample: int = 2_000,
    sdk_async_sample: int = 5_000,
    ceiling_sample: int | None = None,
    per_graph: int = 100,
) -> dict[str, Any]:
    cpus = cpu_plan()
    ceiling_n = ceiling_sample or deletions
    peers = {"bare": ceiling_n, "bare_workers": ceiling_n, "sdk_async": sdk_async_sample, "sdk_loop": sdk_loop_sample}
    parameters = {
        "deletions": deletions,
        "emulator_latency_ms": latency_ms,
        "concurrency": concurrency,
        "rate_limit": 0,
        "samples": {
            "service": deletions,
            "ceiling_bare_aiohttp": ceiling_n,
            "sdk_async": sdk_async_sample,
            "sdk_loop": sdk_loop_sample,
        },
        "policy": "keep: {last: 1}",
        "page_size": 100,
        "measured": "service: ges-retention run (subprocess, JSON logs at info to a file), deletion phase = last "
        "backup_expired line -> run_finished; peers: their deletion loop only, in-process timers, CPU of every "
        "thread (getrusage)",
        "sdk": "huaweicloudsdkges.v2 GesClient.delete_backup2 loop; GesAsyncClient.delete_backup2_async, default "
        "HttpConfig (pool 10) and its 8-thread executor; BasicCredentials(ak, sk, project_id)",
        **cpus.to_json(),
    }
    with (
        running_emulator(cpu=cpus.emulator, latency_ms=latency_ms) as emulator,
        tempfile.TemporaryDirectory(prefix="bench-unthrottled-") as tmp,
    ):
        runs = compare_with_peers(
            emulator,
            Path(tmp),
            cpu=cpus.measured,
            deletions=deletions,
            concurrency=concurrency,
            peers=peers,
            per_graph=per_graph,
        )
    service, sdk_async, sdk_loop = runs["service"], runs["sdk_async"], runs["sdk_loop"]
    bare = ceiling(runs)
    rate, cpu_k = service.get("deletes_per_s"), service.get("cpu_s_per_1000_deletes")
    ratios = {
        "throughput_vs_sdk_loop": _ratio(rate, sdk_loop["deletes_per_s"]),
        "throughput_vs_sdk_async": _ratio(rate, sdk_async["deletes_per_s"]),
        "throughput_vs_ceiling": _ratio(rate, bare["deletes_per_s"]),
        "cpu_per_delete_vs_sdk_loop": _ratio(cpu_k, sdk_loop["cpu_s_per_1000_deletes"]),
        "cpu_per_delete_vs_sdk_async": _ratio(cpu_k, sdk_async["cpu_s_per_1000_deletes"]),
        "cpu_per_delete_vs_ceiling": _ratio(cpu_k, bare["cpu_s_per_1000_deletes"]),
    }
    figures = {
        "service_deletes_per_s": rate,
        "service_cpu_s_per_1000_deletes": cpu_k,
        "ceiling_deletes_per_s": bare["deletes_per_s"],
        "ceiling_cpu_s_per_1000_deletes": bare["cpu_s_per_1000_deletes"],
        "ceiling_kind": bare["kind"],
        "sdk_loop_deletes_per_s": sdk_loop["deletes_per_s"],
        "sdk_loop_cpu_s_per_1000_deletes": sdk_loop["cpu_s_per_1000_deletes"],
        "sdk_async_deletes_per_s": sdk_async["deletes_per_s"],
        "sdk_async_cpu_s_per_1000_deletes": sdk_async["cpu_s_per_1000_deletes"],
        "ratios": ratios,
        "runs": runs,
    }
    targets = [
        Target(
            "throughput_vs_sdk_loop", ratios["throughput_vs_sdk_loop"], ">=", 25, "service / SDK delete_backup2 loop"
        ),
        Target("throughput_vs_sdk_async", ratios["throughput_vs_sdk_async"], ">=", 5, "service / SDK GesAsyncClient"),
        Target(
            "cpu_per_delete_vs_sdk_loop", ratios["cpu_per_delete_vs_sdk_loop"], "<=", 0.25, "CPU/delete, service / loop"
        ),
        Target(
            "cpu_per_delete_vs_sdk_async",
            ratios["cpu_per_delete_vs_sdk_async"],
            "<=",
            0.25,
            "CPU/delete, service / GesAsyncClient",
        ),
        Target("throughput_vs_ceiling", ratios["throughput_vs_ceiling"], ">=", 0.9, "service / bare aiohttp loop"),
    ]
    ok = service["deleted"] == deletions and all(
        r["deleted"] == r["deletions"] for k, r in runs.items() if k != "service"
    )
    targets.append(Target("all_deleted", 1.0 if ok else 0.0, ">=", 1, "every side deleted all of its sample"))
    return scenario_result(parameters, figures, targets, disturbed=disturbance(*runs.values()))
