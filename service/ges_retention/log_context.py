"""The log context: the keys a line carries of where it was logged (`run_id`, `policy`, `project_id`, `backup_id`,
...), bound with `log_context` around the code that logs.

Every key bound lives in one context variable, as one mapping. A deletion binds five keys and writes one line:
binding is one `set` and one `reset`, and the line reads one variable (issue 17: structlog's `bound_contextvars`
keeps a variable per key, and its `merge_contextvars` walks each of them on every line).

structlog's own `bind_contextvars` still works (a library or a test may use it): `merge_context` adds its keys after
ours, and the keys of `log_context` win a clash, being the service's.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from types import MappingProxyType, TracebackType
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

__all__ = ["bound_context", "clear_context", "log_context", "merge_context"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
# Never mutated once set: a binding makes a new mapping, so a task that copied the context keeps what it saw.
_BOUND: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("ges_retention_log_context", default=_EMPTY)

_PREFIX = structlog.contextvars.STRUCTLOG_KEY_PREFIX
_PREFIX_LENGTH = len(_PREFIX)


class log_context:  # used like a function: `with log_context(backup_id=...)`
    """Bind keys to every line logged inside the block (in this task and in tasks it starts); on exit the keys bound
    before are back. An inner binding of a key hides the outer one. One object, one block: it is not re-entrant."""

    __slots__ = ("_token", "_values")

    def __init__(self, **values: Any) -> None:
        self._values = values
        self._token: contextvars.Token[Mapping[str, Any]] | None = None

    def __enter__(self) -> None:
        outer = _BOUND.get()
        # The keyword dict is this object's own: no copy when nothing is bound around it.
        self._token = _BOUND.set({**outer, **self._values} if outer else self._values)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _BOUND.reset(self._token)
            self._token = None


def _structlog_context_vars() -> dict[str, contextvars.ContextVar[Any]] | None:
    registry = getattr(structlog.contextvars, "_CONTEXT_VARS", None)
    return registry if isinstance(registry, dict) else None


def merge_context(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the bound keys into the event (the event's own keys win), then structlog's contextvars
    (read from its own registry of variables: `merge_contextvars` walks every variable of the context, asyncio's and
    aiohttp's too; it is the fallback should that registry move)."""
    for key, value in _BOUND.get().items():
        event_dict.setdefault(key, value)
    registry = _structlog_context_vars()
    if registry is None:
        return structlog.contextvars.merge_contextvars(_logger, _method, event_dict)
    if registry:
        for name, var in tuple(registry.items()):
            value = var.get(Ellipsis)
            if value is not Ellipsis:
                event_dict.setdefault(name[_PREFIX_LENGTH:], value)
    return event_dict


def bound_context() -> dict[str, Any]:
    """What a line logged here would carry of the context."""
    return dict(merge_context(None, "info", {}))


def clear_context() -> None:
    """Nothing bound (in this context), structlog's variables included: tests start from here."""
    _BOUND.set(_EMPTY)
    structlog.contextvars.clear_contextvars()
