"""End-to-end fixtures: an in-process emulator on 127.0.0.1, seeded with the demo's realistic project."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2e_helpers import POLICY, PROJECT

from ges_retention.demo import seed_demo_project
from ges_retention.emulator.app import RunningEmulator, running_emulator
from ges_retention.emulator.config import DEFAULT_AK, DEFAULT_SK, AccessKey, EmulatorConfig
from ges_retention.emulator.store import Store


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def emulator(now: datetime) -> AsyncIterator[RunningEmulator]:
    store = Store()
    seed_demo_project(store, PROJECT, now)
    config = EmulatorConfig(project_ids=[PROJECT], access_keys=[AccessKey(DEFAULT_AK, DEFAULT_SK, PROJECT)])
    async with running_emulator(store=store, config=config) as emu:
        yield emu


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path
