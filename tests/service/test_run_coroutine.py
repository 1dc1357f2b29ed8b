"""`run_coroutine`: `asyncio.run` that hands the value back without formatting it."""

from __future__ import annotations

import asyncio

import pytest

from ges_retention.run_coroutine import run_coroutine


class Large:
    """A value whose repr is counted (a run's summary: formatting it cost seconds at a million decisions)."""

    reprs = 0

    def __repr__(self) -> str:
        Large.reprs += 1
        return "Large()"


async def produce() -> Large:
    await asyncio.sleep(0)
    return Large()


def test_the_value_comes_back_without_being_formatted() -> None:
    Large.reprs = 0
    value = run_coroutine(produce())
    assert isinstance(value, Large)
    assert Large.reprs == 0


def test_an_exception_propagates() -> None:
    async def fail() -> None:
        raise LookupError("nothing here")

    with pytest.raises(LookupError, match="nothing here"):
        run_coroutine(fail())


def test_cancelling_the_main_task_propagates_as_asyncio_run_does() -> None:
    async def cancel_self() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        run_coroutine(cancel_self())
