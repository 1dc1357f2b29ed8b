"""The daemon's lease manager (`lease_manager.py`) over a real PostgreSQL, driven tick by tick (no loop, no sleep)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from state_helpers import FakeClock

from ges_retention.lease_manager import LeaseManager
from ges_retention.metrics import Metrics
from ges_retention.state import StateLocation, open_store, resolve_state_location
from ges_retention.state.leases import PgLeases, Taken
from ges_retention.state.postgres import PostgresStore
from support.logs import EventLog, capture_events
from support.postgres import PgServer

POLICIES = [f"p{i}" for i in range(6)]


@pytest.fixture
def logs() -> Iterator[EventLog]:
    with capture_events() as events:
        yield events


@pytest.fixture
async def pg_location(pg_server: PgServer) -> StateLocation:
    await pg_server.reset()
    return resolve_state_location(pg_server.url())


class Node:
    """One daemon's view: its store, its manager, what it was told."""

    def __init__(self, store: PostgresStore, clock: FakeClock) -> None:
        self.store = store
        self.acquired: list[tuple[str, bool]] = []
        self.metrics = Metrics()
        self.manager = LeaseManager(
            store.pg_leases,
            policies=lambda: POLICIES,
            on_acquired=lambda policy, taken: self.acquired.append((policy, taken.takeover)),
            metrics=self.metrics,
            monotonic=clock.monotonic,
        )

    def held(self) -> list[str]:
        return self.store.pg_leases.held()

    def gauge(self, policy: str) -> float | None:
        return self.metrics.registry.get_sample_value("ges_retention_lease_held", {"policy": policy})


@pytest.fixture
async def nodes(pg_location: StateLocation, clock: FakeClock) -> AsyncIterator[list[Node]]:
    made: list[Node] = []
    for holder in ("a:1:aa", "b:2:bb"):
        store = await open_store(pg_location, clock=clock, monotonic=clock.monotonic, holder=holder, lease_ttl_s=6)
        assert isinstance(store, PostgresStore)
        made.append(Node(store, clock))
    yield made
    for node in made:
        await node.manager.close()
        await node.store.close()


async def test_two_daemons_share_six_policies_three_each(nodes: list[Node], logs: EventLog) -> None:
    a, b = nodes
    await a.manager.tick()
    assert len(a.held()) == 6  # alone so far: everything
    await b.manager.tick()  # b joins: nothing is free yet, a gives back at its next tick
    await a.manager.tick()
    await b.manager.tick()
    assert len(a.held()) == 3 and len(b.held()) == 3 and set(a.held()) | set(b.held()) == set(POLICIES)
    assert a.manager.available is True
    assert all(a.gauge(p) == (1 if p in a.held() else 0) for p in POLICIES)
    assert {p for p, _ in b.acquired} == set(b.held()) and not any(takeover for _, takeover in b.acquired)
    given = {e["policy"] for e in logs.named("lease_released")}
    assert given == set(b.held())
    await a.manager.refresh()  # a's view of the others' leases is as of its last tick, or a refresh
    for policy in b.held():
        assert a.manager.holder_of(policy) == "b:2:bb" and b.manager.holder_of(policy) == "b:2:bb"
        assert not a.manager.holds(policy) and b.manager.holds(policy)


async def test_a_lease_lost_mid_run_is_taken_over_and_the_loser_says_lease_lost(
    nodes: list[Node], pg_server: PgServer, logs: EventLog
) -> None:
    a, b = nodes
    await a.manager.tick()
    lock = await a.store.try_run_lock("p0", "run-1")
    assert lock is not None and lock.valid()
    admin = await asyncpg.connect(host=str(pg_server.sockets), port=pg_server.port, user="postgres", database="ges")
    try:  # a stops renewing (SIGSTOP): its leases and its heartbeat expire on the database clock
        await admin.execute("UPDATE leases SET expires_at = now() - interval '1 second'")
        await admin.execute("UPDATE daemons SET expires_at = now() - interval '1 second'")
    finally:
        await admin.close()
    await b.manager.tick()
    assert ("p0", True) in b.acquired and all(not t for p, t in b.acquired if p != "p0")
    await a.manager.tick()
    lost = logs.named("lease_lost")
    assert {e["policy"] for e in lost} >= {"p0"} and lost[0]["log_level"] == "error"
    assert not lock.valid() and a.gauge("p0") == 0
    await lock.release()  # after losing it: changes nothing on the row
    assert b.manager.holds("p0")


