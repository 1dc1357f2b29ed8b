"""Shared fixtures: every test starts with a clean environment and unconfigured structlog."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog

from subprocess_env import SETTINGS_PREFIXES


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No credential or setting leaks in from the machine, and no `.env` is read from the checkout. The default
    state (`$XDG_STATE_HOME/ges-retention/state.db`) is the test's own, never the machine's."""
    for name in list(os.environ):
        if name.startswith(SETTINGS_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    yield


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    from ges_retention.log_context import clear_context
    from ges_retention.logs import reset_logging

    structlog.reset_defaults()
    clear_context()
    yield
    structlog.reset_defaults()
    clear_context()
    reset_logging()  # the root handler `configure_logging` adds for other libraries' lines
