"""Fixtures of the unit tests (pure code: no network, no clock; `now` is always passed in)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from factories import WritePolicy


@pytest.fixture
def write_policy(tmp_path: Path) -> WritePolicy:
    """Write a policy file (text is dedented; bytes are written as they are) and return its path."""

    def write(content: str | bytes) -> Path:
        path = tmp_path / "policies.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")
        return path

    return write
