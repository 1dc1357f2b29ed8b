"""Lock handles and the waiting policy shared by both backends.

A `RunLock` is held by one run of one policy; `DaemonLock` by one daemon per SQLite file. Both are released by
`release()` (idempotent) or by leaving `async with`; the backend's `release` hook does the real work (SQLite: drop the
row, unlock and close the flock file; PostgreSQL: unlock the advisory lock and close its connection).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ges_retention.state.leases import Lease

__all__ = ["DaemonLock", "LockHandle", "RunLock", "default_holder"]

POLL_S = 0.25
"""How often a waiting run re-tries a busy run lock."""


def default_holder() -> str:
    """`host:pid`: how another process names this one in `run_skipped` and lock errors."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LockHandle:
    __slots__ = ("_release", "holder", "name", "released")

    def __init__(self, name: str, holder: str, release: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self.holder = holder
        self.released = False
        self._release = release

    @property
    def held(self) -> bool:
        return not self.released

    async def release(self) -> None:
        if self.released:
            return
        self.released = True
        await self._release()

    async def __aenter__(self) -> LockHandle:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, holder={self.holder!r}, released={self.released})"


class RunLock(LockHandle):
    """A policy's run lock. `policy` is the policy name; `owner` the store that granted it.

    On PostgreSQL the run lock is the policy's lease (`state/leases.py`): `lease` is the fencing token that intent
    batches pass to `write_intents`, and `valid()` the local monotonic check asked before each DELETE. On SQLite
    `lease` is None and `valid()` is true while the lock is held.
    """

    __slots__ = ("_valid", "lease", "owner", "policy")

    def __init__(
        self,
        policy: str,
        holder: str,
        release: Callable[[], Awaitable[None]],
        owner: object,
        *,
        lease: Lease | None = None,
        valid: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(f"run:{policy}", holder, release)
        self.policy = policy
        self.owner = owner
        self.lease = lease
        self._valid = valid

    def valid(self) -> bool:
        """May a DELETE of this policy be sent now? (Held, and on PostgreSQL the lease valid on the local clock.)"""
        return self.held and (self._valid is None or self._valid())


class DaemonLock(LockHandle):
    __slots__ = ()
