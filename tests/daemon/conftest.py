"""Daemon fixtures: an in-process emulator seeded with the demo's realistic project."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ges_retention.emulator.app import RunningEmulator
from support.emulators import seeded_emulator


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    async with seeded_emulator() as emu:
        yield emu
