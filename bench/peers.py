"""The other ways of deleting the same backups, each run as `python -m bench.peers KIND SPEC.json` in its own pinned
process, each printing one JSON document with its deletion phase's wall time and CPU time (whole process: every
thread), measured in-process around the deletions only (process start-up and imports are not in it):

- `sdk_loop`: the official SDK (`huaweicloudsdkges.v2.GesClient`, AK/SK `BasicCredentials`), `delete_backup2` in a
  plain loop: what a user writes without this service.
- `sdk_async`: the SDK's `GesAsyncClient` with its default pool: every `delete_backup2_async` submitted, then every
  result awaited.
- `bare`: the ceiling: one `aiohttp` session, a semaphore of `concurrency`, the same AK/SK-signed DELETEs (signed by
  the service's signer), nothing else: no planning, pacer, retries, logging. One task per deletion, all gathered,
  each waiting on the semaphore: the textbook form.
- `bare_workers`: the same, written the other usual way: `concurrency` worker tasks pulling from one iterator (the
  shape of the service's own deletion loop). A finished request starts the next one at once, without the extra hop
  through the event loop that waking a semaphore waiter costs; so this one is often the faster, and the ceiling is
  the faster of the two.
- `bare_journal`: `bare_workers` plus the write-ahead journal's own writes through the service's SQLite store (a
  fresh file): intents committed a batch of `concurrency` at a time before their DELETEs, outcomes recorded in groups
  of `concurrency`. Not a ceiling: it tells how much of the service's CPU per delete the journal costs by itself.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["KINDS", "write_spec"]

KINDS = ("sdk_loop", "sdk_async", "bare", "bare_workers", "bare_journal")
JOURNALED_KEY = "journaled"


def write_spec(
    path: Path, *, url: str, project_id: str, ak: str, sk: str, targets: list[tuple[str, str]], concurrency: int
) -> Path:
    # `bare_journal` keeps its journal next to the spec: a fresh SQLite file per run.
    state = str(path.with_suffix(".state.db"))
    spec = {
        "url": url,
        "project_id": project_id,
        "ak": ak,
        "sk": sk,
        "targets": targets,
        "concurrency": concurrency,
        "state": state,
    }
    path.write_text(json.dumps(spec))
    return path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Clock:
    """Wall and CPU time of the deletion phase only: started once the client is built, stopped before it closes."""

    def __init__(self) -> None:
        self.wall = self.cpu = self.started_at = self.stopped_at = 0.0

    def start(self) -> None:
        self.started_at = time.time()
        self.wall, self.cpu = time.perf_counter(), _cpu()

    def stop(self) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu() - self.cpu
        self.stopped_at = time.time()


def _sdk_client(spec: dict[str, Any], *, asynchronous: bool) -> Any:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkges.v2 import GesAsyncClient, GesClient

    cls = GesAsyncClient if asynchronous else GesClient
    return (
        cls.new_builder()
        .with_http_config(HttpConfig.get_default_config())
        .with_credentials(BasicCredentials(spec["ak"], spec["sk"], spec["project_id"]))
        .with_endpoint(spec["url"])  # http://127.0.0.1:PORT is used as is
        .build()
    )


def _sdk_loop(spec: dict[str, Any], clock: _Clock) -> Counter[str]:
    from huaweicloudsdkcore.exceptions.exceptions import SdkException
    from huaweicloudsdkges.v2 import DeleteBackup2Request

    client = _sdk_client(spec, asynchronous=False)
    statuses: Counter[str] = Counter()
    try:
        clock.start()
        for graph_id, backup_id in spec["targets"]:
            try:
                response = client.delete_backup2(DeleteBackup2Request(graph_id=graph_id, backup_id=backup_id))
                statuses[str(response.status_code)] += 1
            except SdkException as exc:
                statuses[str(getattr(exc, "status_code", "error"))] += 1
        clock.stop()
    finally:
        client.get_http_client().close()
    return statuses


def _sdk_async(spec: dict[str, Any], clock: _Clock) -> Counter[str]:
    from huaweicloudsdkcore.exceptions.exceptions import SdkException
    from huaweicloudsdkges.v2 import DeleteBackup2Request

    client = _sdk_client(spec, asynchronous=True)
    statuses: Counter[str] = Counter()
    try:
        clock.start()
        futures = [
            client.delete_backup2_async(DeleteBackup2Request(graph_id=graph_id, backup_id=backup_id))
            for graph_id, backup_id in spec["targets"]
        ]
        for future in futures:
            try:
                statuses[str(future.result().status_code)] += 1
            except SdkException as exc:
                statuses[str(getattr(exc, "status_code", "error"))] += 1
        clock.stop()
    finally:
        client.get_http_client().close()
    return statuses


def _bare(spec: dict[str, Any], clock: _Clock) -> Counter[str]:
    return asyncio.run(_bare_main(spec, clock, workers=False))


def _bare_workers(spec: dict[str, Any], clock: _Clock) -> Counter[str]:
    return asyncio.run(_bare_main(spec, clock, workers=True))


class _SignedDeletes:
    """The bare loops' one request: `DELETE .../graphs/{g}/backups/{b}`, AK/SK-signed by the service's signer, on one
    session; returns the status and the request id."""

    def __init__(self, spec: dict[str, Any], session: Any) -> None:
        # Imported here, once (the module stays light for the SDK peers), not in the measured loop.
        from yarl import URL

        from ges_retention.ges.auth import AkSkAuth
        from ges_retention.ges.signing import SignedRequest

        self._url, self._signed = URL, SignedRequest
        self._auth = AkSkAuth(spec["ak"], spec["sk"], spec["project_id"])
        self._base = f"{spec['url']}/v2/{spec['project_id']}/graphs"
        self._own = {"Content-Type": "application/json"}
        self._session = session

    async def __call__(self, graph_id: str, backup_id: str) -> tuple[int, str | None]:
        url = self._url(f"{self._base}/{graph_id}/backups/{backup_id}", encoded=True)
        own = self._own
        request = self._signed.of("DELETE", url.raw_path, headers=own, host=url.host_port_subcomponent or "")
        headers = {**own, **self._auth.sign(request)}
        async with self._session.delete(url, headers=headers) as response:
            await response.read()
            return response.status, response.headers.get("X-Request-Id")


async def _bare_main(spec: dict[str, Any], clock: _Clock, *, workers: bool) -> Counter[str]:
    import aiohttp

    statuses: Counter[str] = Counter()
    semaphore = asyncio.Semaphore(spec["concurrency"])
    async with aiohttp.ClientSession() as session:
        send = _SignedDeletes(spec, session)

        async def delete(graph_id: str, backup_id: str) -> None:
            async with semaphore:
                status, _ = await send(graph_id, backup_id)
                statuses[str(status)] += 1

        clock.start()
        if workers:
            targets = iter(spec["targets"])

            async def worker() -> None:
                for graph_id, backup_id in targets:
                    await delete(graph_id, backup_id)

            await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
        else:
            await asyncio.gather(*(delete(g, b) for g, b in spec["targets"]))
        clock.stop()
    return statuses


def _bare_journal(spec: dict[str, Any], clock: _Clock) -> Counter[str]:
    return asyncio.run(_bare_journal_main(spec, clock))


async def _bare_journal_main(spec: dict[str, Any], clock: _Clock) -> Counter[str]:
    """`bare_workers` plus the journal's inherent writes, through the service's own SQLite store: a feeder commits
    each batch of `concurrency` intents (`write_intents`) before its DELETEs are handed out (the next batch is
    written while the workers send this one), and outcomes are recorded in groups of `concurrency`
    (`record_outcomes`). No planning, pacer, retries, events or logging: what a write-ahead journal costs a loop."""
    import aiohttp

    from ges_retention.state import (
        BackupFacts,
        Outcome,
        PlannedDeletion,
        RunRecord,
        Scope,
        open_store,
        resolve_state_location,
    )

    statuses: Counter[str] = Counter()
    concurrency = spec["concurrency"]
    started = datetime.now(UTC)
    store = await open_store(resolve_state_location(spec["state"]))
    assert store is not None
    scope = Scope(policy="bench", endpoint=spec["url"], project_id=spec["project_id"])
    run_id = f"bare-journal-{started.timestamp():.0f}"
    await store.start_run(RunRecord(run_id, "manual", ("bench",), "bench", started))
    ready: asyncio.Queue[tuple[str, str, int] | None] = asyncio.Queue(concurrency)
    outcomes: list[Outcome] = []
    targets = spec["targets"]

    def item(graph_id: str, backup_id: str) -> PlannedDeletion:
        facts = BackupFacts(backup_id, backup_id, graph_id, graph_id, "auto", started, 1.0)
        return PlannedDeletion(facts, ("not among the last 1",))

    async def feed() -> None:
        for start in range(0, len(targets), concurrency):
            batch = targets[start : start + concurrency]
            verdict = await store.write_intents(run_id, scope, [item(g, b) for g, b in batch])
            ids = {ticket.backup_id: ticket.deletion_id for ticket in verdict.committed}
            for graph_id, backup_id in batch:
                await ready.put((graph_id, backup_id, ids[backup_id]))
        for _ in range(concurrency):
            await ready.put(None)

    async with aiohttp.ClientSession() as session:
        send = _SignedDeletes(spec, session)

        async def worker() -> None:
            while (entry := await ready.get()) is not None:
                graph_id, backup_id, deletion_id = entry
                status, request_id = await send(graph_id, backup_id)
                statuses[str(status)] += 1
                outcomes.append(Outcome(deletion_id, "deleted", request_id=request_id, attempts=1))
                if len(outcomes) >= concurrency:
                    group = outcomes[:]
                    outcomes.clear()
                    await store.record_outcomes(group)

        clock.start()
        await asyncio.gather(feed(), *(worker() for _ in range(concurrency)))
        if outcomes:
            await store.record_outcomes(outcomes)
        clock.stop()
    # What the journal holds (read after the clock stopped): `main` reports it as `journaled`, apart from statuses:
    # the targets whose last record says `deleted` (every intent was written, and its outcome).
    last_states = [(await store.why(backup_id)).records[-1].state for _, backup_id in targets]
    statuses[JOURNALED_KEY] = last_states.count("deleted")
    await store.close()
    return statuses


_RUNNERS: dict[str, Callable[[dict[str, Any], _Clock], Counter[str]]] = {
    "sdk_loop": _sdk_loop,
    "sdk_async": _sdk_async,
    "bare": _bare,
    "bare_workers": _bare_workers,
    "bare_journal": _bare_journal,
}


def main(argv: list[str]) -> int:
    kind, spec_path = argv
    spec = json.loads(Path(spec_path).read_text())
    clock = _Clock()
    statuses = _RUNNERS[kind](spec, clock)
    journaled = statuses.pop(JOURNALED_KEY, None)
    wall, cpu = clock.wall, clock.cpu
    n = len(spec["targets"])
    result = {
        "kind": kind,
        "deletions": n,
        "statuses": dict(statuses),
        "deleted": statuses.get("200", 0),
        "deletion_s": round(wall, 3),
        "deletion_cpu_s": round(cpu, 3),
        "deletes_per_s": round(n / wall, 1),
        "cpu_s_per_1000_deletes": round(1000 * cpu / n, 4),
        "cpu_busy_share": round(cpu / wall, 3),
        "phase_epoch_s": [clock.started_at, clock.stopped_at],
    }
    if journaled is not None:
        result["journaled"] = journaled  # `bare_journal`: the rows its journal holds as `deleted`
    print(json.dumps(result))
    return 0 if result["deleted"] == n else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


def _remove_state(path: Path) -> None:
    """A `bare_journal` run's SQLite journal (its WAL, shared memory and lock directory too): every run starts fresh."""
    import shutil

    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(f"{path}-locks", ignore_errors=True)


