"""Settled reads of the policy file: its content is used only once two reads `settle_s` apart give the same bytes.

A file rewritten in place in two steps (`cat > file`, an append, a slow copy, an editor saving in place) is valid
YAML after its first step, because YAML is line-oriented: a prefix can lack `select`, `dry_run: true` or a second
policy that protected backups through overlap. Acting on such a prefix deletes what the full file keeps. So nothing
is loaded until the file has stopped changing for `settle_s`; atomic renames and Kubernetes `..data` symlink swaps
settle on their first read and load within one poll interval plus `settle_s`.

Pure of the clock: the caller passes the read and the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ges_retention.policy_loading import MAX_FILE_BYTES

__all__ = ["FileRead", "PolicyWatcher", "read_file", "settled_read"]


@dataclass(frozen=True, slots=True)
class FileRead:
    """One read of the file: its bytes, or why it could not be read (deleted, unreadable, a directory)."""

    content: bytes | None
    error: str | None = None


def read_file(path: Path) -> FileRead:
    """The file's bytes (at most one byte more than a policy file may hold, so a huge file is refused, not read)."""
    try:
        # open() follows symlinks on every call: a Kubernetes ConfigMap's `..data` swap is seen at once.
        with open(path, "rb") as handle:
            return FileRead(handle.read(MAX_FILE_BYTES + 1))
    except OSError as exc:
        return FileRead(None, f"cannot read the file: {exc.strerror or type(exc).__name__}")


async def settled_read(
    read: Callable[[], FileRead], settle_s: float, wait: Callable[[float], Awaitable[bool]]
) -> FileRead | None:
    """Read until two consecutive reads `settle_s` apart agree, and return that read; None if `wait` says stop.

    `wait(seconds)` waits and returns True when the daemon is stopping. With `settle_s <= 0` the first read is used.
    """
    current = read()
    if settle_s <= 0:
        return current
    while True:
        if await wait(settle_s):
            return None
        again = read()
        if again == current:
            return again
        current = again


class PolicyWatcher:
    """Polls the file every `interval_s` (or at once on `request_reload`) and hands each settled change to `apply`.

    `apply` is called only with settled reads, never between the reads of a settle; an exception from it (or from
    anything here) is logged by `on_error` and watching goes on: no bug can silently stop reloads.
    """

    __slots__ = (
        "_reload_requested",
        "_wake",
        "apply",
        "interval_s",
        "on_error",
        "path",
        "seen",
        "settle_s",
        "stopping",
        "wait",
    )

    def __init__(
        self,
        path: Path,
        *,
        apply: Callable[[FileRead], object],
        on_error: Callable[[Exception], object],
        stopping: asyncio.Event,
        interval_s: float,
        settle_s: float,
        wait: Callable[[float], Awaitable[bool]] | None = None,
    ) -> None:
        self.path = path
        self.apply = apply
        self.on_error = on_error
        self.stopping = stopping
        self.interval_s = interval_s
        self.settle_s = settle_s
        self.wait = wait or self._wait_unless_stopping
        self.seen: FileRead | None = None  # the last settled read handed to `apply`
        self._wake = asyncio.Event()
        self._reload_requested = False

    async def _wait_unless_stopping(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        return self.stopping.is_set()

    async def read_settled(self) -> FileRead | None:
        """The file once two reads `settle_s` apart agree; None if stopping meanwhile."""
        return await settled_read(lambda: read_file(self.path), self.settle_s, self.wait)

    def request_reload(self) -> None:
        """SIGHUP: read the file now (settled), and apply it even if its content did not change."""
        self._reload_requested = True
        self._wake.set()

    def wake(self) -> None:
        """Stop waiting for the next poll (used when stopping)."""
        self._wake.set()

    async def run(self) -> None:
        while not self.stopping.is_set():
            try:
                await self._once()
            except Exception as exc:
                self.on_error(exc)

    async def _once(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.interval_s)
        self._wake.clear()
        forced, self._reload_requested = self._reload_requested, False
        if self.stopping.is_set():
            return
        if not forced and read_file(self.path) == self.seen:
            return
        settled = await self.read_settled()
        if settled is None or (not forced and settled == self.seen):
            return
        self.seen = settled
        self.apply(settled)
