"""The Nth-write fault seam other areas use (`tests/support/state_faults.py`) fails exactly where it says, writes
nothing from the failing call, and covers every writing method of the `Store` protocol."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import pytest
from state_helpers import SCOPE, T0, OpenFn, item, start

from ges_retention.state import Outcome, RunRecord, StateReadOnly, StateUnavailable, Store
from ges_retention.state.store import Store as StoreProtocol
from support.state_faults import WRITES, FailingWrites


async def test_the_nth_write_and_every_later_one_fail_and_reads_still_work(store: Store) -> None:
    faulty = FailingWrites(store, fail_on=3)
    await start(faulty, "r1")
    first = await faulty.write_intents("r1", SCOPE, [item("b1")], now=T0)
    with pytest.raises(StateUnavailable, match="disk is full"):
        await faulty.write_intents("r1", SCOPE, [item("b2")], now=T0)
    with pytest.raises(StateUnavailable):
        await faulty.put_hold("b3", "r", now=T0)
    assert faulty.writes == ["start_run", "write_intents", "write_intents", "put_hold"]
    assert [r.backup.backup_id for r in await faulty.active_deletions(SCOPE)] == ["b1"]
    assert first.committed[0].backup_id == "b1"


def test_the_seam_knows_every_writing_method_of_the_protocol() -> None:
    methods = {name for name, _ in inspect.getmembers(StoreProtocol, inspect.isfunction) if not name.startswith("_")}
    assert methods >= WRITES
    reads = {
        "close", "try_run_lock", "acquire_run_lock", "run_lock_holder", "acquire_daemon_lock", "get_run", "list_runs",
        "history", "active_deletions", "pending_counts", "get_hold", "list_holds", "holds_in_force", "get_baseline",
        "find_ack", "get_change_digest", "get_rate", "why",
    }  # fmt: skip
    assert methods == WRITES | reads, "a new Store method: add it to WRITES or to the reads here"


async def test_every_write_is_refused_by_a_read_only_store(opener: OpenFn) -> None:
    """Cross-check of WRITES against the real read-only guard."""
    writer = await opener()
    await writer.close()
    reader = await opener(mode="read_only")
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "start_run": lambda: reader.start_run(RunRecord("r", "m", (), "h", T0)),
        "end_run": lambda: reader.end_run("r", ended_at=T0, outcome="success", counts={}),
        "mark_pending": lambda: reader.mark_pending("r", SCOPE, [item("b")], now=T0),
        "cancel_pending": lambda: reader.cancel_pending("r", SCOPE, {"b": []}, now=T0),
        "write_intents": lambda: reader.write_intents("r", SCOPE, [item("b")], now=T0),
        "record_outcomes": lambda: reader.record_outcomes([Outcome(1, "deleted")], now=T0),
        "resolve_deleting": lambda: reader.resolve_deleting("r", SCOPE, set(), now=T0),
        "put_hold": lambda: reader.put_hold("b", "r", now=T0),
        "release_hold": lambda: reader.release_hold("b", now=T0),
        "put_baseline": lambda: reader.put_baseline(SCOPE, definition={}, overlap=[], gate_digest="g", run_id="r"),
        "put_ack": lambda: reader.put_ack(SCOPE, "d", by="cli"),
        "put_change_digest": lambda: reader.put_change_digest(SCOPE, "d", run_id="r"),
        "put_rate": lambda: reader.put_rate("e", "p", 1.0),
        "prune": lambda: reader.prune(keep_days=400, now=T0),
    }
    assert set(calls) == WRITES
    for call in calls.values():
        with pytest.raises(StateReadOnly):
            await call()
