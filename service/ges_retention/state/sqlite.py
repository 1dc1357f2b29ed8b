"""The SQLite journal: one connection, owned by one writer thread.

Why one thread of our own rather than `aiosqlite`: `sqlite3` connections may be used only by the thread that made
them, and a file has one writer at a time anyway, so a single thread loses nothing. Owning it lets a transaction's
first statement carry its `BEGIN IMMEDIATE` in the same hop, keeps the dependency list short, and keeps the thread's
lifetime tied to the store (`close()` joins it). An `asyncio.Lock` serialises transactions on the connection. The
deletion phase's own transactions (an intent batch, a group of outcomes) run on the loop's thread instead, unless
another process holds the file's write lock (`INLINE_OPERATIONS`: the hop cost more than the SQL).

Durability: WAL mode with `synchronous=NORMAL`. A commit appends to the WAL without an fsync; the WAL is fsynced at
checkpoints. After a power loss the last commits may be lost but the file is never corrupt; after a process crash
(the case write-ahead intents exist for) nothing committed is lost. That trade keeps an intent batch and each outcome
write cheap (no fsync storm at 64 deletions in flight) while `FULL` would fsync every commit.

Locks: a run lock is an `flock` on a per-policy file in `<state>-locks/` (released by the kernel if the process dies)
plus a `run_locks` row naming the holder; the daemon lock is an `flock` on `<state>-locks/daemon.lock`, whose content
names the holder. `flock` locks belong to the open file, so two stores in one process exclude each other too. The
file must be on a local filesystem (`open_sqlite` refuses a network one).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ges_retention.state.errors import DaemonLockHeld, StateError, StateReadOnly
from ges_retention.state.journal import SqlStore
from ges_retention.state.locks import DaemonLock, RunLock
from ges_retention.state.sql import DbNow, Execute, ExecuteMany, Fetch, Script, time_text
from ges_retention.state.sqlite_errors import SQLITE_BUSY, SQLITE_LOCKED, classify

__all__ = ["INLINE_OPERATIONS", "SqliteStore", "lock_dir"]

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000


def lock_dir(path: Path) -> Path:
    return path.with_name(path.name + "-locks")


@functools.lru_cache(maxsize=256)
def _adapt_time(value: datetime) -> str:
    """How `sqlite3` binds a datetime: `time_text` (a naive one raises its ValueError out of the statement).
    Cached: the rows of one batch share their instants (`updated_at`, `planned_at`...), so each is formatted once per
    batch rather than once per row and column."""
    return time_text(value)


# Registered with `sqlite3` itself rather than converted row by row in Python: the statement binds each datetime
# through it, and no other parameter is looked at (the per-parameter walk was a third of an intent batch's CPU). The
# registry is process-wide; this process binds datetimes to SQLite nowhere else, and the default adapter it replaces
# is deprecated since Python 3.12.
sqlite3.register_adapter(datetime, _adapt_time)


def _drive_sync(conn: sqlite3.Connection, script: Script[T]) -> T:
    """Run a whole script on the writer thread: the transaction costs one hop, not one per statement."""
    try:
        request = next(script)
        while True:
            result: Any = None
            if isinstance(request, Fetch):
                result = conn.execute(request.sql, request.params).fetchall()
            elif isinstance(request, Execute):
                result = conn.execute(request.sql, request.params).rowcount
            elif isinstance(request, ExecuteMany):
                if request.rows:
                    conn.executemany(request.sql, request.rows)
            elif isinstance(request, DbNow):
                result = request.fallback
            request = script.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


# The deletion phase's transactions: an intent batch before its DELETEs, a group of outcomes after them. They run on
# the event loop's thread, not the writer thread. Measured (bench scenario 12, 20,000 deletions, 64 in flight): the
# hop cost more CPU than the SQL. A statement on the writer thread releases the GIL for every row it steps and must
# take it back from a loop that is busy sending, so each batch paid dozens of forced GIL switches in both threads;
# inline, the service's CPU per delete fell from 0.30 to 0.21 CPU-ms (the bare loop: 0.13) and its rate rose by a
# third. These transactions are short (64 rows, no fsync in WAL mode but at checkpoints), and never wait for a lock
# on the loop: they begin with `busy_timeout` 0, and a file whose write lock another process holds sends them back
# to the writer thread, which waits for it. Reads, pruning and everything else stay on the writer thread.
INLINE_OPERATIONS = frozenset({"write_intents", "record_outcomes"})


class _WriteLockTaken(Exception):
    """`BEGIN IMMEDIATE` found the file's write lock taken: the transaction did not start."""


