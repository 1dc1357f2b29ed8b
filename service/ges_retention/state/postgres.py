"""The PostgreSQL journal (asyncpg): the same SQL as SQLite through `SqlStore`, a pool of a few connections.

Differences that matter:
- `pending_since` comes from the database clock (`now()`), so several replicas agree on the two-phase clock whatever
  their own clocks say. (Holds are judged at the caller's instant, as on SQLite.)
- Hold changes and intent batches serialise on a transaction advisory lock (exclusive for holds, shared for batches):
  a hold committed before a batch's check is seen by it, one placed after waits until the batch has committed.
- Run lock: for now a session advisory lock on a dedicated connection (released by the server if the process or the
  connection dies) plus the `run_locks` row naming the holder. Issue 15 replaces it with the fenced lease; the seam is
  `try_run_lock`/`run_lock_holder` here and the `lease_generation` columns of `runs` and `deletions`.
- Several daemons may share one PostgreSQL state, so the daemon lock excludes nobody.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from ges_retention.state.errors import StateReadOnly
from ges_retention.state.journal import SqlStore
from ges_retention.state.locks import DaemonLock, RunLock
from ges_retention.state.postgres_errors import classify
from ges_retention.state.records import StoreInfo
from ges_retention.state.sql import Script, drive

__all__ = ["PostgresStore", "advisory_key", "to_dollar"]

HOLDS_KEY = -0x6765735F686F6C64  # "ges_hold", negated: one fixed advisory lock for hold changes vs intent batches
CONNECT_TIMEOUT_S = 10.0
LOCK_APPLICATION = "ges-retention-run-lock"
"""`application_name` of the sessions that hold run locks (visible in `pg_stat_activity`)."""
_QMARK = re.compile(r"\?")
T = TypeVar("T")


@functools.lru_cache(maxsize=512)
def to_dollar(sql: str) -> str:
    """`?` placeholders as `$1, $2, ...` (the journal's SQL has no `?` inside literals)."""
    counter = iter(range(1, 10_000))
    return _QMARK.sub(lambda _m: f"${next(counter)}", sql)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for `name`."""
    return int.from_bytes(hashlib.sha256(f"ges-retention:{name}".encode()).digest()[:8], "big", signed=True)


class _PgTx:
    __slots__ = ("_conn", "_now")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._now: datetime | None = None

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        status = await self._conn.execute(to_dollar(sql), *params)
        tail = str(status).rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            await self._conn.executemany(to_dollar(sql), rows)

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return [tuple(record) for record in await self._conn.fetch(to_dollar(sql), *params)]

    async def db_now(self, fallback: datetime) -> datetime:
        if self._now is None:
            value = await self._conn.fetchval("SELECT now()")
            self._now = value if isinstance(value, datetime) else fallback
        return self._now

    async def run(self, script: Script[T]) -> T:
        return await drive(self, script)

    async def lock_holds(self, *, exclusive: bool) -> None:
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        await self._conn.execute(f"SELECT {function}($1)", HOLDS_KEY)


class PostgresStore(SqlStore):
    """Constructed by `open_postgres` (`state/postgres_open.py`)."""

    def __init__(self, info: StoreInfo, *, pool: asyncpg.Pool, url: str, read_only: bool, **options: Any) -> None:
        super().__init__(info, read_only=read_only, **options)
        self._pool = pool
        self._url = url

    def __repr__(self) -> str:
        return f"PostgresStore(location={self.info.location!r}, read_only={self.read_only})"

    @contextlib.asynccontextmanager
    async def _transaction(self, operation: str, *, write: bool) -> AsyncIterator[_PgTx]:
        try:
            async with self._pool.acquire() as conn:
                if write:
                    async with conn.transaction():
                        yield _PgTx(conn)
                else:
                    async with conn.transaction(readonly=True):
                        yield _PgTx(conn)
        except (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            OSError,
            TimeoutError,
        ) as exc:
            raise classify(exc, location=self.info.location, operation=operation) from exc

    def _write(self, operation: str) -> contextlib.AbstractAsyncContextManager[_PgTx]:
        return self._transaction(operation, write=True)

    def _read(self, operation: str) -> contextlib.AbstractAsyncContextManager[_PgTx]:
        return self._transaction(operation, write=False)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._pool.close()

    # ---------------------------------------------------------------------------------------------- locks

    async def _connect(self, operation: str) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(
                self._url, timeout=CONNECT_TIMEOUT_S, server_settings={"application_name": LOCK_APPLICATION}
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, ValueError) as exc:
            raise classify(exc, location=self.info.location, operation=operation) from exc

    async def try_run_lock(self, policy: str) -> RunLock | None:
        if self.read_only:
            raise StateReadOnly(f"the state at {self.info.location} was opened read-only", location=self.info.location)
        key = advisory_key(f"run:{policy}")
        # A cheap probe on a pooled connection first: a waiting run polls, and a new session per poll costs a login.
        async with self._write("run_lock_probe") as probe:
            if not (await probe.fetch("SELECT pg_try_advisory_xact_lock(?)", (key,)))[0][0]:
                return None
        conn = await self._connect("run_lock")
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                await conn.close()
                return None
            async with self._write("run_lock") as tx:
                await tx.execute(
                    "INSERT INTO run_locks (policy, holder, acquired_at) VALUES (?, ?, now()) ON CONFLICT (policy) "
                    "DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at",
                    (policy, self.holder),
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        holder = self.holder

        async def release() -> None:
            try:
                async with self._write("run_unlock") as tx:
                    await tx.execute("DELETE FROM run_locks WHERE policy = ? AND holder = ?", (policy, holder))
            except Exception:  # noqa: S110 - the row only names the holder; closing the session unlocks below
                pass
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

        return RunLock(policy, holder, release, owner=self)

    async def run_lock_holder(self, policy: str) -> str | None:
        key = advisory_key(f"run:{policy}")
        async with self._write("run_lock_holder") as tx:
            rows = await tx.fetch("SELECT holder FROM run_locks WHERE policy = ?", (policy,))
            # Free if we can take it: then a row names a holder that is gone.
            free = await tx.fetch("SELECT pg_try_advisory_xact_lock(?)", (key,))
        if free and free[0][0]:
            return None
        return str(rows[0][0]) if rows else None

    async def acquire_daemon_lock(self) -> DaemonLock:
        """Several daemons may share a PostgreSQL state (policies are spread by leases, issue 15)."""

        async def nothing() -> None:
            return None

        return DaemonLock("daemon", self.holder, nothing)
