"""structlog configuration: JSON lines (or console lines) on stderr, with secrets redacted.

Log events always go to stderr; stdout carries only command results. Every line starts with `timestamp` (ISO 8601
UTC), `level` and `event`, and carries the run's context (`run_id`, `policy`, `project_id`, ...) bound through
contextvars.

The standard `logging` of every library (APScheduler, aiohttp, asyncio) is rendered by the same processors through a
root handler, so that in `json` format every stderr line is JSON: a library's message becomes the `event`, its logger
the `logger` key. Libraries speak at `warning` and above unless the level is `debug` (aiohttp would otherwise log every
scrape of `/metrics`).

Redaction is a processor, a pure function of the event dict: it blanks values under keys that name a credential, the
secret part of signature headers, and any occurrence of a secret this process registered (`register_secrets`), so a
secret that slips into an error message is still never written.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "REDACTED",
    "configure_logging",
    "error_line",
    "forget_secrets",
    "redact_event",
    "register_secrets",
    "reset_logging",
    "scrub",
]

LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
_FIRST_KEYS = ("timestamp", "level", "event")

REDACTED = "[redacted]"

_SECRET_KEY = re.compile(
    r"(^|[_-])(sk|token|secret|password|passwd|authorization|credentials?|security[_-]?token|x[_-]auth[_-]token|"
    r"x[_-]subject[_-]token|api[_-]?key)$",
    re.IGNORECASE,
)
# Keys that end like a secret name but hold no secret.
_NOT_SECRET_KEYS = frozenset({"error_code", "request_id", "run_id", "backup_id", "graph_id", "project_id"})
_SIGNATURE = re.compile(r"(Signature=)[0-9a-fA-F]+")
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)

_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Secrets known to this process; any log value containing one has it blanked."""
    _secrets.update(v for v in values if v and len(v) >= 4)


def forget_secrets(values: Iterable[str]) -> None:
    """Secrets that no longer exist (replaced temporary credentials): a daemon must not collect them forever."""
    _secrets.difference_update(values)


def scrub(value: str) -> str:
    """`value` with every registered secret and signature/bearer value blanked."""
    for secret in _secrets:
        if secret in value:
            value = value.replace(secret, REDACTED)
    if "Signature=" in value:
        value = _SIGNATURE.sub(r"\g<1>" + REDACTED, value)
    if "earer" in value:
        value = _BEARER.sub(r"\g<1>" + REDACTED, value)
    return value


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if depth > 5:
        return value
    if isinstance(value, Mapping):
        return {k: (REDACTED if _is_secret_key(k) else _clean(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_clean(v, depth + 1) for v in value)
    return value


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _is_secret_name(key)


@functools.lru_cache(maxsize=1024)
def _is_secret_name(key: str) -> bool:
    # Events use a small, fixed set of keys: the regex runs once per key, not once per log line.
    return key not in _NOT_SECRET_KEYS and bool(_SECRET_KEY.search(key))


def redact_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: blank credential-looking keys and registered secrets anywhere in the event."""
    for key, value in list(event_dict.items()):
        if _is_secret_key(key) and value is not None:
            event_dict[key] = REDACTED
        elif isinstance(value, str | Mapping | list | tuple):
            event_dict[key] = _clean(value)
    return event_dict


def _exception_to_string(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    # Tracebacks are rendered before redaction so that a secret inside one is blanked too.
    return structlog.processors.format_exc_info(_logger, _method, event_dict)


def _first_keys_first(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """`timestamp`, `level`, `event` lead every line, whatever order the event was built in."""
    ordered = {key: event_dict.pop(key) for key in _FIRST_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _exception_to_string,
        redact_event,
    ]


def _renderer(fmt: str) -> Processor:
    if fmt == "console":
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer(sort_keys=False, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on the stream given, or on whatever `sys.stderr` is when a record is written."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self._fixed or sys.stderr
        super().emit(record)


_handler: logging.Handler | None = None
_root_level_before: int | None = None


def _route_standard_logging(fmt: str, level: int, stream: TextIO | None) -> None:
    global _handler, _root_level_before
    reset_logging()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *_shared_processors()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _first_keys_first,
            _renderer(fmt),
        ],
    )
    handler = _StderrHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    _root_level_before = root.level
    root.addHandler(handler)
    root.setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))
    _handler = handler


def reset_logging() -> None:
    """Undo what `configure_logging` did to the standard `logging` (tests; a second configuration)."""
    global _handler, _root_level_before
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler = None
    if _root_level_before is not None:
        root.setLevel(_root_level_before)
        _root_level_before = None


def configure_logging(fmt: str = "json", level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog and the standard `logging`: every line goes to `stream` (stderr by default)."""
    out = stream or sys.stderr
    threshold = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*_shared_processors(), _first_keys_first, _renderer(fmt)],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        # Not cached: tests swap processors with structlog.testing.capture_logs.
        cache_logger_on_first_use=False,
    )
    _route_standard_logging(fmt, threshold, stream)


def error_line(message: str, *, fmt: str, exit_code: int, traceback_text: str | None = None) -> str:
    """The command line's final error line: a JSON event (`command_failed`) in `json` format, else plain words.

    Written without structlog, so that it is right even when the error came before logging could be configured.
    """
    message = scrub(message)
    if fmt == "console":
        return f"ges-retention: error: {message}"
    timestamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    event: dict[str, Any] = {
        "timestamp": timestamp,
        "level": "error",
        "event": "command_failed",
        "error": message,
        "exit_code": exit_code,
    }
    if traceback_text is not None:
        event["exception"] = scrub(traceback_text)
    return json.dumps(event, ensure_ascii=False, default=str)
