"""How many deletes per second the emulator serves on one core, at zero latency, to a concurrent client.

The emulator runs as `python -m ges_retention.emulator` in its own process pinned to one CPU (Linux), seeded with
`--graphs` x `--backups` backups; the client lists every backup (pages of 1000), then deletes `--deletes` of them
with `--concurrency` requests in flight over keep-alive connections, from `--clients` processes pinned to the other
CPUs. It prints one JSON document; the emulator must not be the bottleneck of the service's benchmarks (>= 3,000/s).

    .venv/bin/python bench/emulator_throughput.py [--deletes 20000] [--concurrency 64] [--auth token|aksk]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
from yarl import URL

from ges_retention.ges.signing import SignedRequest, authorization_header, format_sdk_date


def _start_emulator(args: argparse.Namespace) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    command = [
        sys.executable,
        "-m",
        "ges_retention.emulator",
        "--port",
        "0",
        "--seed-graphs",
        str(args.graphs),
        "--seed-backups",
        str(args.backups),
        "--seed",
        "1",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if hasattr(os, "sched_setaffinity") and args.emulator_cpu >= 0:
        os.sched_setaffinity(proc.pid, {args.emulator_cpu})
    assert proc.stdout is not None
    started = json.loads(proc.stdout.readline())
    return proc, started


def _headers(started: dict[str, Any], auth: str, method: str, url: str) -> dict[str, str]:
    if auth == "token":
        return {"X-Auth-Token": started["token"]}
    parsed = URL(url)
    headers = {
        "Host": f"{parsed.host}:{parsed.port}",
        "X-Sdk-Date": format_sdk_date(datetime.now(UTC)),
        "X-Project-Id": started["project_id"],
        "Content-Type": "application/json",
    }
    signed = SignedRequest.of(method, parsed.raw_path, parsed.query.items(), headers)
    headers["Authorization"] = authorization_header(ak=started["ak"], sk=started["sk"], request=signed)
    return headers


async def _list_all(session: aiohttp.ClientSession, started: dict[str, Any], auth: str) -> list[tuple[str, str]]:
    base = f"{started['url']}/v2/{started['project_id']}/graphs/backups"
    found: dict[str, str] = {}
    offset = 0
    while True:
        url = f"{base}?limit=1000&offset={offset}"
        async with session.get(url, headers=_headers(started, auth, "GET", url)) as resp:
            body = await resp.json()
        page = body["backup_list"]
        found.update((b["id"], b["graph_id"]) for b in page if b["status"] != "backing_up")
        offset += len(page)
        if not page or offset >= body["backup_count"]:
            return [(graph_id, backup_id) for backup_id, graph_id in found.items()]


async def _delete_all(
    started: dict[str, Any], auth: str, targets: list[tuple[str, str]], concurrency: int
) -> tuple[dict[str, int], float, float]:
    """(count by status, monotonic start, monotonic end): process start-up is not part of the measure."""
    statuses: dict[str, int] = {}
    queue = iter(targets)
    base = f"{started['url']}/v2/{started['project_id']}/graphs"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for graph_id, backup_id in queue:
                url = f"{base}/{graph_id}/backups/{backup_id}"
                async with session.delete(url, headers=_headers(started, auth, "DELETE", url)) as resp:
                    await resp.read()
                    statuses[str(resp.status)] = statuses.get(str(resp.status), 0) + 1

        begin = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        end = time.monotonic()
    return statuses, begin, end


def _client_process(
    started: dict[str, Any], auth: str, targets: list[tuple[str, str]], concurrency: int, cpus: set[int], out: Any
) -> None:
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    out.put(asyncio.run(_delete_all(started, auth, targets, concurrency)))


async def _stats(started: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{started['url']}/_emulator/stats") as resp:
        result: dict[str, Any] = await resp.json()
        return result


async def _prepare(started: dict[str, Any], auth: str) -> list[tuple[str, str]]:
    async with aiohttp.ClientSession() as session:
        return await _list_all(session, started, auth)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graphs", type=int, default=200)
    parser.add_argument("--backups", type=int, default=100, help="per graph")
    parser.add_argument("--deletes", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64, help="in flight, per client process")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--auth", choices=("token", "aksk"), default="token")
    parser.add_argument("--emulator-cpu", type=int, default=0, help="CPU the emulator is pinned to; -1 = no pinning")
    args = parser.parse_args(argv)

    proc, started = _start_emulator(args)
    try:
        targets = asyncio.run(_prepare(started, args.auth))[: args.deletes]
        all_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        client_cpus = (all_cpus - {args.emulator_cpu}) or all_cpus
        ctx = multiprocessing.get_context("spawn")
        results: Any = ctx.Queue()
        shares = [targets[i :: args.clients] for i in range(args.clients)]
        workers = [
            ctx.Process(
                target=_client_process, args=(started, args.auth, share, args.concurrency, client_cpus, results)
            )
            for share in shares
        ]
        for worker in workers:
            worker.start()
        statuses: dict[str, int] = {}
        begins, ends = [], []
        for _ in workers:
            counts, begin, end = results.get()
            begins.append(begin)
            ends.append(end)
            for status, n in counts.items():
                statuses[status] = statuses.get(status, 0) + n
        # CLOCK_MONOTONIC is system-wide: the processes' readings compare.
        elapsed = max(ends) - min(begins)
        for worker in workers:
            worker.join()
        emulator_stats = asyncio.run(_stats(started))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    report = {
        "benchmark": "emulator_throughput",
        "auth": args.auth,
        "deletes": len(targets),
        "statuses": statuses,
        "concurrency": args.concurrency * args.clients,
        "client_processes": args.clients,
        "seconds": round(elapsed, 3),
        "deletes_per_s": round(len(targets) / elapsed),
        "emulator_cpu": args.emulator_cpu,
        "emulator_peak_rps": emulator_stats["peak_rps"],
        "emulator_max_in_flight": emulator_stats["max_in_flight"],
    }
    print(json.dumps(report))
    return 0 if statuses.get("200", 0) == len(targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())