def _inline_transaction(conn: sqlite3.Connection, script: Script[T]) -> T:
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED):
            raise _WriteLockTaken from exc
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return _commit_script(conn, script)


def _commit_script(conn: sqlite3.Connection, script: Script[T]) -> T:
    """The script in the transaction already begun, then COMMIT; ROLLBACK if anything fails."""
    try:
        result = _drive_sync(conn, script)
    except BaseException:
        _end(conn, commit=False)
        raise
    _end(conn, commit=True)
    return result


def _end(conn: sqlite3.Connection, *, commit: bool) -> None:
    """COMMIT or ROLLBACK; a COMMIT that fails is rolled back, so the connection never stays inside a transaction
    (the next BEGIN would fail, and every later write with it)."""
    if not conn.in_transaction:
        return
    if commit:
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    else:
        conn.execute("ROLLBACK")


class _SqliteTx:
    __slots__ = ("_begin", "_open", "_store")

    def __init__(self, store: SqliteStore, begin: str | None) -> None:
        self._store = store
        self._begin = begin
        self._open = False

    def _prefix(self) -> str | None:
        """The pending `BEGIN`, sent in the same thread hop as the first statement."""
        begin, self._begin = self._begin, None
        if begin:
            self._open = True
        return begin

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        begin, args = self._prefix(), params

        def run(conn: sqlite3.Connection) -> int:
            if begin:
                conn.execute(begin)
            return conn.execute(sql, args).rowcount

        return await self._store.call(run)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        begin, converted = self._prefix(), rows

        def run(conn: sqlite3.Connection) -> None:
            if begin:
                conn.execute(begin)
            if converted:
                conn.executemany(sql, converted)

        await self._store.call(run)

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        begin, args = self._prefix(), params

        def run(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            if begin:
                conn.execute(begin)
            return conn.execute(sql, args).fetchall()

        return await self._store.call(run)

    async def db_now(self, fallback: datetime) -> datetime:
        return fallback

    async def run(self, script: Script[T]) -> T:
        begin = self._prefix()

        def run(conn: sqlite3.Connection) -> T:
            if begin:
                conn.execute(begin)
            return _drive_sync(conn, script)

        return await self._store.call(run)

    async def lock_holds(self, *, exclusive: bool) -> None:
        """`BEGIN IMMEDIATE` already makes this transaction the only writer of the file."""

    async def finish(self, commit: bool) -> None:
        if not self._open:  # a read, or nothing ran: no transaction to end
            return
        self._open = False
        await self._store.call(lambda conn: _end(conn, commit=commit))


class SqliteStore(SqlStore):
    """Constructed by `open_sqlite` (`state/sqlite_open.py`) with the connection already made on `executor`."""

    def __init__(
        self,
        info: Any,
        *,
        executor: ThreadPoolExecutor,
        connection: sqlite3.Connection,
        path: Path | None,
        read_only: bool,
        **options: Any,
    ) -> None:
        super().__init__(info, read_only=read_only, **options)
        self._executor = executor
        self._conn: sqlite3.Connection | None = connection
        self.path = path
        self._tx_lock = asyncio.Lock()
        self._memory_locks: set[str] = set()

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the state store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, conn)

    @contextlib.asynccontextmanager
    async def _transaction(self, operation: str, begin: str | None) -> AsyncIterator[_SqliteTx]:
        async with self._tx_lock:
            tx = _SqliteTx(self, begin)
            try:
                yield tx
            except sqlite3.Error as exc:
                await self._rollback_quietly(tx)
                raise classify(exc, location=self.info.location, operation=operation, path=self.path) from exc
            except BaseException:
                await self._rollback_quietly(tx)
                raise
            try:
                await tx.finish(commit=True)
            except sqlite3.Error as exc:
                await self._rollback_quietly(tx)
                raise classify(exc, location=self.info.location, operation=operation, path=self.path) from exc

    async def _run_script(self, operation: str, script: Script[T], *, write: bool) -> T:
        """BEGIN IMMEDIATE, the script and COMMIT (or ROLLBACK) in a single hop to the writer thread; the deletion
        phase's own transactions (`INLINE_OPERATIONS`) on the loop's thread when the file's write lock is free."""
        if write:
            self.writing(operation)  # the read-only guard
        if write and operation in INLINE_OPERATIONS and self._conn is not None:
            async with self._tx_lock:
                try:
                    return _inline_transaction(self._conn, script)
                except _WriteLockTaken:
                    pass  # another process is writing: wait for it on the writer thread, as every other write does
                except sqlite3.Error as exc:
                    raise classify(exc, location=self.info.location, operation=operation, path=self.path) from exc
        begin = "BEGIN IMMEDIATE" if write else None

        def transaction(conn: sqlite3.Connection) -> T:
            if begin is None:
                return _drive_sync(conn, script)
            conn.execute(begin)
            return _commit_script(conn, script)

        async with self._tx_lock:
            try:
                return await self.call(transaction)
            except sqlite3.Error as exc:
                raise classify(exc, location=self.info.location, operation=operation, path=self.path) from exc

    async def _rollback_quietly(self, tx: _SqliteTx) -> None:
        with contextlib.suppress(sqlite3.Error, RuntimeError):
            await tx.finish(commit=False)

    def _write(self, operation: str) -> contextlib.AbstractAsyncContextManager[_SqliteTx]:
        return self._transaction(operation, "BEGIN IMMEDIATE")

    def _read(self, operation: str) -> contextlib.AbstractAsyncContextManager[_SqliteTx]:
        return self._transaction(operation, None)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    # ---------------------------------------------------------------------------------------------- locks

    def _lock_file(self, name: str) -> Path:
        assert self.path is not None
        return lock_dir(self.path) / name

    def _flock(self, name: str) -> int | None:
        """An exclusive flock on the lock file `name` (its fd), or None when another open file holds it."""
        directory = lock_dir(self.path) if self.path is not None else None
        try:
            assert directory is not None
            directory.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(directory / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise classify(exc, location=self.info.location, operation="lock", path=self.path) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    @staticmethod
    def _unflock(fd: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def _check_lockable(self, what: str) -> None:
        if self.read_only:
            raise StateReadOnly(
                f"the state at {self.info.location} was opened read-only: no {what}", location=self.info.location
            )

    async def try_run_lock(self, policy: str) -> RunLock | None:
        self._check_lockable("run lock")
        holder = self.holder
        if self.path is None:  # :memory: is private to this store: the lock only has to exclude its own runs
            if policy in self._memory_locks:
                return None
            self._memory_locks.add(policy)

            async def release_memory() -> None:
                self._memory_locks.discard(policy)

            return RunLock(policy, holder, release_memory, owner=self)
        fd = self._flock(_run_lock_name(policy))
        if fd is None:
            return None
        try:
            async with self._write("run_lock") as tx:
                await tx.execute(
                    "INSERT INTO run_locks (policy, holder, acquired_at) VALUES (?, ?, ?) ON CONFLICT (policy) "
                    "DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at",
                    (policy, holder, self.clock()),
                )
        except BaseException:
            self._unflock(fd)
            raise

        async def release() -> None:
            try:
                async with self._write("run_unlock") as tx:
                    await tx.execute("DELETE FROM run_locks WHERE policy = ? AND holder = ?", (policy, holder))
            except StateError:
                pass  # the row only names the holder; the flock is what locks, and it goes below
            finally:
                self._unflock(fd)

        return RunLock(policy, holder, release, owner=self)

    async def run_lock_holder(self, policy: str) -> str | None:
        if self.path is None:
            return self.holder if policy in self._memory_locks else None
        async with self._read("run_lock_holder") as tx:
            rows = await tx.fetch("SELECT holder FROM run_locks WHERE policy = ?", (policy,))
        if not self._lock_busy(_run_lock_name(policy)):  # free: a row left by a dead holder names nobody
            return None
        return str(rows[0][0]) if rows else None

    def _lock_busy(self, name: str) -> bool:
        """Whether another open file holds the lock `name`; creates nothing (a read-only store may ask too)."""
        try:
            fd = os.open(self._lock_file(name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise classify(exc, location=self.info.location, operation="lock", path=self.path) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's own lock
        return False

    async def acquire_daemon_lock(self) -> DaemonLock:
        self._check_lockable("daemon lock")
        holder = self.holder
        if self.path is None:

            async def nothing() -> None:
                return None

            return DaemonLock("daemon", holder, nothing)
        fd = self._flock("daemon.lock")
        if fd is None:
            try:
                named = self._lock_file("daemon.lock").read_text(encoding="utf-8").strip() or None
            except OSError:
                named = None
            raise DaemonLockHeld(
                f"another daemon ({named or 'unknown'}) already uses the state at {self.info.location}",
                location=self.info.location,
                name="daemon",
                holder=named,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)

        async def release() -> None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            self._unflock(fd)

        return DaemonLock("daemon", holder, release)


def _run_lock_name(policy: str) -> str:
    """Policy names may hold any character: the file is named by a digest."""
    return "run-" + hashlib.sha256(policy.encode()).hexdigest()[:32] + ".lock"
