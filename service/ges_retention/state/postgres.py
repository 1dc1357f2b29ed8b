"""The PostgreSQL journal (asyncpg): the same SQL as SQLite through `SqlStore`, a pool of a few connections.

Differences that matter:
- `pending_since` comes from the database clock (`now()`), so several replicas agree on the two-phase clock whatever
  their own clocks say. (Holds are judged at the caller's instant, as on SQLite.)
- Hold changes and intent batches serialise on a transaction advisory lock (exclusive for holds, shared for batches):
  a hold committed before a batch's check is seen by it, one placed after waits until the batch has committed.
- Run lock: the policy's lease (`state/leases.py`, `self.leases`): a one-shot run takes it and renews it while it
  runs; a daemon runs what its lease manager holds. Intent batches given a lease are fenced by it (`write_intents`).
  The holder id is `host:pid:random` unless the caller names one.
- Several daemons may share one PostgreSQL state, so the daemon lock excludes nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from ges_retention.state import deletions
from ges_retention.state.errors import LeaseLost, StateReadOnly
from ges_retention.state.journal import SqlStore
from ges_retention.state.leases import DEFAULT_TTL_S, Lease, PgLeases, fence
from ges_retention.state.locks import DaemonLock, RunLock, default_holder
from ges_retention.state.postgres_errors import classify
from ges_retention.state.records import IntentBatch, PlannedDeletion, Scope, StoreInfo
from ges_retention.state.sql import Script, drive

__all__ = ["PostgresStore", "advisory_key", "to_dollar"]

HOLDS_KEY = -0x6765735F686F6C64  # "ges_hold", negated: one fixed advisory lock for hold changes vs intent batches
CONNECT_TIMEOUT_S = 10.0
# How long one statement, or a connection from the pool, may be waited for. Without it a database host that stops
# answering (a frozen VM, a half-open TCP connection) hangs a run, a lease round and the shutdown until TCP gives up,
# hours later: a run stuck like that deletes nothing and says nothing. Longer than any lock wait the journal makes
# (lease statements wait TTL/3 at most) and than a pruning batch.
COMMAND_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 5.0
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

    def __init__(
        self,
        info: StoreInfo,
        *,
        pool: asyncpg.Pool,
        url: str,
        read_only: bool,
        lease_ttl_s: float = DEFAULT_TTL_S,
        command_timeout_s: float = COMMAND_TIMEOUT_S,
        **options: Any,
    ) -> None:
        if options.get("holder") is None:
            # Two processes with one pid on one host (containers) must not pass for one lease holder.
            options["holder"] = f"{default_holder()}:{secrets.token_hex(3)}"
        super().__init__(info, read_only=read_only, **options)
        self._pool = pool
        self._url = url
        self._command_timeout_s = command_timeout_s
        self.pg_leases = PgLeases(self, ttl_s=lease_ttl_s, monotonic=self._monotonic)
        self.leases = self.pg_leases

    def __repr__(self) -> str:
        return f"PostgresStore(location={self.info.location!r}, read_only={self.read_only})"

    @contextlib.asynccontextmanager
    async def _transaction(self, operation: str, *, write: bool) -> AsyncIterator[_PgTx]:
        try:
            async with self._pool.acquire(timeout=self._command_timeout_s) as conn:
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
        await self.pg_leases.close()
        try:  # a connection still in use (a task not stopped yet) must not keep the process from ending
            await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT_S)
        except Exception:
            self._pool.terminate()

    async def write_intents(
        self,
        run_id: str,
        scope: Scope,
        items: Sequence[PlannedDeletion],
        *,
        now: datetime | None = None,
        lease: Lease | None = None,
    ) -> IntentBatch:
        """With a lease: fenced. The batch commits only if the lease is still held at its generation (else
        `LeaseLost`, nothing written, and the lease leaves this process's book)."""
        if lease is None:
            return await super().write_intents(run_id, scope, items, now=now)
        script = deletions.write_intents(run_id, scope, items, self._now(now))
        try:
            async with self.writing("write_intents") as tx:
                await fence(tx, lease, location=self.info.location)
                return await tx.run(script)
        except LeaseLost:
            if self.pg_leases.lease(lease.policy) == lease:
                self.pg_leases.forget(lease.policy)
            raise

    # ---------------------------------------------------------------------------------------------- locks

    async def try_run_lock(self, policy: str, run_id: str | None = None) -> RunLock | None:
        if self.read_only:
            raise StateReadOnly(f"the state at {self.info.location} was opened read-only", location=self.info.location)
        return await self.pg_leases.run_lock(policy, run_id)

    async def run_lock_holder(self, policy: str) -> str | None:
        return await self.pg_leases.holder_of(policy)

    async def acquire_daemon_lock(self) -> DaemonLock:
        """Several daemons may share a PostgreSQL state (policies are spread by leases, `state/leases.py`)."""

        async def nothing() -> None:
            return None

        return DaemonLock("daemon", self.holder, nothing)
