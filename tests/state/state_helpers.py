"""Shared values of the journal tests: a fake clock, scopes, planned items (fixtures are in `conftest.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ges_retention.state import BackupFacts, PlannedDeletion, RunRecord, Scope, Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    """Wall clock, monotonic clock and sleep in one: sleeping advances both, nothing waits for real."""

    now: datetime = T0
    mono: float = 1000.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[], Awaitable[None]] | None = None

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        if self.on_sleep is not None:
            await self.on_sleep()


OpenFn = Callable[..., Awaitable[Store]]
"""`await opener(mode=..., holder=...)`: a store at the test's location (see the `opener` fixture)."""

SCOPE = Scope(policy="nightly", endpoint="https://ges.example", project_id="p1")
OTHER_ENDPOINT = Scope(policy="nightly", endpoint="http://127.0.0.1:9999", project_id="p1")


def item(backup_id: str, *reasons: str, size_mb: float | None = 12.5) -> PlannedDeletion:
    facts = BackupFacts(
        backup_id=backup_id,
        name=f"name-{backup_id}",
        graph_id="g1",
        graph_name="graph-one",
        method="auto",
        started_at=T0 - timedelta(days=40),
        size_mb=size_mb,
    )
    return PlannedDeletion(facts, reasons or ("older than 30d",))


async def start(store: Store, run_id: str, *policies: str, at: timedelta = timedelta()) -> None:
    await store.start_run(RunRecord(run_id, "schedule", policies or ("nightly",), "host-a", T0 + at))
