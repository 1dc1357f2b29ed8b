"""`loop_clock()`: the event loop's clock (`loop.time()`), for code that reads it on every deletion.

`asyncio.get_running_loop()` makes a `getpid` system call on every call (CPython checks that the loop was not
inherited through a fork), and the clock was read several times per deletion through it. A clock made inside the
loop remembers that loop and reads its time through it (a test that replaces `loop.time` is followed); one made
outside any loop finds the running loop at each call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["loop_clock"]


def _running_loop_time() -> float:
    return asyncio.get_running_loop().time()


def loop_clock() -> Callable[[], float]:
    """The running loop's clock, bound to that loop; outside a loop, whichever loop runs when it is read."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _running_loop_time
    return lambda: loop.time()
