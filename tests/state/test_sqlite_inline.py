"""The deletion phase's SQLite transactions (intent batches, outcome groups) run on the loop's thread when the file's
write lock is free, and go to the writer thread, which waits for the lock, when another process holds it: the loop
never waits for a lock (issue 17: the hop to the writer thread cost more CPU than the SQL)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from state_helpers import SCOPE, T0, item, start

from ges_retention.state import Outcome, StateUnavailable, open_store, resolve_state_location
from ges_retention.state.sqlite import INLINE_OPERATIONS, SqliteStore


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, Path]]:
    path = tmp_path / "state.db"
    store = await open_store(resolve_state_location(str(path)))
    assert isinstance(store, SqliteStore)
    try:
        yield store, path
    finally:
        await store.close()


class Hops(list[str]):
    """The thread each writer-thread hop of a store ran on; `arrived` is set by the first."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()


def record_hops(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> Hops:
    hops = Hops()
    real_call = store.call

    async def call(fn: Callable[[sqlite3.Connection], Any]) -> Any:
        def traced(conn: sqlite3.Connection) -> Any:
            hops.append(threading.current_thread().name)
            hops.arrived.set()
            return fn(conn)

        return await real_call(traced)

    monkeypatch.setattr(store, "call", call)
    return hops


async def test_intents_and_outcomes_are_written_on_the_loops_thread_when_the_lock_is_free(
    sqlite_store: tuple[SqliteStore, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = sqlite_store
    await start(store, "r1")
    hops = record_hops(store, monkeypatch)
    batch = await store.write_intents("r1", SCOPE, [item("b1"), item("b2")])
    outcomes = [Outcome(t.deletion_id, "deleted", request_id="q", attempts=1) for t in batch.committed]
    await store.record_outcomes(outcomes)
    assert hops == []  # no hop: both ran inline
    [row] = (await store.why("b1")).records
    assert (row.state, row.request_id) == ("deleted", "q")
    assert {"write_intents", "record_outcomes"} == INLINE_OPERATIONS
    await store.active_deletions(SCOPE)  # anything else still goes to the writer thread
    assert hops and all(name != threading.main_thread().name for name in hops)


async def test_a_write_lock_held_by_another_process_sends_the_batch_to_the_writer_thread_and_the_loop_keeps_running(
    sqlite_store: tuple[SqliteStore, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, path = sqlite_store
    await start(store, "r1")
    hops = record_hops(store, monkeypatch)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process writing (a `hold` command, say)
    try:
        writing = asyncio.create_task(store.write_intents("r1", SCOPE, [item("b1")]))
        # The loop runs other work while the batch waits for the lock: had the batch waited on the loop's thread
        # (busy_timeout), the loop could not get here before the timeout, and the batch would fail.
        assert await asyncio.to_thread(hops.arrived.wait, 30), "the batch went to the writer thread"
        assert not writing.done()
    finally:
        other.execute("COMMIT")
        other.close()
    batch = await asyncio.wait_for(writing, timeout=30)
    assert [t.backup_id for t in batch.committed] == ["b1"]
    assert [r.state for r in await store.active_deletions(SCOPE)] == ["deleting"]
    # The lock free again: the next batch is inline once more.
    hops.clear()
    await store.write_intents("r1", SCOPE, [item("b2")])
    assert hops == []


async def test_a_failing_inline_transaction_is_rolled_back_and_mapped_like_any_write(
    sqlite_store: tuple[SqliteStore, Path],
) -> None:
    store, path = sqlite_store
    await start(store, "r1")
    # A trigger that refuses intents: the inline transaction fails mid-script.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON deletions BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    )
    other.close()
    with pytest.raises(StateUnavailable, match="refused by the test"):
        await store.write_intents("r1", SCOPE, [item("b1")])
    assert await store.active_deletions(SCOPE) == []
    conn = store._conn
    assert conn is not None and not conn.in_transaction  # rolled back: the next write can begin
    await store.put_hold("b9", "kept", now=T0)  # the next write begins and commits
    hold = await store.get_hold("b9")
    assert hold is not None and hold.reason == "kept"
