"""`settled_read`: content is used only once two reads `settle_s` apart agree; time goes through the `wait` seam."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ges_retention.policy_loading import MAX_FILE_BYTES
from ges_retention.policy_watch import FileRead, read_file, settled_read


def reads(*values: bytes | None) -> tuple[Callable[[], FileRead], list[int]]:
    """A read that returns `values` in turn (None: unreadable), and the count of reads made."""
    made = [0]

    def read() -> FileRead:
        value = values[min(made[0], len(values) - 1)]
        made[0] += 1
        return FileRead(value) if value is not None else FileRead(None, "cannot read the file: gone")

    return read, made


class Waits:
    def __init__(self, stop_after: int | None = None) -> None:
        self.waited: list[float] = []
        self.stop_after = stop_after

    async def __call__(self, seconds: float) -> bool:
        self.waited.append(seconds)
        return self.stop_after is not None and len(self.waited) >= self.stop_after


async def test_a_stable_file_is_read_twice_one_settle_apart() -> None:
    read, made = reads(b"a")
    waits = Waits()
    assert await settled_read(read, 1.0, waits) == FileRead(b"a")
    assert (made[0], waits.waited) == (2, [1.0])


async def test_a_file_still_being_written_is_used_only_once_it_stops_changing() -> None:
    read, made = reads(b"ver", b"version: 1\n", b"version: 1\npolicies: []\n", b"version: 1\npolicies: []\n")
    waits = Waits()
    assert await settled_read(read, 0.5, waits) == FileRead(b"version: 1\npolicies: []\n")
    assert (made[0], waits.waited) == (4, [0.5, 0.5, 0.5])


async def test_an_unreadable_file_settles_like_any_content() -> None:
    read, _ = reads(None, None)
    settled = await settled_read(read, 1.0, Waits())
    assert settled is not None and settled.content is None and "gone" in (settled.error or "")


async def test_a_stop_during_the_settle_returns_none() -> None:
    read, made = reads(b"a", b"b", b"c")
    assert await settled_read(read, 1.0, Waits(stop_after=2)) is None
    assert made[0] == 2


async def test_settle_zero_uses_the_first_read() -> None:
    read, made = reads(b"a", b"b")
    waits = Waits()
    assert await settled_read(read, 0, waits) == FileRead(b"a")
    assert (made[0], waits.waited) == (1, [])


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_read_file_says_why_it_cannot_read(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "policy.yaml"
    if kind == "directory":
        path.mkdir()
    result = read_file(path)
    assert result.content is None and result.error is not None and result.error.startswith("cannot read the file")


def test_read_file_stops_one_byte_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 100))
    content = read_file(path).content
    assert content is not None and len(content) == MAX_FILE_BYTES + 1
