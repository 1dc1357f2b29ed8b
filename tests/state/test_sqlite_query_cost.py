"""What a deletion's journal writes cost does not grow with the journal's history (counted in SQLite virtual-machine
steps, not in time): every query of an intent batch, an outcome group and the pending gauge reaches its rows through
an index (the partial `deletions_active` index since version 5), never by walking the scope's or the run's rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from state_helpers import SCOPE, T0, item, start

from ges_retention.state import Outcome, open_store, resolve_state_location
from ges_retention.state.sqlite import SqliteStore

BATCH = 64
STEP = 100  # the progress handler is called every STEP virtual-machine instructions


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await open_store(resolve_state_location(str(tmp_path / "state.db")))
    assert isinstance(store, SqliteStore)
    try:
        yield store
    finally:
        await store.close()


async def journal_history(store: SqliteStore, run_id: str, batches: int, tag: str) -> None:
    """`batches` batches of run `run_id` in SCOPE: most deleted, one of each batch held (a `cancelled` row)."""
    for b in range(batches):
        ids = [f"{tag}-b{b}-{i}" for i in range(BATCH)]
        await store.put_hold(ids[0], "kept by the test", now=T0)
        batch = await store.write_intents(run_id, SCOPE, [item(x) for x in ids], now=T0)
        await store.record_outcomes([Outcome(t.deletion_id, "deleted", attempts=1) for t in batch.committed], now=T0)
        await store.release_hold(ids[0], now=T0)


async def steps_of_one_batch(store: SqliteStore, run_id: str, tag: str) -> int:
    """VM steps of one intent batch (one of it held), its outcome group and a pending-gauge read."""
    ids = [f"{tag}-{i}" for i in range(BATCH)]
    await store.put_hold(ids[0], "kept by the test", now=T0)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += STEP
        return 0  # go on

    conn = store._conn
    assert conn is not None
    conn.set_progress_handler(count, STEP)
    try:
        batch = await store.write_intents(run_id, SCOPE, [item(x) for x in ids], now=T0)
        await store.record_outcomes([Outcome(t.deletion_id, "deleted", attempts=1) for t in batch.committed], now=T0)
        await store.pending_counts()
    finally:
        conn.set_progress_handler(None, 0)
    assert len(batch.committed) == BATCH - 1 and len(batch.held) == 1
    return steps


async def test_a_batch_costs_the_same_after_a_long_history_of_the_same_scope_and_run(
    sqlite_store: SqliteStore,
) -> None:
    store = sqlite_store
    await start(store, "run")
    await start(store, "other-run")
    await journal_history(store, "run", 2, "early")
    small = await steps_of_one_batch(store, "run", "probe-1")
    # 60 more batches: 30 times the rows in the scope, in the probe's own run, and in the `cancelled` state.
    await journal_history(store, "run", 30, "late")
    await journal_history(store, "other-run", 30, "other")
    large = await steps_of_one_batch(store, "run", "probe-2")
    # B-trees deepen by a level at most; a query walking the scope, the run or the held rows would grow 30-fold.
    assert large <= small * 1.5, (small, large)
