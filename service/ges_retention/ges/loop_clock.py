"""`loop_clock()`: the event loop's clock (`loop.time()`), for code that reads it on every deletion.

`asyncio.get_running_loop()` makes a `getpid` system call on every call (CPython checks that the loop was not
inherited through a fork), and the clock was read several times per deletion through it. A clock made inside the
loop remembers that loop and reads its time through it while it runs (a test that replaces `loop.time` is followed);
once that loop has stopped, or for a clock made outside any loop, it finds the running loop at each call: an object
built in one `asyncio.run` and used in the next reads the next one's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["loop_clock"]


def _running_loop_time() -> float:
    return asyncio.get_running_loop().time()


def loop_clock() -> Callable[[], float]:
    """The running loop's clock, bound to that loop while it runs; else whichever loop runs when it is read."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _running_loop_time
    return lambda: loop.time() if loop.is_running() else _running_loop_time()