def run_peer(
    kind: str,
    *,
    emulator: Any,
    targets: list[tuple[str, str]],
    concurrency: int,
    cpu: int | None,
    workdir: Path,
) -> dict[str, Any]:
    """Run one peer in its own process pinned to `cpu`; its figures, plus the whole process's CPU and peak RSS."""
    from bench.measure import run_child

    spec = write_spec(
        workdir / f"{kind}.json",
        url=emulator.url,
        project_id=emulator.project_id,
        ak=emulator.ak,
        sk=emulator.sk,
        targets=targets,
        concurrency=concurrency,
    )
    emulator.reset_stats()
    cpu0, wait0 = emulator.cpu_seconds(), emulator.runqueue_wait_s()
    child = run_child(
        [sys.executable, "-m", "bench.peers", kind, str(spec)], cpu=cpu, cwd=workdir, watch_pid=emulator.proc.pid
    )
    spec.unlink(missing_ok=True)
    _remove_state(spec.with_suffix(".state.db"))
    if not child.stdout.strip():
        raise RuntimeError(f"peer {kind} failed: exit {child.returncode}")
    result: dict[str, Any] = json.loads(child.stdout)
    start, end = result.pop("phase_epoch_s")
    result["emulator_cpu_busy_share"] = round(child.watched.between(start, end) / max(1e-9, end - start), 3)
    result["process_wall_s"] = round(child.wall_s, 3)
    result["process_cpu_s"] = round(child.cpu_s, 3)
    result["process_max_rss_mb"] = round(child.max_rss_mb, 1)
    result["runqueue_wait_s"] = round(child.runqueue_wait_s, 3)
    stats = emulator.stats()
    emulator_cpu = emulator.cpu_seconds() - cpu0
    result["emulator"] = {
        "cpu_s": round(emulator_cpu, 3),
        "cpu_busy_share": round(emulator_cpu / child.wall_s, 3),
        "runqueue_wait_s": round(emulator.runqueue_wait_s() - wait0, 3),
        "requests": stats["requests"],
        "peak_rps": stats["peak_rps"],
        "max_in_flight": stats["max_in_flight"],
    }
    return result
