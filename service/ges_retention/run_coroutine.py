"""`run_coroutine`: `asyncio.run` for a command whose coroutine returns a large value (a run's summary, a plan).

On Python 3.11, `asyncio.run` ends by asking `signal.getsignal` whether its SIGINT handler is still installed, and
`getsignal` formats that handler (a partial of the main task) into an exception message it then drops: the task's
repr holds the repr of its result. The summary of a run of 20,000 deletions took 0.1 s to format (twice, 5 MB of
text nobody read), a plan of a million backups seconds. Here the main task returns nothing: the value is handed over
beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_coroutine"]

T = TypeVar("T")


def run_coroutine(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` in a fresh event loop (as `asyncio.run` does) and return its value; its exceptions propagate."""
    box: list[T] = []

    async def runner() -> None:
        box.append(await main)

    asyncio.run(runner())
    return box[0]
