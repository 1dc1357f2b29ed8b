"""Opening a SQLite journal in one of the three modes, creating and migrating it only in `create` mode."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ges_retention.state.errors import (
    StateError,
    StateLocationInvalid,
    StateMissing,
    StateSchemaOutdated,
    StateSchemaTooNew,
)
from ges_retention.state.location import StateLocation, network_filesystem
from ges_retention.state.migrations import CURRENT_VERSION, MIGRATIONS, VERSION_TABLE, render
from ges_retention.state.records import StoreInfo
from ges_retention.state.sql import time_text
from ges_retention.state.sqlite import BUSY_TIMEOUT_MS, SqliteStore
from ges_retention.state.sqlite_errors import classify

__all__ = ["open_sqlite"]


async def open_sqlite(
    location: StateLocation, *, mode: str, target_version: int = CURRENT_VERSION, **options: Any
) -> SqliteStore | None:
    """`mode`: `create` (create/migrate), `existing` (must exist and be current), `read_only` (None if absent)."""
    path = location.path
    display = location.display
    if path is not None:
        try:
            _check_path(path, display, mode)
            exists = path.exists()
        except OSError as exc:  # e.g. a parent directory this user may not enter
            raise classify(exc, location=display, operation="open", path=path) from exc
        if mode != "create" and not exists:
            if mode == "read_only":
                return None
            raise StateMissing(
                f"no state at {display}: `run` or `daemon` creates it (check GES_RETENTION_STATE)", location=display
            )
    elif mode == "existing":
        raise StateMissing(":memory: keeps nothing between commands: this needs a durable state", location=display)
    elif mode == "read_only":
        return None
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ges-state-sqlite")
    loop = asyncio.get_running_loop()
    clock = options.get("clock")
    try:
        conn, created, found = await loop.run_in_executor(
            executor, _connect_and_migrate, path, mode, target_version, clock
        )
    except BaseException as exc:
        executor.shutdown(wait=False)
        if isinstance(exc, StateError):
            raise
        if isinstance(exc, ForeignDatabase):
            raise StateLocationInvalid(f"{display} is not a ges-retention state: {exc}", location=display) from None
        if isinstance(exc, sqlite3.Error | OSError):
            raise classify(exc, location=display, operation="open", path=path) from exc
        raise
    refusal = _refusal(found, target_version, display, mode)
    if refusal is not None:
        await loop.run_in_executor(executor, conn.close)
        executor.shutdown(wait=False)
        if mode == "read_only" and isinstance(refusal, StateMissing):
            return None
        raise refusal
    info = StoreInfo(
        backend="sqlite",
        location=display,
        schema_version=max(found, target_version) if mode == "create" else found,
        created=created,
        migrated_from=found if (mode == "create" and 0 < found < target_version) else None,
        in_memory=path is None,
    )
    return SqliteStore(info, executor=executor, connection=conn, path=path, read_only=mode == "read_only", **options)


def _refusal(found: int, supported: int, display: str, mode: str) -> StateError | None:
    """Why a state at schema version `found` is not opened in `mode` (None: it is)."""
    if found == 0 and mode != "create":
        # No tables yet: an empty file that `run` or `daemon` is creating right now (or died creating). As on
        # PostgreSQL, that is no state yet, not a "version 0" to migrate.
        return StateMissing(
            f"no state at {display} yet (an empty file): `run` or `daemon` creates it", location=display
        )
    if found > supported or (mode != "create" and found < supported):
        return _version_error(found, supported, display, mode)
    return None


def _version_error(found: int, supported: int, display: str, mode: str) -> StateError:
    if found > supported:
        return StateSchemaTooNew(
            f"the state at {display} has schema version {found}, newer than this program's {supported}: "
            "upgrade ges-retention (the state was left untouched)",
            location=display,
            found=found,
            supported=supported,
        )
    return StateSchemaOutdated(
        f"the state at {display} has schema version {found}, older than {supported}: "
        "`run` or `daemon` migrates it first",
        location=display,
        found=found,
        supported=supported,
    )


def _check_path(path: Path, display: str, mode: str) -> None:
    if path.is_dir():
        raise StateLocationInvalid(f"the state path {display} is a directory: name a file", location=display)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    fs_type = network_filesystem(probe.resolve())
    if fs_type is not None:
        raise StateLocationInvalid(
            f"the state at {display} is on a network filesystem ({fs_type}); SQLite needs a local one "
            "(use a local path or a postgresql:// URL)",
            location=display,
        )
    if mode == "create":
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise classify(exc, location=display, operation="create", path=path) from exc


def _connect_and_migrate(path: Path | None, mode: str, target: int, clock: Any) -> tuple[sqlite3.Connection, bool, int]:
    """Runs on the store's thread: the connection belongs to it. Returns (connection, created, version found)."""
    if path is None:
        target_uri, uri = ":memory:", False
    else:
        access = {"create": "rwc", "existing": "rw", "read_only": "ro"}[mode]
        target_uri, uri = f"file:{quote(str(path))}?mode={access}", True
    # Used by the writer thread and, for the deletion phase's transactions, by the loop's thread (`INLINE_OPERATIONS`
    # in sqlite.py): never both at once, since both hold the store's transaction lock.
    conn = sqlite3.connect(
        target_uri,
        uri=uri,
        isolation_level=None,
        timeout=BUSY_TIMEOUT_MS / 1000,
        cached_statements=256,
        check_same_thread=False,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        found = _version(conn)  # before anything writes: a foreign file is left untouched
        if mode != "create" and found == 0:
            return conn, False, found  # no state yet (the caller says so): nothing written to the empty file
        if path is not None and mode != "read_only":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        if mode != "create" or found >= target:
            if mode == "read_only":
                conn.execute("PRAGMA query_only = ON")
            return conn, False, found
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = _version(conn)  # another process may have migrated it meanwhile
            if found < target:
                _migrate(conn, found, target, clock)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return conn, found == 0, found
    except BaseException:
        conn.close()
        raise


class ForeignDatabase(Exception):
    """A SQLite file that is not a journal: never migrated into one."""


def _version(conn: sqlite3.Connection) -> int:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_migrations" not in tables:
        if tables:
            raise ForeignDatabase("it is a SQLite database with other tables")
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def _migrate(conn: sqlite3.Connection, found: int, target: int, clock: Any) -> None:
    from datetime import UTC, datetime

    now = clock() if clock is not None else datetime.now(UTC)
    conn.execute(render(VERSION_TABLE, "sqlite"))
    for migration in MIGRATIONS:
        if found < migration.version <= target:
            for statement in migration.sql:
                conn.execute(render(statement, "sqlite"))
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time_text(now)),
            )
