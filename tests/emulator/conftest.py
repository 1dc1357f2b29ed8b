"""Fixtures of the emulator's tests: a movable clock, a seeded emulator on a free port, a client session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from emulator_helpers import NOW_MS, PROJECT, FakeClock

from ges_retention.emulator.app import EmulatorConfig, RunningEmulator, running_emulator
from ges_retention.emulator.store import Store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> Store:
    """3 graphs x 12 backups, seeded at the tests' fixed "now"."""
    store = Store()
    store.seed(PROJECT, graphs=3, backups_per_graph=12, now_ms=NOW_MS, seed=42)
    return store


@pytest.fixture
def config() -> EmulatorConfig:
    return EmulatorConfig()


@pytest.fixture
async def emulator(store: Store, config: EmulatorConfig, clock: FakeClock) -> AsyncIterator[RunningEmulator]:
    async with running_emulator(store, config, clock=clock) as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