async def test_shutdown_releases_idle_leases_at_once_and_hands_a_running_one_over(
    nodes: list[Node], logs: EventLog
) -> None:
    a, b = nodes
    await a.manager.tick()
    lock = await a.store.try_run_lock("p0", "run-1")
    assert lock is not None
    await a.manager.begin_shutdown()
    assert a.held() == ["p0"]  # still running: kept (and renewed) until its in-flight requests end
    await b.manager.tick()
    assert set(b.held()) == set(POLICIES) - {"p0"}  # a left the daemon table: b's target is all six
    await a.manager.tick()  # renew only: a takes nothing back
    assert a.held() == ["p0"]
    await lock.release()  # the run ended: the lease goes with its run id
    await b.manager.tick()
    assert set(b.held()) == set(POLICIES) and ("p0", True) in b.acquired
    assert {e["policy"] for e in logs.named("lease_released")} >= set(POLICIES) - {"p0"}


async def test_an_unreachable_state_makes_the_manager_unavailable_and_it_goes_on(
    nodes: list[Node], pg_server: PgServer, logs: EventLog, clock: FakeClock
) -> None:
    a, _ = nodes
    await a.manager.tick()
    admin = await asyncpg.connect(host=str(pg_server.sockets), port=pg_server.port, user="postgres")
    try:
        await admin.execute("ALTER DATABASE ges ALLOW_CONNECTIONS false")
        await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'ges' "
            "AND pid <> pg_backend_pid()"
        )
        await a.manager.tick()
        assert a.manager.available is False
        await a.manager.refresh()  # (an answer that names holders reads the table: it fails too, and keeps going)
        assert {e.get("operation") for e in logs.named("state_unavailable")} >= {"leases", "lease_table"}
        assert {e["log_level"] for e in logs.named("state_unavailable")} == {"error"}  # the contract's level
        clock.advance(6)  # a TTL passes without a renewal: nothing may run here
        assert not any(a.manager.holds(p) for p in POLICIES)
    finally:
        await admin.execute("ALTER DATABASE ges ALLOW_CONNECTIONS true")
        await admin.close()
    await a.manager.tick()
    assert a.manager.available is True and all(a.manager.holds(p) for p in POLICIES)


async def test_an_unexpected_error_in_a_round_or_in_on_acquired_is_logged_and_the_rounds_go_on(
    nodes: list[Node], logs: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = nodes

    def broken_on_acquired(policy: str, taken: Taken) -> None:
        raise RuntimeError(f"a bug reacting to {policy}")

    monkeypatch.setattr(a.manager, "_on_acquired", broken_on_acquired)
    await a.manager.tick()
    assert sorted(a.held()) == POLICIES  # taken all the same
    assert sorted(e["policies"][0] for e in logs.named("run_crashed")) == POLICIES

    heartbeat = PgLeases.heartbeat
    calls: list[int] = []

    async def heartbeat_broken_once(self: PgLeases) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in a round")
        await heartbeat(self)

    monkeypatch.setattr(PgLeases, "heartbeat", heartbeat_broken_once)
    await a.manager.tick()  # never raises
    [failed] = logs.named("lease_manager_failed")
    assert "a bug in a round" in failed["error"] and failed["log_level"] == "error"
    assert a.manager.available is True  # a bug is not an outage: /readyz stays as it was
    await a.manager.tick()  # the next round as usual
    assert len(calls) == 2 and all(a.manager.holds(p) for p in POLICIES)
