"""Fixtures shared by the service tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ges_retention.state import Store, open_store, resolve_state_location


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh SQLite journal in the test's temp dir."""
    opened = await open_store(resolve_state_location(str(tmp_path / "state.db")), mode="create")
    assert opened is not None
    yield opened
    await opened.close()
