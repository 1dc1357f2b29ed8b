"""The seeded emulator most service tests run against: in this process, on 127.0.0.1, with the demo's realistic
project (four graphs, 75 days of daily backups, weekly manual ones, a golden, a failed and a running one)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from ges_retention.demo import seed_demo_project
from ges_retention.emulator.app import RunningEmulator, running_emulator
from ges_retention.emulator.config import DEFAULT_AK, DEFAULT_SK, AccessKey, EmulatorConfig
from ges_retention.emulator.store import Store

__all__ = ["PROJECT", "seeded_config", "seeded_emulator", "seeded_store"]

PROJECT = "0a1b2c3d4e5f"


def seeded_store(now: datetime | None = None, project_id: str = PROJECT) -> Store:
    store = Store()
    seed_demo_project(store, project_id, now or datetime.now(UTC))
    return store


def seeded_config(project_id: str = PROJECT) -> EmulatorConfig:
    """The emulator's configuration for one project, with the default AK/SK bound to it."""
    return EmulatorConfig(project_ids=[project_id], access_keys=[AccessKey(DEFAULT_AK, DEFAULT_SK, project_id)])


@asynccontextmanager
async def seeded_emulator(
    now: datetime | None = None, *, store: Store | None = None, port: int = 0, project_id: str = PROJECT
) -> AsyncIterator[RunningEmulator]:
    """A running emulator seeded as of `now` (default: the clock), or serving `store` when given."""
    store = store if store is not None else seeded_store(now, project_id)
    async with running_emulator(store=store, config=seeded_config(project_id), port=port) as emulator:
        yield emulator
