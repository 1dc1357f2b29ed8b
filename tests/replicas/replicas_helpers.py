"""Two or more `ges-retention daemon` processes on one PostgreSQL state against one emulator.

Six policies, one per graph (`g0-*` .. `g5-*`), each graph with `BACKUPS` daily backups, each policy keeping the
newest `KEEP`: whichever daemon runs what, the final state is known in advance (`expected_ids`), and it is what a
single clean daemon leaves. Each daemon's requests carry its lease holder id in the `User-Agent`, so the emulator's
stats count DELETEs per daemon. The schedules never fire during a test (03:00 on the 1st of January): runs are
triggered by signals and HTTP, which go through the same lease checks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from ges_retention.emulator.app import RunningEmulator
from ges_retention.emulator.store import Store
from subprocess_env import emulator_env
from support.emulators import PROJECT
from support.processes import DaemonProcess

__all__ = [
    "BACKUPS",
    "KEEP",
    "POLICIES",
    "Replica",
    "add_old_backups",
    "balanced",
    "expected_ids",
    "policy_text",
    "seeded_graphs",
    "start_replica",
    "wait_until",
]

POLICIES = [f"p{i}" for i in range(6)]
BACKUPS = 12
KEEP = 2
TTL_S = 3.0
NOW = datetime.now(UTC).replace(microsecond=0)


def _ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def seeded_graphs() -> Store:
    store = Store()
    store.add_project(PROJECT)
    for index in range(len(POLICIES)):
        graph_id = f"{index:08d}-g{index}"
        store.add_graph(PROJECT, name=f"g{index}-main", graph_id=graph_id, created_ms=_ms(NOW - timedelta(days=400)))
        for day in range(BACKUPS):
            record = {"id": f"g{index}-b{day:02d}", "graph_id": graph_id, "backup_method": "auto"}
            store.add_backup(PROJECT, {**record, "start_timestamp": _ms(NOW - timedelta(days=day, hours=1))})
    return store


def add_old_backups(emulator: RunningEmulator, policy: str, count: int) -> None:
    """Backups older than every seeded one in `policy`'s graph: its next run deletes them."""
    index = POLICIES.index(policy)
    for extra in range(count):
        start = NOW - timedelta(days=BACKUPS + 10 + extra)
        record = {"id": f"g{index}-old{extra:02d}", "graph_id": f"{index:08d}-g{index}", "backup_method": "auto"}
        emulator.store.add_backup(PROJECT, {**record, "start_timestamp": _ms(start)})


def expected_ids() -> set[str]:
    """What a single clean daemon leaves: the `KEEP` newest backups of each graph."""
    return {f"g{index}-b{day:02d}" for index in range(len(POLICIES)) for day in range(KEEP)}


def policy_text() -> str:
    lines = ["version: 1", "policies:"]
    for index, name in enumerate(POLICIES):
        lines += [
            f"  - name: {name}",
            f"    project_id: {PROJECT}",
            '    schedule: "0 3 1 1 *"',
            f'    select: {{graphs: ["g{index}-*"]}}',
            f"    keep: {{last: {KEEP}}}",
            "    safety: {max_deletes: 1000}",
        ]
    return "\n".join(lines) + "\n"


class Replica:
    """A daemon process and what its events say about its leases."""

    def __init__(self, name: str, process: DaemonProcess) -> None:
        self.name = name
        self.process = process

    @property
    def holder(self) -> str | None:
        acquired = self.process.named("lease_acquired")
        return acquired[0]["holder"] if acquired else None

    def held(self) -> set[str]:
        """The policies this daemon holds, replaying its lease events in order."""
        held: set[str] = set()
        for event in self.process.events:
            if event["event"] == "lease_acquired":
                held.add(event["policy"])
            elif event["event"] in ("lease_released", "lease_lost"):
                held.discard(event["policy"])
        return held

    @property
    def url(self) -> str:
        return str(self.process.named("http_listening")[0]["url"])

    async def post(self, path: str) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.post(f"{self.url}{path}") as response:
            return response.status, await response.json()

    async def get(self, path: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}{path}") as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
            return body

    async def idle(self, timeout_s: float = 30.0) -> None:
        """Until no run task is left (`/healthz` `runs_in_progress`): a run's task outlives its `run_finished` line
        by the release of its leases. Polled, bounded: the daemon logs nothing when a task ends."""
        async with asyncio.timeout(timeout_s):
            while (await self.get("/healthz"))["runs_in_progress"]:  # noqa: ASYNC110 - no event says it
                await asyncio.sleep(0.05)

    def runs(self, policy: str | None = None) -> list[dict[str, Any]]:
        """Its `run_started` events (of one policy)."""
        return [e for e in self.process.named("run_started") if policy is None or policy in e["policies"]]


async def start_replica(name: str, policy: Path, emulator: RunningEmulator, pg_url: str, **extra: str) -> Replica:
    env = emulator_env(
        emulator.url,
        **{
            "GES_RETENTION_HTTP": "127.0.0.1:0",
            "GES_RETENTION_STATE": pg_url,
            "GES_RETENTION_LEASE_TTL_S": str(TTL_S),
            "GES_RETENTION_CONCURRENCY": "2",
            "GES_RETENTION_RELOAD_SETTLE_S": "0",
            "GES_RETENTION_SHUTDOWN_GRACE_S": "20",
            **extra,
        },
    )
    replica = Replica(name, await DaemonProcess.start(str(policy), env))
    await replica.process.wait_event("daemon_started", timeout_s=30)
    return replica


async def wait_until(
    replicas: Sequence[Replica], predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = ""
) -> float:
    """Until `predicate()` holds, re-checked at each new log line of any replica; the seconds it took."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                waiters = [asyncio.ensure_future(r.process.lines_past(len(r.process.lines))) for r in replicas]
                try:
                    done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
                    await asyncio.gather(*waiters, return_exceptions=True)
                for finished in done:
                    finished.result()  # a replica that exited fails the wait
    except TimeoutError:
        summary = {r.name: sorted(r.held()) for r in replicas}
        tails = {r.name: r.process.lines[-8:] for r in replicas}
        raise AssertionError(f"timed out waiting for {what or predicate}: {summary}; last lines {tails}") from None
    return time.monotonic() - started


def balanced(replicas: Sequence[Replica]) -> bool:
    """Every policy held once and the counts within one of each other: the spread's fixed point, where nothing moves
    any more (a 2/4 split is on its way to 3/3, and a trigger then could meet a lease in flight)."""
    helds = [r.held() for r in replicas]
    every = set().union(*helds)
    sizes = [len(h) for h in helds]
    return every == set(POLICIES) and sum(sizes) == len(POLICIES) and max(sizes) - min(sizes) <= 1
