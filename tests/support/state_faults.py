"""`FailingWrites`: a store whose Nth write (and every later one) fails as a full disk would, for the tests of what a
run does when the journal cannot be written (no further DELETE, `not_started`, `state_unavailable`, exit 1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ges_retention.state import StateUnavailable, Store

WRITES = frozenset(
    {
        "start_run",
        "end_run",
        "mark_pending",
        "cancel_pending",
        "write_intents",
        "record_outcomes",
        "resolve_deleting",
        "put_hold",
        "release_hold",
        "put_baseline",
        "put_ack",
        "put_change_digest",
        "put_rate",
        "prune",
    }
)


class FailingWrites:
    """Wraps a real store; every other attribute passes through unchanged."""

    def __init__(self, store: Store, *, fail_on: int, only: frozenset[str] = WRITES) -> None:
        self._store = store
        self.fail_on = fail_on
        self.only = only
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name not in self.only:
            return attr

        async def write(*args: Any, **kwargs: Any) -> Any:
            self.writes.append(name)
            if len(self.writes) >= self.fail_on:
                raise StateUnavailable(
                    f"the state at {self._store.info.location} failed during {name}: database or disk is full",
                    location=self._store.info.location,
                    operation=name,
                )
            method: Callable[..., Awaitable[Any]] = attr
            return await method(*args, **kwargs)

        return write
