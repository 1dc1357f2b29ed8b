"""The plumbing under `SqlStore`: backend hooks, the clock, the read-only guard and waiting for a run lock."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import TypeVar

from ges_retention.state.errors import RunLockTimeout, StateReadOnly
from ges_retention.state.leases import PgLeases
from ges_retention.state.locks import POLL_S, DaemonLock, RunLock, default_holder
from ges_retention.state.records import StoreInfo
from ges_retention.state.sql import Script, Tx

__all__ = ["Clock", "Monotonic", "Sleep", "StoreBase", "utc_now"]

T = TypeVar("T")
Clock = Callable[[], datetime]
Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


class StoreBase(ABC):
    """Backend hooks and shared plumbing; the journal operations are in `GateRecords` and `SqlStore`."""

    def __init__(
        self,
        info: StoreInfo,
        *,
        read_only: bool,
        clock: Clock = utc_now,
        monotonic: Monotonic | None = None,
        sleep: Sleep = asyncio.sleep,
        holder: str | None = None,
    ) -> None:
        self.info = info
        self.read_only = read_only
        self.clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self.holder = holder or default_holder()
        self.leases: PgLeases | None = None

    # ---------------------------------------------------------------------------------------------- backend hooks

    @abstractmethod
    def _write(self, operation: str) -> AbstractAsyncContextManager[Tx]: ...

    @abstractmethod
    def _read(self, operation: str) -> AbstractAsyncContextManager[Tx]: ...

    @abstractmethod
    async def try_run_lock(self, policy: str) -> RunLock | None:
        """The policy's run lock if free now, else None (see `run_lock_holder`)."""

    @abstractmethod
    async def run_lock_holder(self, policy: str) -> str | None:
        """Who holds the policy's run lock (host:pid), or None when free or unknown."""

    @abstractmethod
    async def acquire_daemon_lock(self) -> DaemonLock:
        """The one-daemon-per-state lock, or `DaemonLockHeld` naming the holder."""

    @abstractmethod
    async def close(self) -> None: ...

    def writing(self, operation: str) -> AbstractAsyncContextManager[Tx]:
        if self.read_only:
            raise StateReadOnly(
                f"the state at {self.info.location} was opened read-only; {operation} writes",
                location=self.info.location,
                operation=operation,
            )
        return self._write(operation)

    def reading(self, operation: str) -> AbstractAsyncContextManager[Tx]:
        return self._read(operation)

    async def _run_script(self, operation: str, script: Script[T], *, write: bool) -> T:
        """One script as one transaction. A backend may run it faster (SQLite: in one hop to its thread)."""
        context = self.writing(operation) if write else self._read(operation)
        async with context as tx:
            return await tx.run(script)

    def _now(self, now: datetime | None) -> datetime:
        return (self.clock() if now is None else now).astimezone(UTC)

    async def __aenter__(self) -> StoreBase:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # ---------------------------------------------------------------------------------------------- run lock

    async def acquire_run_lock(self, policy: str, *, timeout_s: float = 0.0) -> RunLock:
        """The policy's run lock, waiting up to `timeout_s` (through the injected sleep), or `RunLockTimeout`
        naming the holder."""
        monotonic = self._monotonic or asyncio.get_running_loop().time
        deadline = monotonic() + max(0.0, timeout_s)
        while True:
            lock = await self.try_run_lock(policy)
            if lock is not None:
                return lock
            remaining = deadline - monotonic()
            if remaining <= 0:
                holder = await self.run_lock_holder(policy)
                raise RunLockTimeout(
                    f"policy {policy!r} is being run by {holder or 'another process'} "
                    f"(waited {timeout_s:g} s for its run lock)",
                    location=self.info.location,
                    name=policy,
                    holder=holder,
                )
            await self._sleep(min(POLL_S, remaining))
