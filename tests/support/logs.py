"""Capturing log events in process, with the context the service binds (`run_id`, `policy`, `backup_id`, ...),
and waiting for one to arrive."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

from ges_retention.log_context import merge_context

__all__ = ["EventLog", "capture_events"]


class EventLog(list[dict[str, Any]]):
    """The captured entries; `wait` returns once an entry named so has arrived."""

    def __init__(self) -> None:
        super().__init__()
        self._arrived = asyncio.Event()

    def __call__(self, _logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        event_dict["log_level"] = method
        self.append(dict(event_dict))
        self._arrived.set()
        raise structlog.DropEvent

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self if e.get("event") == name]

    async def wait(self, name: str, count: int = 1, timeout_s: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while len(self.named(name)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.named(name)[count - 1]


@contextmanager
def capture_events() -> Iterator[EventLog]:
    """Like `structlog.testing.capture_logs`, but every entry also holds the bound context variables, and the
    list can be awaited."""
    log = EventLog()
    processors = structlog.get_config()["processors"]
    saved = processors.copy()
    # The list instance is kept: loggers bound earlier hold a reference to it.
    processors.clear()
    processors.extend([merge_context, log])
    try:
        yield log
    finally:
        processors.clear()
        processors.extend(saved)
