"""Contract suite, opening: create/migrate only in `create` mode, migrations from every earlier version, a newer
schema refused untouched, `existing` and `read_only` modes. Both backends."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Literal

import asyncpg
import pytest
from state_helpers import SCOPE, T0, FakeClock, item, start

from ges_retention.state import (
    CURRENT_VERSION,
    RunRecord,
    StateLocation,
    StateMissing,
    StateReadOnly,
    StateSchemaOutdated,
    StateSchemaTooNew,
    Store,
    open_store,
    resolve_state_location,
)
from ges_retention.state.migrations import MIGRATIONS, VERSION_TABLE, render


async def _open(location: StateLocation, clock: FakeClock, mode: str = "create", **kw: object) -> Store:
    store = await open_store(location, mode=mode, clock=clock, **kw)  # type: ignore[arg-type]
    assert store is not None
    return store


async def _schema_version(location: StateLocation) -> int:
    if location.kind == "sqlite":
        with sqlite3.connect(str(location.path)) as conn:
            return int(conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0])
    conn = await asyncpg.connect(location.url)
    try:
        return int(await conn.fetchval("SELECT MAX(version) FROM schema_migrations"))
    finally:
        await conn.close()


_OLD_DELETION = (
    "INSERT INTO deletions (policy, endpoint, project_id, backup_id, state, reasons, run_id, planned_run_id, "
    "backup_name, graph_id, graph_name, backup_method, planned_at, updated_at) "
    "VALUES ({})"
)


async def _old_deletions(location: StateLocation, rows: list[tuple[str, str, str]]) -> None:
    """Deletion rows of run r1 in `SCOPE`, with the columns of schema version 1 only: (backup id, state, reason)."""
    scope = (SCOPE.policy, SCOPE.endpoint, SCOPE.project_id)
    values = [(*scope, bid, state, json.dumps([why]), "r1", "r1", bid, "g", "g", "auto") for bid, state, why in rows]
    if location.kind == "sqlite":
        at = T0.isoformat(timespec="microseconds")
        with sqlite3.connect(str(location.path)) as conn:
            conn.executemany(_OLD_DELETION.format(", ".join("?" * 14)), [(*v, at, at) for v in values])
        return
    conn = await asyncpg.connect(location.url)
    try:
        marks = ", ".join(f"${i}" for i in range(1, 15))
        await conn.executemany(_OLD_DELETION.format(marks), [(*v, T0, T0) for v in values])
    finally:
        await conn.close()


async def _claim_version(location: StateLocation, version: int) -> None:
    """What a newer program would have left: a higher version row."""
    if location.kind == "sqlite":
        with sqlite3.connect(str(location.path)) as conn:
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', '2099-01-01')",
                (version,),
            )
        return
    conn = await asyncpg.connect(location.url)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', now())", version
        )
    finally:
        await conn.close()


async def test_create_records_the_version_and_reopening_does_not_recreate(
    location: StateLocation, clock: FakeClock, backend: str
) -> None:
    store = await _open(location, clock)
    assert (store.info.created, store.info.schema_version, store.info.backend) == (True, CURRENT_VERSION, backend)
    assert store.info.migrated_from is None and not store.info.in_memory
    assert "***" in store.info.location or backend == "sqlite"
    await start(store, "r1")
    await store.close()
    again = await _open(location, clock)
    assert (again.info.created, again.info.schema_version) == (False, CURRENT_VERSION)
    assert await again.get_run("r1") is not None
    await again.close()
    assert await _schema_version(location) == CURRENT_VERSION


async def test_existing_and_read_only_modes_never_create(location: StateLocation, clock: FakeClock) -> None:
    with pytest.raises(StateMissing, match="`run` or `daemon` creates it") as caught:
        await open_store(location, mode="existing", clock=clock)
    assert caught.value.location == location.display
    assert await open_store(location, mode="read_only", clock=clock) is None
    if location.path is not None:
        assert not location.path.exists()
    # and, after those, `create` still finds nothing there
    store = await _open(location, clock)
    assert store.info.created
    await store.close()


class _CreatorMidMigration:
    """Another process creating the state: the migration to the current version begun and not yet committed, as `run`
    or `daemon` leaves it for a moment on first start (the SQLite file exists, its tables do not yet)."""

    def __init__(self, location: StateLocation) -> None:
        self.location = location
        self._sqlite: sqlite3.Connection | None = None
        self._pg: asyncpg.Connection | None = None

    def _statements(self, dialect: Literal["sqlite", "postgresql"]) -> list[str]:
        return [render(VERSION_TABLE, dialect)] + [render(sql, dialect) for m in MIGRATIONS for sql in m.sql]

    async def begin(self) -> None:
        if self.location.path is not None:
            self.location.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.location.path), isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in self._statements("sqlite"):
                conn.execute(statement)
            self._sqlite = conn
            return
        pg = await asyncpg.connect(self.location.url)
        await pg.execute("BEGIN")
        for statement in self._statements("postgresql"):
            await pg.execute(statement)
        self._pg = pg

    async def rollback(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
        if self._pg is not None:
            await self._pg.execute("ROLLBACK")
            await self._pg.close()


async def test_a_state_being_created_is_no_state_yet_for_existing_and_read_only(
    location: StateLocation, clock: FakeClock
) -> None:
    """A command that only reads (`plan`, `audit`, `holds`) opening the state while `run` creates it sees no state yet
    (as a moment before, when there was none), never "schema version 0, older than 3"."""
    creator = _CreatorMidMigration(location)
    await creator.begin()
    try:
        with pytest.raises(StateMissing, match="`run` or `daemon` creates it"):
            await open_store(location, mode="existing", clock=clock)
        assert await open_store(location, mode="read_only", clock=clock) is None
    finally:
        await creator.rollback()
    # Neither wrote anything: `create` still creates it.
    store = await _open(location, clock)
    assert (store.info.created, store.info.schema_version) == (True, CURRENT_VERSION)
    await store.close()


async def test_an_empty_sqlite_file_is_no_state_yet(tmp_path: Path, clock: FakeClock) -> None:
    """What `run` leaves for an instant on first start (SQLite creates the file empty) or forever if it dies then."""
    location = resolve_state_location(str(tmp_path / "state.db"))
    assert location.path is not None
    location.path.touch()
    with pytest.raises(StateMissing, match="`run` or `daemon` creates it"):
        await open_store(location, mode="existing", clock=clock)
    assert await open_store(location, mode="read_only", clock=clock) is None
    assert location.path.stat().st_size == 0  # untouched
    store = await _open(location, clock)
    assert (store.info.created, store.info.schema_version) == (True, CURRENT_VERSION)
    await store.close()


@pytest.mark.parametrize("from_version", range(1, CURRENT_VERSION))
async def test_a_state_migrates_from_every_earlier_version(
    location: StateLocation, clock: FakeClock, from_version: int
) -> None:
    old = await _open(location, clock, target_version=from_version)
    assert old.info.schema_version == from_version
    # What every version since 1 has: runs, deletions, holds. Deletion rows are written as that version's program
    # wrote them (its columns only); a cancelled one had its reasons replaced by why it was closed.
    await start(old, "r1")
    await old.put_hold("b3", "kept for audit", now=T0)
    await old.close()
    await _old_deletions(
        location, [("b1", "deleting", "expired"), ("b2", "deleting", "expired"), ("b9", "cancelled", "held: x")]
    )
    assert await _schema_version(location) == from_version

    for mode in ("existing", "read_only"):  # only `run` and `daemon` migrate
        with pytest.raises(StateSchemaOutdated, match=f"version {from_version}, older"):
            await open_store(location, mode=mode, clock=clock)
    assert await _schema_version(location) == from_version

    store = await _open(location, clock)
    assert (store.info.created, store.info.migrated_from, store.info.schema_version) == (
        False,
        from_version,
        CURRENT_VERSION,
    )
    assert {r.backup.backup_id for r in await store.active_deletions(SCOPE)} == {"b1", "b2"}
    (legacy,) = (await store.why("b9")).records
    assert (legacy.state, legacy.reasons, legacy.closed_reasons) == ("cancelled", ("held: x",), ())
    await start(store, "r2")
    await store.put_hold("b4", "since version 4", now=T0)
    batch = await store.write_intents("r2", SCOPE, [item("b4", "expired")], now=T0)
    assert [h.backup_id for h in batch.held] == ["b4"]
    (closed,) = (await store.why("b4")).records
    assert (closed.reasons, closed.closed_reasons) == (("expired",), ("held: since version 4",))
    hold = await store.get_hold("b3")
    assert hold is not None and hold.reason == "kept for audit"
    await store.put_baseline(SCOPE, definition={"k": 1}, overlap=[], gate_digest="g", run_id="r1", now=T0)
    assert await store.get_baseline(SCOPE) is not None
    await store.close()
    assert await _schema_version(location) == CURRENT_VERSION


async def test_a_newer_schema_is_refused_in_every_mode_and_left_untouched(
    location: StateLocation, clock: FakeClock
) -> None:
    store = await _open(location, clock)
    await start(store, "r1")
    await store.close()
    await _claim_version(location, CURRENT_VERSION + 1)
    for mode in ("create", "existing", "read_only"):
        with pytest.raises(StateSchemaTooNew, match="newer than this program") as caught:
            await open_store(location, mode=mode, clock=clock)
        assert (caught.value.found, caught.value.supported) == (CURRENT_VERSION + 1, CURRENT_VERSION)
    assert await _schema_version(location) == CURRENT_VERSION + 1


async def test_read_only_reads_and_refuses_every_write(location: StateLocation, clock: FakeClock) -> None:
    store = await _open(location, clock)
    await start(store, "r1")
    await store.put_hold("b1", "r", now=T0)
    await store.mark_pending("r1", SCOPE, [item("b2")], now=T0)
    await store.close()

    reader = await _open(location, clock, mode="read_only")
    try:
        assert reader.read_only and reader.info.schema_version == CURRENT_VERSION
        assert set(await reader.holds_in_force(at=T0)) == {"b1"}
        assert [r.backup.backup_id for r in await reader.active_deletions(SCOPE)] == ["b2"]
        with pytest.raises(StateReadOnly):
            await reader.put_hold("b9", "r", now=T0)
        with pytest.raises(StateReadOnly):
            await reader.write_intents("r1", SCOPE, [item("b3")], now=T0)
        with pytest.raises(StateReadOnly):
            await reader.start_run(RunRecord("r2", "manual", ("x",), "h", T0 + timedelta(hours=1)))
        with pytest.raises(StateReadOnly):
            await reader.try_run_lock("nightly")
    finally:
        await reader.close()
    again = await _open(location, clock, mode="existing")
    assert await again.get_hold("b9") is None and await again.get_run("r2") is None
    await again.close()
