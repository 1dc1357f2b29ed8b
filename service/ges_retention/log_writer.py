"""Where log lines go: the stream, one write per event-loop iteration rather than one per line.

A run writes a line per deletion, and each line written on its own is a `write` system call (stderr is line-buffered,
and structlog's `WriteLogger` flushes after every line): at thousands of deletions a second that syscall cost more
CPU than rendering the line. Inside a running event loop, a line is appended to a buffer and the buffer is written,
in one call, by a callback the loop runs once the current iteration's ready callbacks are done; lines of a deletion
and of its neighbours in the same iteration leave together. Outside a loop (the command line before and after its
run, other threads) a line is written at once, after whatever is buffered.

What this costs: a line is on the stream at most one loop iteration late, and a process killed with SIGKILL loses
the lines of its last iteration (the journal, not the log, is the durable record of what was deleted). The loop
runs the callback even while it shuts down (`asyncio.run` drives the loop to close async generators), and `flush()`
runs at exit and before every line the standard `logging` handler writes, so that lines keep their order. At most
`MAX_PENDING_LINES` wait: one step that logs more (a plan's lines) writes them in slices of that many.
"""

from __future__ import annotations

import asyncio
import atexit
from typing import Any, TextIO

__all__ = ["MAX_PENDING_LINES", "LineWriter", "LineWriterFactory", "flush_lines"]

# A bound on what waits: a plan of 100,000 deletions is logged in one step of the loop, and holding its lines until
# the step ends cost 50 MB. 256 lines still make one write of a few tens of KB.
MAX_PENDING_LINES = 256


class LineWriter:
    """structlog's logger for our lines (every level method writes `message` as one line)."""

    __slots__ = ("_file", "_pending", "_scheduled_on")

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self._pending: list[str] = []
        # The loop whose next iteration writes `_pending`. Remembered, not inferred from `_pending`: a loop closed
        # before it ran the callback (a line logged in its very last iteration) must not leave the next loop's lines
        # waiting for a flush that never comes.
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"LineWriter(file={self._file!r}, pending={len(self._pending)})"

    def msg(self, message: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: at once, after the lines already waiting
            self.flush()
            self._write(message + "\n")
            return
        pending = self._pending
        pending.append(message)
        if len(pending) >= MAX_PENDING_LINES:  # one step logging a whole plan: written in slices, not held
            self.flush()
            return
        if self._scheduled_on is not loop:
            self._scheduled_on = loop
            loop.call_soon(self.flush)

    log = debug = info = warn = warning = error = err = critical = fatal = failure = exception = msg

    def flush(self) -> None:
        self._scheduled_on = None
        if self._pending:
            lines, self._pending = self._pending, []
            lines.append("")
            self._write("\n".join(lines))

    def _write(self, text: str) -> None:
        self._file.write(text)
        self._file.flush()


class LineWriterFactory:
    """One writer per configured stream (a factory call per bound logger would split the buffer, and the order)."""

    __slots__ = ("writer",)

    def __init__(self, file: TextIO) -> None:
        self.writer = LineWriter(file)
        _writers.append(self.writer)
        del _writers[:-4]  # the current configuration's, and a few replaced ones whose lines may still wait

    def __call__(self, *_args: Any) -> LineWriter:
        return self.writer


_writers: list[LineWriter] = []


def flush_lines() -> None:
    """Write every buffered line now (before a foreign line, a reconfiguration, at exit)."""
    for writer in _writers:
        writer.flush()


atexit.register(flush_lines)
