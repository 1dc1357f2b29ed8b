"""The little that differs between the backends, behind one transaction interface.

The journal's SQL is written once (`?` placeholders, `ON CONFLICT` upserts, partial indexes: all valid on SQLite
>= 3.35 and PostgreSQL >= 12) and runs on a `Tx`. Timestamps go in as aware `datetime`s; SQLite stores them as ISO 8601
UTC text with fixed width (so text order is time order), PostgreSQL as `timestamptz`; `as_time` reads either back.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

__all__ = [
    "DbNow",
    "Execute",
    "ExecuteMany",
    "Fetch",
    "LockHolds",
    "Request",
    "Script",
    "Tx",
    "as_time",
    "chunks",
    "drive",
    "from_json",
    "placeholders",
    "time_text",
    "to_json",
]

IN_CHUNK = 500
"""Ids per `IN (...)` list: far below both backends' parameter limits."""


@dataclass(frozen=True, slots=True)
class Fetch:
    """Rows of a query (a list of tuples)."""

    sql: str
    params: Sequence[object] = ()


@dataclass(frozen=True, slots=True)
class Execute:
    """One statement; the number of rows it changed."""

    sql: str
    params: Sequence[object] = ()


@dataclass(frozen=True, slots=True)
class ExecuteMany:
    sql: str
    rows: Sequence[Sequence[object]]


@dataclass(frozen=True, slots=True)
class DbNow:
    """The database clock, or `fallback` where the database has none of its own (SQLite)."""

    fallback: datetime


@dataclass(frozen=True, slots=True)
class LockHolds:
    exclusive: bool


Request = Fetch | Execute | ExecuteMany | DbNow | LockHolds
Script = Generator[Request, Any, T]
"""A transaction's logic as a generator of requests: `rows = yield Fetch(...)`; its return value is the result."""


async def drive(tx: Tx, script: Script[T]) -> T:
    """Run a script on an async transaction, one request at a time."""
    try:
        request = next(script)
        while True:
            result: Any = None
            if isinstance(request, Fetch):
                result = await tx.fetch(request.sql, request.params)
            elif isinstance(request, Execute):
                result = await tx.execute(request.sql, request.params)
            elif isinstance(request, ExecuteMany):
                await tx.executemany(request.sql, request.rows)
            elif isinstance(request, DbNow):
                result = await tx.db_now(request.fallback)
            else:
                await tx.lock_holds(exclusive=request.exclusive)
            request = script.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


class Tx(Protocol):
    """One open transaction (or one read) on the backend."""

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None: ...

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...

    async def db_now(self, fallback: datetime) -> datetime:
        """The database's clock (PostgreSQL `now()`), or `fallback` where the database has none of its own."""
        ...

    async def lock_holds(self, *, exclusive: bool) -> None:
        """Serialise hold changes with intent batches (PostgreSQL: a transaction advisory lock; SQLite's single
        writer already does)."""
        ...

    async def run(self, script: Script[T]) -> T:
        """Run a whole script in this transaction (`drive`, or faster where the backend can)."""
        ...


def time_text(value: datetime) -> str:
    """Fixed-width ISO 8601 UTC text, the SQLite form of a timestamp."""
    if value.tzinfo is None:
        raise ValueError(f"the journal takes aware datetimes only, got naive {value!r}")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def as_time(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value).astimezone(UTC)
    raise TypeError(f"not a timestamp: {value!r}")


def required_time(value: object) -> datetime:
    result = as_time(value)
    if result is None:
        raise TypeError("a required timestamp is NULL")
    return result


# Built once: `json.dumps` with options builds an encoder per call, and an intent row encodes its reasons.
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_json(value: object) -> str:
    return _JSON.encode(value)


def from_json(value: object) -> Any:
    return None if value is None else json.loads(str(value))


def placeholders(count: int) -> str:
    return "(" + ", ".join("?" * count) + ")"


def chunks(values: Iterable[str], size: int = IN_CHUNK) -> Iterator[list[str]]:
    batch: list[str] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
