"""Learned rates kept in the journal: the `RateMemory` of the adaptive pacers (`GES_RETENTION_RATE_LIMIT=auto`).

The pacer asks once per (endpoint, project) for the rate an earlier run learned, and tells each new learned rate as it
happens, inline with a request on the event loop: the write is a task of its own, so a slow state never delays a
DELETE. A failed read or write is a warning (`rate_memory_failed`), never a failed run: without a learned rate the
pacer only starts slower. `close()` waits for the writes still going.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog

__all__ = ["RateStore", "StateRateMemory"]

log = structlog.get_logger("ges_retention.rate")


class RateStore(Protocol):
    """The part of `state.store.Store` this needs."""

    async def get_rate(self, endpoint: str, project_id: str) -> float | None: ...

    async def put_rate(self, endpoint: str, project_id: str, rate_per_s: float) -> None: ...


class StateRateMemory:
    __slots__ = ("_lock", "_store", "_writes")

    def __init__(self, store: RateStore) -> None:
        self._store = store
        self._writes: set[asyncio.Task[None]] = set()
        # One write at a time, in the order learned (a FIFO lock): an older rate never lands after a newer one.
        self._lock = asyncio.Lock()

    async def learned_rate(self, endpoint: str, project_id: str) -> float | None:
        try:
            return await self._store.get_rate(endpoint, project_id)
        except Exception as exc:
            log.warning("rate_memory_failed", endpoint=endpoint, project_id=project_id, error=str(exc))
            return None

    def on_learned(self, endpoint: str, project_id: str, rate_per_s: float) -> None:
        rate = round(rate_per_s, 3)
        log.info("rate_learned", endpoint=endpoint, project_id=project_id, rate_per_s=rate)
        task = asyncio.get_running_loop().create_task(self._write(endpoint, project_id, rate))
        # Kept until done: the loop holds only a weak reference to a task.
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, endpoint: str, project_id: str, rate_per_s: float) -> None:
        try:
            async with self._lock:
                await self._store.put_rate(endpoint, project_id, rate_per_s)
        except Exception as exc:
            log.warning("rate_memory_failed", endpoint=endpoint, project_id=project_id, error=str(exc))

    async def close(self) -> None:
        """Wait for the writes under way (before the store closes)."""
        while self._writes:
            await asyncio.gather(*tuple(self._writes))
