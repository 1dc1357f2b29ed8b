"""Daemon fixtures: an in-process emulator seeded with the demo's realistic project."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from daemon_helpers import PROJECT

from ges_retention.demo import seed_demo_project
from ges_retention.emulator.app import RunningEmulator, running_emulator
from ges_retention.emulator.config import DEFAULT_AK, DEFAULT_SK, AccessKey, EmulatorConfig
from ges_retention.emulator.store import Store


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    store = Store()
    seed_demo_project(store, PROJECT, datetime.now(UTC))
    config = EmulatorConfig(project_ids=[PROJECT], access_keys=[AccessKey(DEFAULT_AK, DEFAULT_SK, PROJECT)])
    async with running_emulator(store=store, config=config) as emu:
        yield emu
