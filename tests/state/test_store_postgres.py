"""PostgreSQL only: a wrong password and a missing database are misconfiguration (exit 2), an unreachable server is
unavailable (exit 1), no message carries the password, and a run lock dies with its holder's session."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest
from state_helpers import FakeClock

from ges_retention.state import (
    StateAuthFailed,
    StateError,
    StateLocationInvalid,
    StateUnavailable,
    open_store,
    resolve_state_location,
)
from ges_retention.state.postgres import to_dollar
from support.postgres import PASSWORD, PgServer, free_port


async def test_a_wrong_password_is_an_authentication_error_without_the_password(pg_server: PgServer) -> None:
    secret = "wrong-pass-S3cr3t"
    location = resolve_state_location(pg_server.url(password=secret))
    assert secret not in location.display and secret not in repr(location)
    for mode in ("create", "existing", "read_only"):
        with pytest.raises(StateAuthFailed) as caught:
            await open_store(location, mode=mode)
        assert secret not in str(caught.value) and secret not in caught.value.location
        assert PASSWORD not in str(caught.value)
        assert "***" in caught.value.location


async def test_an_unreachable_server_is_unavailable_not_misconfigured() -> None:
    location = resolve_state_location(f"postgresql://ges:{PASSWORD}@127.0.0.1:{free_port()}/ges")
    with pytest.raises(StateUnavailable, match="unreachable") as caught:
        await open_store(location)
    assert PASSWORD not in str(caught.value)


async def test_a_missing_database_is_misconfiguration(pg_server: PgServer) -> None:
    with pytest.raises(StateLocationInvalid, match="does not exist"):
        await open_store(resolve_state_location(pg_server.url(database="no_such_db")))


async def test_a_run_lock_is_the_lease_and_frees_only_when_it_expires_on_the_database_clock(
    pg_server: PgServer, clock: FakeClock
) -> None:
    """A holder that dies (its sessions gone) keeps the lease until it expires: its DELETEs may still be in flight.
    The database clock moving past `expires_at` is simulated by moving `expires_at` back."""
    await pg_server.reset()
    location = resolve_state_location(pg_server.url())
    first = await open_store(location, clock=clock, holder="dies:1")
    second = await open_store(location, clock=clock, holder="lives:2")
    assert first is not None and second is not None
    try:
        lock = await first.try_run_lock("nightly")
        assert lock is not None and lock.lease is not None and await second.run_lock_holder("nightly") == "dies:1"
        await first.close()  # its connections are gone, as when the process dies
        admin = await asyncpg.connect(host=str(pg_server.sockets), port=pg_server.port, user="postgres", database="ges")
        try:
            assert await second.try_run_lock("nightly") is None
            assert await second.run_lock_holder("nightly") == "dies:1"
            await admin.execute("UPDATE leases SET expires_at = now() - interval '1 second'", timeout=10)
        finally:
            await admin.close()
        assert await second.run_lock_holder("nightly") is None
        taken = await second.try_run_lock("nightly")
        assert taken is not None and await second.run_lock_holder("nightly") == "lives:2"
        assert taken.lease is not None and taken.lease.generation == lock.lease.generation + 1
        await taken.release()
        with contextlib.suppress(StateError):
            await lock.release()  # releasing a superseded lease changes nothing
        assert await second.run_lock_holder("nightly") is None
    finally:
        await first.close()
        await second.close()


async def test_a_store_whose_server_went_away_reports_unavailable(pg_server: PgServer, clock: FakeClock) -> None:
    """Mid-run loss of the database: every call is `StateUnavailable` (the runner then sends no further DELETE)."""
    await pg_server.reset()
    store = await open_store(resolve_state_location(pg_server.url()), clock=clock)
    assert store is not None
    admin = await asyncpg.connect(host=str(pg_server.sockets), port=pg_server.port, user="postgres")
    try:
        await admin.execute("ALTER DATABASE ges ALLOW_CONNECTIONS false")
        await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = 'ges' AND pid <> pg_backend_pid()"
        )
        with pytest.raises(StateError) as caught:
            await store.put_hold("b1", "r")
        assert isinstance(caught.value, StateUnavailable), caught.value
    finally:
        await admin.execute("ALTER DATABASE ges ALLOW_CONNECTIONS true")
        await admin.close()
        await store.close()


def test_placeholders_become_numbered_parameters() -> None:
    assert to_dollar("SELECT ? , ?, x IN (?, ?)") == "SELECT $1 , $2, x IN ($3, $4)"


async def test_a_hung_server_is_unavailable_after_the_command_timeout_not_a_wait_forever(clock: FakeClock) -> None:
    """A database host that stops answering (SIGSTOP: connections open, no reply) must not hang a run, a lease round
    or a shutdown: each call gives up after `command_timeout_s` as `StateUnavailable`, and the store still closes.
    A server of its own: freezing the session's would stall every other test. (Without the timeout the call hangs,
    and not even cancelling it ends it: the transaction's rollback waits on the frozen connection too.)"""
    server = await asyncio.to_thread(PgServer.start)
    try:
        location = resolve_state_location(server.url())
        store = await open_store(location, clock=clock, command_timeout_s=1.0)
        assert store is not None
        await store.put_hold("b1", "before the hang")
        server.freeze()
        try:
            async with asyncio.timeout(60):  # a safety net far above the 1 s under test, not a duration asserted
                with pytest.raises(StateUnavailable) as caught:
                    await store.put_hold("b2", "during the hang")
                assert PASSWORD not in str(caught.value)
                with pytest.raises(StateUnavailable):
                    await store.holds_in_force()
                await store.close()
        finally:
            server.thaw()
    finally:
        await asyncio.to_thread(server.stop)
