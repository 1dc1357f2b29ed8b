"""`StateLink`: the daemon's journal, opened at start, retried with backoff while unreachable (no real sleep: the
waits go through a seam), misconfiguration and a second daemon raised at once."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from ges_retention.daemon_state import BACKOFF_MAX_S, StateLink
from ges_retention.service import Service
from ges_retention.settings import Settings
from ges_retention.state import (
    DaemonLockHeld,
    StateLocationInvalid,
    StateUnavailable,
    Store,
    open_store,
    resolve_state_location,
)
from support.logs import capture_events


def service(tmp_path: Path) -> Service:
    return Service(Settings(_env_file=None, token="t", state=str(tmp_path / "state.db")))


async def test_an_unreachable_state_is_retried_with_growing_waits_until_it_connects(tmp_path: Path) -> None:
    svc = service(tmp_path)
    attempts: list[int] = []
    waits: list[float] = []

    async def open_() -> Store | None:
        attempts.append(1)
        if len(attempts) <= 4:
            raise StateUnavailable("connection refused", location="postgresql://db/ges")
        return await open_store(resolve_state_location(str(tmp_path / "state.db")), mode="create")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    link = StateLink(svc, open_store=open_, sleep=sleep)
    await link.start()  # unreachable: not an error at start
    assert not link.connected and link.error == "connection refused"
    async with asyncio.timeout(5):
        await link.wait_connected()
    assert len(attempts) == 5 and svc.store is not None and link.error is None
    assert all(b > a for a, b in itertools.pairwise(waits))  # backoff grows (with jitter)
    assert max(waits) <= BACKOFF_MAX_S * 1.2
    await link.stop()
    assert svc.store is None


async def test_misconfiguration_at_start_raises(tmp_path: Path) -> None:
    async def open_() -> Store | None:
        raise StateLocationInvalid("unsupported state URL scheme 'mysql'", location="mysql://db")

    link = StateLink(service(tmp_path), open_store=open_)
    with pytest.raises(StateLocationInvalid):
        await link.start()
    assert not link.connected


async def test_a_second_daemon_on_the_same_file_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = StateLink(service(tmp_path))
    await first.start()
    try:
        second_service = service(tmp_path)
        second = StateLink(second_service)
        with pytest.raises(DaemonLockHeld) as raised:
            await second.start()
        assert raised.value.holder is not None and raised.value.exit_code == 2
        assert second_service.store is None  # the store it opened was closed again
    finally:
        await first.stop()


async def test_a_failing_connected_hook_is_logged_and_the_link_stays_connected(tmp_path: Path) -> None:
    """A bug in what reacts to the connection must not look like an unreachable state: retrying would open a second
    store (and reach for a second daemon lock) beside the connected one."""
    svc = service(tmp_path)
    attempts: list[int] = []

    async def open_() -> Store | None:
        attempts.append(1)
        if len(attempts) == 1:
            raise StateUnavailable("connection refused", location="postgresql://db/ges")
        return await open_store(resolve_state_location(str(tmp_path / "state.db")), mode="create")

    async def hook(_store: Store) -> None:
        raise RuntimeError("a bug in the hook")

    async def sleep(_seconds: float) -> None:
        await asyncio.sleep(0)

    link = StateLink(svc, open_store=open_, sleep=sleep)
    link.on_connected = hook
    with capture_events() as logs:
        await link.start()
        async with asyncio.timeout(5):
            await logs.wait("run_crashed")
            await logs.wait("state_connected")  # the retry ended: connected
    try:
        assert len(attempts) == 2 and link.connected and link.error is None
        crashed = logs.named("run_crashed")
        assert len(crashed) == 1 and "a bug in the hook" in crashed[0]["error"]
        assert logs.named("state_unavailable") == []
    finally:
        await link.stop()
