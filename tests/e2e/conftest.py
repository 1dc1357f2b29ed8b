"""End-to-end fixtures: an in-process emulator on 127.0.0.1, seeded with the demo's realistic project."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2e_helpers import POLICY

from ges_retention.emulator.app import RunningEmulator
from support.emulators import seeded_emulator


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def emulator(now: datetime) -> AsyncIterator[RunningEmulator]:
    async with seeded_emulator(now) as emu:
        yield emu


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path
