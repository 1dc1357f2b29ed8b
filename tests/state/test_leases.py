"""Leases on a real PostgreSQL (`state/leases.py`): take, renew, expire, take over, release, fence, heartbeats.

The database clock cannot be injected, so "time passes on the database" is a statement that moves `expires_at` back
(`expire`); the local monotonic clock is the injected `FakeClock`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from state_helpers import SCOPE, FakeClock, item, start

from ges_retention.state import LeaseLost, StateLocation, open_store, resolve_state_location
from ges_retention.state.leases import SAFETY_MARGIN_S, PgLeases, holders_by_policy
from ges_retention.state.postgres import PostgresStore
from support.postgres import PgServer

TTL_S = 30.0


@pytest.fixture
async def pg_location(pg_server: PgServer) -> StateLocation:
    await pg_server.reset()
    return resolve_state_location(pg_server.url())


@pytest.fixture
async def admin(pg_server: PgServer, pg_location: StateLocation) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(host=str(pg_server.sockets), port=pg_server.port, user="postgres", database="ges")
    yield conn
    await conn.close()


@pytest.fixture
async def stores(pg_location: StateLocation, clock: FakeClock) -> AsyncIterator[list[PostgresStore]]:
    opened: list[PostgresStore] = []
    for holder in ("host-a:1:aa", "host-b:2:bb"):
        store = await open_store(pg_location, clock=clock, monotonic=clock.monotonic, holder=holder, lease_ttl_s=TTL_S)
        assert isinstance(store, PostgresStore)
        opened.append(store)
    yield opened
    for store in opened:
        await store.close()


async def expire(admin: asyncpg.Connection, policy: str | None = None) -> None:
    """The database clock passes every (or one policy's) lease's expiry."""
    if policy is None:
        await admin.execute("UPDATE leases SET expires_at = now() - interval '1 second'")
    else:
        await admin.execute("UPDATE leases SET expires_at = now() - interval '1 second' WHERE policy = $1", policy)


def leases_of(store: PostgresStore) -> PgLeases:
    return store.pg_leases


async def test_a_free_lease_is_taken_once_and_names_its_holder(stores: list[PostgresStore]) -> None:
    a, b = (leases_of(s) for s in stores)
    taken = await a.take("nightly")
    assert taken is not None and taken.lease.generation == 1 and taken.previous_holder is None
    assert not taken.takeover
    assert await b.take("nightly") is None
    again = await a.take("nightly")  # already ours: the same lease, no new generation
    assert again is not None and again.lease == taken.lease
    assert await b.holder_of("nightly") == "host-a:1:aa"
    table = await b.table()
    assert table["nightly"].live and table["nightly"].generation == 1 and not table["nightly"].running
    assert holders_by_policy(table) == {"nightly": "host-a:1:aa"}
    assert a.held() == ["nightly"] and b.held() == []


async def test_validity_on_the_local_clock_ends_one_second_before_the_ttl_and_renewal_extends_it(
    stores: list[PostgresStore], clock: FakeClock
) -> None:
    a = leases_of(stores[0])
    assert await a.take("nightly") is not None
    clock.advance(TTL_S - SAFETY_MARGIN_S - 0.01)
    assert a.valid("nightly")
    clock.advance(0.02)
    assert not a.valid("nightly") and a.lease("nightly") is not None  # not valid here, though still booked
    report = await a.renew()
    assert [lease.policy for lease in report.renewed] == ["nightly"] and report.lost == ()
    assert a.valid("nightly")
    clock.advance(TTL_S - SAFETY_MARGIN_S - 0.01)
    assert a.valid("nightly")


async def test_an_expired_lease_is_taken_over_with_a_new_generation_and_the_old_holder_loses_it(
    stores: list[PostgresStore], admin: asyncpg.Connection
) -> None:
    a, b = (leases_of(s) for s in stores)
    first = await a.take("nightly")
    assert first is not None
    await expire(admin)
    assert await b.holder_of("nightly") is None
    taken = await b.take("nightly")
    assert taken is not None and taken.lease.generation == 2 and taken.previous_holder == "host-a:1:aa"
    assert not taken.takeover  # it was idle: nothing to resume
    report = await a.renew()
    assert report.lost == (first.lease,) and report.renewed == ()
    assert a.lease("nightly") is None and not a.valid("nightly")
    assert await a.take("nightly") is None


async def test_a_lease_lost_mid_run_is_a_takeover_and_a_handover_at_shutdown_is_one_too(
    stores: list[PostgresStore], admin: asyncpg.Connection
) -> None:
    a, b = (leases_of(s) for s in stores)
    assert await a.take("nightly") is not None and await a.take("weekly") is not None
    assert await a.mark("nightly", "run-1")
    assert (await b.table())["nightly"].running
    await expire(admin, "nightly")
    taken = await b.take("nightly")
    assert taken is not None and taken.takeover
    assert not (await b.table())["nightly"].running  # the new holder is idle until it runs

    assert await a.mark("weekly", "run-2")
    assert await a.release("weekly", resume=True)
    handed = await b.take("weekly")
    assert handed is not None and handed.takeover and handed.lease.generation == 2

    assert await b.release("weekly")  # idle release: the next holder has nothing to resume
    again = await a.take("weekly")
    assert again is not None and not again.takeover and again.lease.generation == 3


async def test_a_released_lease_is_free_at_once(stores: list[PostgresStore]) -> None:
    a, b = (leases_of(s) for s in stores)
    assert await a.take("nightly") is not None
    assert await a.release("nightly")
    assert not await a.release("nightly")  # no longer in the book
    assert await b.holder_of("nightly") is None
    taken = await b.take("nightly")
    assert taken is not None and taken.lease.generation == 2


async def test_renewal_of_an_expired_lease_nobody_took_keeps_it(
    stores: list[PostgresStore], admin: asyncpg.Connection
) -> None:
    a, b = (leases_of(s) for s in stores)
    first = await a.take("nightly")
    assert first is not None
    await expire(admin)
    report = await a.renew()
    assert report.renewed == (first.lease,)
    assert await b.take("nightly") is None


async def test_a_batch_commits_only_under_the_current_generation(
    stores: list[PostgresStore], admin: asyncpg.Connection
) -> None:
    store_a, store_b = stores
    a, b = leases_of(store_a), leases_of(store_b)
    first = await a.take("nightly")
    assert first is not None
    await start(store_a, "r1")
    batch = await store_a.write_intents("r1", SCOPE, [item("b1")], lease=first.lease)
    assert [t.backup_id for t in batch.committed] == ["b1"]

    await expire(admin)
    with pytest.raises(LeaseLost, match="no longer held") as caught:  # expired, not yet taken: fenced already
        await store_a.write_intents("r1", SCOPE, [item("b2")], lease=first.lease)
    assert caught.value.policy == "nightly" and caught.value.exit_code == 1
    assert a.lease("nightly") is None  # the book forgets a fenced lease

    second = await b.take("nightly")
    assert second is not None
    with pytest.raises(LeaseLost, match="host-b:2:bb holds it") as caught:
        await store_a.write_intents("r1", SCOPE, [item("b3")], lease=first.lease)
    assert caught.value.holder == "host-b:2:bb"
    active = {row.backup.backup_id for row in await store_b.active_deletions(SCOPE)}
    assert active == {"b1"}  # neither fenced batch wrote anything

    await start(store_b, "r2")
    batch = await store_b.write_intents("r2", SCOPE, [item("b4")], lease=second.lease)
    assert [t.backup_id for t in batch.committed] == ["b4"]


async def test_a_one_shot_run_lock_takes_the_lease_and_gives_it_back(stores: list[PostgresStore]) -> None:
    store_a, store_b = stores
    lock = await store_a.try_run_lock("nightly")
    assert lock is not None and lock.lease is not None and lock.valid()
    assert (await leases_of(store_b).table())["nightly"].running
    assert await store_a.try_run_lock("nightly") is None  # a second run of it in this process
    assert await store_b.run_lock_holder("nightly") == "host-a:1:aa"
    await lock.release()
    assert not lock.valid()
    assert await store_b.run_lock_holder("nightly") is None
    assert leases_of(store_a).held() == []


async def test_a_daemon_runs_only_what_its_manager_holds_and_keeps_it_after_the_run(
    stores: list[PostgresStore],
) -> None:
    store_a, store_b = stores
    a = leases_of(store_a)
    a.managed = True
    assert await store_a.try_run_lock("nightly") is None  # the manager has not taken it: not ours to run
    assert await a.take("nightly") is not None
    lock = await store_a.try_run_lock("nightly", "run-7")
    assert lock is not None and a.is_running("nightly")
    await lock.release()
    assert a.held() == ["nightly"] and not a.is_running("nightly")  # kept while idle
    row = (await leases_of(store_b).table())["nightly"]
    assert row.live and not row.running

    lock = await store_a.try_run_lock("nightly", "run-8")
    assert lock is not None
    a.handing_over = True  # SIGTERM mid-run: the lease goes with its run id, for the next holder to resume
    await lock.release()
    assert a.held() == []
    taken = await leases_of(store_b).take("nightly")
    assert taken is not None and taken.takeover


async def test_a_run_lock_is_refused_when_the_local_clock_says_the_lease_may_be_gone(
    stores: list[PostgresStore], clock: FakeClock
) -> None:
    a = leases_of(stores[0])
    a.managed = True
    assert await a.take("nightly") is not None
    clock.advance(TTL_S)
    assert await stores[0].try_run_lock("nightly") is None


async def test_heartbeats_say_which_daemons_live(stores: list[PostgresStore], admin: asyncpg.Connection) -> None:
    a, b = (leases_of(s) for s in stores)
    await a.heartbeat()
    await b.heartbeat()
    assert await a.live_daemons() == ["host-a:1:aa", "host-b:2:bb"]
    await b.leave()
    assert await a.live_daemons() == ["host-a:1:aa"]
    await admin.execute("UPDATE daemons SET expires_at = now() - interval '1 second'")
    assert await a.live_daemons() == []
    await a.heartbeat()
    assert await b.live_daemons() == ["host-a:1:aa"]


async def test_the_default_holder_is_host_pid_and_a_random_part(pg_location: StateLocation) -> None:
    one = await open_store(pg_location)
    two = await open_store(pg_location)
    assert one is not None and two is not None
    try:
        assert one.holder.count(":") == 2 and one.holder != two.holder
        assert one.holder.rsplit(":", 1)[0] == two.holder.rsplit(":", 1)[0]
    finally:
        await one.close()
        await two.close()


async def test_a_ttl_must_exceed_the_safety_margin(pg_location: StateLocation) -> None:
    with pytest.raises(ValueError, match="TTL"):
        await open_store(pg_location, lease_ttl_s=1.0)


async def test_a_row_locked_by_a_frozen_transaction_is_not_waited_for(
    stores: list[PostgresStore], admin: asyncpg.Connection
) -> None:
    """A holder frozen inside a fenced batch keeps the row share-locked: a taker skips it this round instead of
    blocking its whole lease round (the server ends the frozen session after one TTL)."""
    a, b = (leases_of(s) for s in stores)
    assert await a.take("nightly") is not None
    await expire(admin)
    frozen = admin.transaction()
    await frozen.start()
    try:
        await admin.execute("SELECT 1 FROM leases WHERE policy = 'nightly' FOR SHARE")
        assert await b.take("nightly") is None
    finally:
        await frozen.rollback()
    assert await b.take("nightly") is not None


async def test_sessions_end_a_transaction_left_idle_for_a_ttl(pg_location: StateLocation) -> None:
    store = await open_store(pg_location, lease_ttl_s=4.5)
    assert isinstance(store, PostgresStore)
    try:
        async with store.reading("probe") as tx:
            rows = await tx.fetch("SELECT current_setting('idle_in_transaction_session_timeout')")
        assert rows == [("4500ms",)]
    finally:
        await store.close()
