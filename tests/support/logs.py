"""Capturing log events in process, with the context the service binds (`run_id`, `policy`, `backup_id`, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from structlog.contextvars import merge_contextvars
from structlog.testing import LogCapture


@contextmanager
def capture_events() -> Iterator[list[dict[str, Any]]]:
    """Like `structlog.testing.capture_logs`, but every entry also holds the bound context variables."""
    capture = LogCapture()
    processors = structlog.get_config()["processors"]
    saved = processors.copy()
    # The list instance is kept: loggers bound earlier hold a reference to it.
    processors.clear()
    processors.extend([merge_contextvars, capture])
    try:
        yield capture.entries
    finally:
        processors.clear()
        processors.extend(saved)
