"""structlog configuration: JSON lines (or console lines) on stderr, with secrets redacted.

Log events always go to stderr; stdout carries only command results. Every line starts with `timestamp` (ISO 8601
UTC), `level` and `event`, and carries the run's context (`run_id`, `policy`, `project_id`, ...) bound with
`log_context` (`log_context.py`).

The standard `logging` of every library (APScheduler, aiohttp, asyncio) is rendered by the same processors through a
root handler, so that in `json` format every stderr line is JSON: a library's message becomes the `event`, its logger
the `logger` key. Libraries speak at `warning` and above unless the level is `debug` (aiohttp would otherwise log every
scrape of `/metrics`).

Redaction is a processor, a pure function of the event dict: it blanks values under keys that name a credential, the
secret part of signature headers, and any occurrence of a secret this process registered (`register_secrets`), so a
secret that slips into an error message is still never written.

A line is written for every deletion, so the pipeline is kept cheap (issue 17): whether a key names a secret is
decided once per key and remembered; numbers, booleans and None are passed by without a look; the context is one
variable, bound once per deletion (`log_context.py`); the JSON encoder is built once; inside an event loop, the lines
of one loop iteration leave in one write (`log_writer.py`).
"""

from __future__ import annotations

import json
import json.encoder as json_encoder
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from ges_retention.log_context import log_context, merge_context
from ges_retention.log_writer import LineWriterFactory, flush_lines

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "REDACTED",
    "configure_logging",
    "error_line",
    "flush_lines",
    "forget_secrets",
    "log_context",
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
    if not _may_need_scrubbing(value):
        return value
    for secret in _secrets:
        value = value.replace(secret, REDACTED)
    value = _SIGNATURE.sub(r"\g<1>" + REDACTED, value)
    return _BEARER.sub(r"\g<1>" + REDACTED, value)


