"""Waiting on a condition another process or task brings about, bounded.

Prefer an event (`DaemonProcess.wait_event`, `capture_events().wait`); `wait_for` is for conditions with nothing to
wait on, such as the emulator's request counters moved by a subprocess.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["wait_for"]


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Until `predicate()` holds, checked every 10 ms on the loop; `TimeoutError` after `timeout_s`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not predicate():
        if loop.time() > end:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)
