"""Log lines leave in one write per event-loop iteration (issue 17), in the order logged, and none is left behind:
outside a loop a line is written at once; a standard `logging` line, a reconfiguration and the error line of the
command line write what waits first."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import structlog

from ges_retention.log_writer import MAX_PENDING_LINES, LineWriter, flush_lines
from ges_retention.logs import configure_logging, reset_logging


class CountingStream(io.StringIO):
    """A stream that remembers each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def events_of(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["event"] for line in stream.getvalue().splitlines()]


def test_outside_a_loop_each_line_is_written_at_once() -> None:
    stream = CountingStream()
    configure_logging("json", "info", stream=stream)
    log = structlog.get_logger()
    log.info("first")
    assert events_of(stream) == ["first"]
    log.info("second")
    assert events_of(stream) == ["first", "second"]
    assert len(stream.writes) == 2


async def test_inside_a_loop_the_lines_of_one_iteration_leave_in_one_write_in_order() -> None:
    stream = CountingStream()
    configure_logging("json", "info", stream=stream)
    log = structlog.get_logger()
    for n in range(5):
        log.info("backup_deleted", n=n)
    assert stream.getvalue() == ""  # not yet: the loop writes them once this iteration's callbacks are done
    await asyncio.sleep(0)
    assert len(stream.writes) == 1
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == [0, 1, 2, 3, 4]
    log.info("next")
    await asyncio.sleep(0)
    assert events_of(stream)[-1] == "next"
    assert len(stream.writes) == 2


async def test_lines_logged_by_concurrent_tasks_keep_the_order_they_were_logged_in() -> None:
    stream = CountingStream()
    configure_logging("json", "info", stream=stream)
    log = structlog.get_logger()
    order: list[str] = []

    async def task(name: str) -> None:
        for step in range(3):
            order.append(f"{name}{step}")
            log.info(f"{name}{step}")
            await asyncio.sleep(0)

    await asyncio.gather(task("a"), task("b"))
    await asyncio.sleep(0)
    assert events_of(stream) == order


async def test_a_standard_logging_line_follows_the_lines_waiting_before_it() -> None:
    stream = CountingStream()
    configure_logging("json", "info", stream=stream)
    structlog.get_logger().info("ours")
    logging.getLogger("some.library").warning("theirs")
    assert events_of(stream) == ["ours", "theirs"]


async def test_reconfiguring_or_flushing_writes_what_waits() -> None:
    first = CountingStream()
    configure_logging("json", "info", stream=first)
    structlog.get_logger().info("before")
    reset_logging()
    assert events_of(first) == ["before"]
    second = CountingStream()
    configure_logging("json", "info", stream=second)
    structlog.get_logger().info("waiting")
    flush_lines()
    assert events_of(second) == ["waiting"]


def test_a_line_written_in_another_thread_while_a_loop_runs_is_written_at_once() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)
    written: list[str] = []

    async def main() -> None:
        writer.msg("loop line")
        await asyncio.to_thread(writer.msg, "thread line")
        written.append(stream.getvalue())
        await asyncio.sleep(0)

    asyncio.run(main())
    # The thread has no loop: its line goes at once, after the loop's line that was waiting.
    assert written == ["loop line\nthread line\n"]


def test_lines_waiting_when_the_loop_ends_are_written_as_asyncio_run_shuts_down() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)

    async def main() -> None:
        writer.msg("last line of the run")

    asyncio.run(main())
    assert stream.getvalue() == "last line of the run\n"


def test_every_level_method_writes_a_line() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)
    methods: list[Any] = [writer.debug, writer.info, writer.warning, writer.error, writer.critical, writer.exception]
    for n, method in enumerate(methods):
        method(str(n))
    assert stream.getvalue().splitlines() == [str(n) for n in range(len(methods))]
    assert "pending=0" in repr(writer)


def test_a_loop_closed_before_its_flush_ran_does_not_leave_the_next_loops_lines_waiting() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)
    lost = asyncio.new_event_loop()

    async def log_in_the_last_iteration() -> None:
        # Runs in the iteration that also runs the loop's stop: the flush it schedules comes after the stop.
        asyncio.get_running_loop().call_soon(writer.msg, "logged as the loop stops")

    lost.run_until_complete(log_in_the_last_iteration())
    lost.stop()
    lost.close()  # the flush it scheduled can no longer run
    assert stream.getvalue() == ""
    written: list[str] = []

    async def next_run() -> None:
        writer.msg("next run")
        await asyncio.sleep(0)
        written.append(stream.getvalue())

    asyncio.run(next_run())
    assert written == ["logged as the loop stops\nnext run\n"]


async def test_one_step_logging_many_lines_writes_them_in_bounded_slices() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)
    lines = 2 * MAX_PENDING_LINES + 3
    for n in range(lines):
        writer.msg(str(n))
    assert len(stream.writes) == 2  # two full slices already written, without waiting for the step to end
    assert all(w.count("\n") == MAX_PENDING_LINES for w in stream.writes)
    await asyncio.sleep(0)
    assert stream.getvalue().splitlines() == [str(n) for n in range(lines)]