def _may_need_scrubbing(text: str) -> bool:
    """Whether `scrub` could change `text` or any part of it (a false alarm costs a scrub; a miss cannot happen):
    the one place that says what scrubbing looks for. `Bearer` in any case: the pattern ignores case."""
    for secret in _secrets:
        if secret in text:
            return True
    return "Signature=" in text or "earer" in text.lower()


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if value is None or isinstance(value, int | float):  # (bool is an int)
        return value
    if depth > 5 or isinstance(value, bytes | bytearray):
        # Deeper than any event of ours, or bytes: the value's text (what the JSON renderer writes), scrubbed.
        return scrub(str(value))
    if isinstance(value, Mapping):
        return {k: (REDACTED if _is_secret_key(k) else _clean(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return _rebuilt(value, [_clean(v, depth + 1) for v in value])
    # Any other object is written as its text (`default=str`): scrubbed here, an exception's message included.
    return scrub(str(value))


def _rebuilt(value: Any, items: list[Any]) -> Any:
    """A collection like `value` holding `items`; its items as a list when its type cannot be built from them."""
    kind = type(value)
    if kind in (list, tuple, set, frozenset):
        return kind(items)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple takes its fields one by one
        return kind(*items)
    try:
        return kind(items)
    except Exception:  # a subclass whose constructor wants something else
        return items


def _is_secret_key(key: object) -> bool:
    if type(key) is not str:
        return isinstance(key, str) and _is_secret_name(key)
    decided = _KEY_IS_SECRET.get(key)
    return _is_secret_name(key) if decided is None else decided


# Whether a key names a secret, decided once per key: events use a small, fixed set of keys (the bound is for the
# keys of foreign log records, which can be anything).
_KEY_IS_SECRET: dict[str, bool] = {}
_KEYS_REMEMBERED = 4096


def _is_secret_name(key: str) -> bool:
    decided = key not in _NOT_SECRET_KEYS and bool(_SECRET_KEY.search(key))
    if len(_KEY_IS_SECRET) >= _KEYS_REMEMBERED:
        _KEY_IS_SECRET.clear()
    _KEY_IS_SECRET[key] = decided
    return decided


# Values that cannot hold a secret, and strings (looked at together): the rest is looked into (bool is an int).
_SIMPLE_TYPES = frozenset({str, int, float, bool, type(None)})


def redact_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: blank credential-looking keys and registered secrets anywhere in the event."""
    # Values are replaced in place (no key is added or removed while the dict is walked).
    for key in _secret_keys_of(tuple(event_dict)):
        if event_dict[key] is not None:
            event_dict[key] = REDACTED
    texts = [value for value in event_dict.values() if type(value) is str]
    words: list[str] = []  # keys of lists of strings (`reasons`): looked at with the texts, copied if need be
    for key in [key for key, value in event_dict.items() if type(value) not in _SIMPLE_TYPES]:
        value = event_dict[key]
        if (type(value) is list or type(value) is tuple) and all(type(item) is str for item in value):
            texts.extend(value)
            words.append(key)
        else:
            event_dict[key] = _clean(value)
    # The line's texts are looked at once, together: a line almost never holds a secret, and one search of the joined
    # text costs less than a scrub per value. Any value holding a secret makes the joined text hold it: nothing is
    # missed (the separator only keeps two values from passing for a secret together, a false alarm at worst).
    if texts and _may_need_scrubbing("\x00".join(texts)):
        for key, value in event_dict.items():
            if type(value) is str:
                event_dict[key] = scrub(value)
        for key in words:
            event_dict[key] = _clean(event_dict[key])
    return event_dict


# The keys of an event, in order, and which of them name a secret: a call site logs the same keys every time.
_SECRET_KEYS_OF_SHAPE: dict[tuple[str, ...], tuple[str, ...]] = {}
_SHAPES_REMEMBERED = 1024


def _secret_keys_of(keys: tuple[str, ...]) -> tuple[str, ...]:
    found = _SECRET_KEYS_OF_SHAPE.get(keys)
    if found is None:
        found = tuple(key for key in keys if _is_secret_key(key))
        if len(_SECRET_KEYS_OF_SHAPE) >= _SHAPES_REMEMBERED:
            _SECRET_KEYS_OF_SHAPE.clear()
        _SECRET_KEYS_OF_SHAPE[keys] = found
    return found


def _add_timestamp(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    event_dict["timestamp"] = _now_iso()
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
        merge_context,
        structlog.processors.add_log_level,
        _add_timestamp,
        _exception_to_string,
        redact_event,
    ]


# json.dumps(obj, default=str) builds an encoder per call: one, built once, writes the same text.
_ENCODER = json.JSONEncoder(default=str)
# Its C part, built once too (`JSONEncoder.encode` makes one per call). Without circular-reference markers: a log
# event holds no cycle (one would end in RecursionError rather than ValueError).
_MAKE_ENCODER = getattr(json_encoder, "c_make_encoder", None)
_C_ENCODE = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(None, str, json_encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)
)


def _encode(obj: Any) -> str:
    if _C_ENCODE is None or type(obj) is not dict:
        return _ENCODER.encode(obj)
    return "".join(_C_ENCODE(obj, 0))


def _dumps(obj: Any, **_kwargs: Any) -> str:
    return _encode(obj)


_LEVEL_OF_METHOD = {"warn": "warning", "exception": "error"}  # as structlog's add_log_level names them
_now_cache: tuple[int, str] = (-1, "")
_time_ns = time.time_ns  # a seam for the tests


def _now_iso() -> str:
    """The time now, ISO 8601 UTC with `Z`, as `TimeStamper(fmt="iso", utc=True)` writes it; the date and time of day
    are formatted once a second."""
    global _now_cache
    second, nanos = divmod(_time_ns(), 1_000_000_000)
    cached_second, text = _now_cache
    if second != cached_second:
        text = datetime.fromtimestamp(second, UTC).replace(tzinfo=None).isoformat()
        _now_cache = (second, text)
    micros = nanos // 1000
    return f"{text}.{micros:06d}Z" if micros else f"{text}Z"


def _json_line(logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
    """The JSON format's whole chain in one step (a line per deletion: each processor call counts): what
    `_shared_processors`, `_first_keys_first` and the JSON renderer do one after the other, in the same order."""
    event_dict = merge_context(logger, method, event_dict)
    if "exc_info" in event_dict:
        event_dict = _exception_to_string(logger, method, event_dict)
    # `timestamp` and `level` are the pipeline's (an event's own are replaced), and lead the line with `event`.
    event_dict.pop("timestamp", None)
    event_dict.pop("level", None)
    line: EventDict = {"timestamp": _now_iso(), "level": _LEVEL_OF_METHOD.get(method, method)}
    if "event" in event_dict:
        line["event"] = event_dict.pop("event")
    line.update(event_dict)
    return _encode(redact_event(logger, method, line))


def _renderer(fmt: str) -> Processor:
    if fmt == "console":
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer(serializer=_dumps)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on the stream given, or on whatever `sys.stderr` is when a record is written."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        flush_lines()  # structlog's lines of this loop iteration first: the order stays the order logged
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
    flush_lines()
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
    chain = [_json_line] if fmt == "json" else [*_shared_processors(), _first_keys_first, _renderer(fmt)]
    structlog.configure(
        processors=chain,
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=LineWriterFactory(out),
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
