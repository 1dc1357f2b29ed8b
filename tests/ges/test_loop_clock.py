"""`loop_clock`: the loop's clock without finding the running loop (a `getpid` system call) on every read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ges_retention.ges.loop_clock import loop_clock


async def test_a_clock_made_in_a_loop_reads_that_loop_without_looking_it_up(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    clock = loop_clock()
    monkeypatch.setattr(loop, "time", lambda: 42.5)  # a test's clock on the loop is followed

    def no_lookup() -> asyncio.AbstractEventLoop:
        raise AssertionError("the running loop was looked up")

    monkeypatch.setattr(asyncio, "get_running_loop", no_lookup)
    assert clock() == 42.5


def test_a_clock_made_outside_a_loop_reads_whichever_loop_runs() -> None:
    clock = loop_clock()

    async def read(lead_s: float) -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        real = loop.time
        loop.time = lambda: real() + lead_s  # type: ignore[method-assign]
        return clock(), real()

    first, real_first = asyncio.run(read(1000.0))
    second, real_second = asyncio.run(read(5000.0))
    assert first - real_first >= 999.0 and second - real_second >= 4999.0
    with pytest.raises(RuntimeError):
        clock()  # no loop runs


def test_a_clock_made_in_a_loop_that_has_ended_reads_the_loop_running_now() -> None:
    async def make() -> Callable[[], float]:
        return loop_clock()

    clock = asyncio.run(make())

    async def read() -> float:
        asyncio.get_running_loop().time = lambda: 1e9  # type: ignore[method-assign]
        return clock()

    assert asyncio.run(read()) == 1e9
