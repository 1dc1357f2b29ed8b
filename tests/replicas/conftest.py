"""Several replicas: a real PostgreSQL server for the session (no skip), an emulator in this process seeded with six
graphs for six policies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from replicas_helpers import seeded_graphs

from ges_retention.emulator.app import RunningEmulator, running_emulator
from support.emulators import seeded_config
from support.postgres import PgServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def pg_url(pg_server: PgServer) -> str:
    await pg_server.reset()
    return pg_server.url()


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    async with running_emulator(store=seeded_graphs(), config=seeded_config()) as emu:
        yield emu
