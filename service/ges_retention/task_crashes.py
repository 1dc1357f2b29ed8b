"""The last word on a daemon's background task: an exception that escaped it is logged, never lost.

Every long-lived task of the daemon (the file watcher, the state's retry loop, the lease loop, each run) catches what
it expects and goes on; this done-callback is the net under them, so that a bug that still ends one is an error line
(`run_crashed`, with the task's name) at once, not a "Task exception was never retrieved" at garbage collection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

__all__ = ["log_task_crash"]

log = structlog.get_logger("ges_retention.daemon")


def log_task_crash(task: asyncio.Task[Any]) -> None:
    """`task.add_done_callback(log_task_crash)`."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("run_crashed", error=repr(exc), task=task.get_name(), exc_info=(type(exc), exc, exc.__traceback__))
