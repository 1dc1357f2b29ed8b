"""Contract suite, run and daemon locks: the same on SQLite and PostgreSQL, waiting only through the injected sleep."""

from __future__ import annotations

import pytest
from state_helpers import FakeClock, OpenFn

from ges_retention.state import DaemonLockHeld, RunLockTimeout


async def test_a_run_lock_excludes_every_other_taker_and_names_its_holder(opener: OpenFn) -> None:
    first = await opener(holder="host-a:101")
    second = await opener(holder="host-b:202")
    lock = await first.try_run_lock("nightly")
    assert lock is not None and lock.holder == "host-a:101" and lock.held
    assert await first.try_run_lock("nightly") is None  # a second run in the same process
    assert await second.try_run_lock("nightly") is None  # another process (another store on the same state)
    assert await second.run_lock_holder("nightly") == "host-a:101"
    other = await second.try_run_lock("weekly")  # other policies are independent
    assert other is not None

    await lock.release()
    await lock.release()  # idempotent
    assert await second.run_lock_holder("nightly") is None
    taken = await second.try_run_lock("nightly")
    assert taken is not None and await first.run_lock_holder("nightly") == "host-b:202"
    await taken.release()
    await other.release()


async def test_waiting_for_a_busy_run_lock_times_out_naming_the_holder(opener: OpenFn, clock: FakeClock) -> None:
    first = await opener(holder="daemon-host:7")
    second = await opener(holder="cli-host:8")
    async with await first.acquire_run_lock("nightly"):
        with pytest.raises(RunLockTimeout, match="daemon-host:7") as caught:
            await second.acquire_run_lock("nightly", timeout_s=30)
        assert caught.value.holder == "daemon-host:7" and caught.value.name == "nightly"
        assert sum(clock.sleeps) == pytest.approx(30) and all(s <= 0.25 for s in clock.sleeps)
        clock.sleeps.clear()
        with pytest.raises(RunLockTimeout):
            await second.acquire_run_lock("nightly")  # no timeout: one try
        assert clock.sleeps == []
    assert await second.run_lock_holder("nightly") is None


async def test_a_waiting_run_gets_the_lock_once_it_is_released(opener: OpenFn, clock: FakeClock) -> None:
    first = await opener(holder="a:1")
    second = await opener(holder="b:2")
    held = await first.acquire_run_lock("nightly")

    async def release_after_three_polls() -> None:
        if len(clock.sleeps) == 3:
            await held.release()

    clock.on_sleep = release_after_three_polls
    lock = await second.acquire_run_lock("nightly", timeout_s=30)
    assert lock.holder == "b:2" and len(clock.sleeps) == 3
    await lock.release()


async def test_daemon_lock_one_per_sqlite_file_any_number_on_postgresql(opener: OpenFn, backend: str) -> None:
    first = await opener(holder="host-a:1")
    second = await opener(holder="host-b:2")
    lock = await first.acquire_daemon_lock()
    if backend == "sqlite":
        with pytest.raises(DaemonLockHeld, match="host-a:1") as caught:
            await second.acquire_daemon_lock()
        assert caught.value.holder == "host-a:1"
        await lock.release()
        again = await second.acquire_daemon_lock()
        assert again.holder == "host-b:2"
        await again.release()
    else:  # several replicas share one PostgreSQL state; leases (issue 15) spread the policies
        other = await second.acquire_daemon_lock()
        await other.release()
        await lock.release()
