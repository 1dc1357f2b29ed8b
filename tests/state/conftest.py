"""Fixtures of the journal's contract suite: every `backend` test runs on SQLite (a file in a temp dir) and on a real
PostgreSQL 15 server started once per session (`tests/support/postgres.py`). No skip: a server that cannot start
fails the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from state_helpers import FakeClock, OpenFn

from ges_retention.state import StateLocation, Store, open_store, resolve_state_location
from support.postgres import PgServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def location(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> StateLocation:
    """An empty state location of the backend under test."""
    if backend == "sqlite":
        return resolve_state_location(str(tmp_path / "state" / "state.db"))
    server: PgServer = request.getfixturevalue("pg_server")
    await server.reset()
    return resolve_state_location(server.url())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def opener(location: StateLocation, clock: FakeClock) -> AsyncIterator[OpenFn]:
    """`await opener(mode=..., holder=...)`: a store at `location`, closed at the end of the test."""
    opened: list[Store] = []

    async def open_(mode: str = "create", **options: object) -> Store:
        options.setdefault("clock", clock)
        options.setdefault("monotonic", clock.monotonic)
        options.setdefault("sleep", clock.sleep)
        store = await open_store(location, mode=mode, **options)  # type: ignore[arg-type]
        assert store is not None
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


@pytest.fixture
async def store(opener: OpenFn) -> Store:
    return await opener()
