"""Contract suite, runs and planned deletions: the same behaviour on SQLite and PostgreSQL (`backend` fixture)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from state_helpers import OTHER_ENDPOINT, SCOPE, T0, FakeClock, item, start

from ges_retention.state import (
    Outcome,
    Store,
)

# ------------------------------------------------------------------------------------------------------------ runs


async def test_runs_are_recorded_and_listed_newest_first_with_filters(store: Store) -> None:
    await start(store, "r1", "nightly")
    await start(store, "r2", "weekly", at=timedelta(hours=1))
    await start(store, "r3", "nightly", "weekly", at=timedelta(hours=2))
    assert await store.end_run("r1", ended_at=T0 + timedelta(minutes=5), outcome="success", counts={"deleted": 3})
    assert not await store.end_run("nope", ended_at=T0, outcome="success", counts={})

    assert [r.run_id for r in await store.list_runs()] == ["r3", "r2", "r1"]
    assert [r.run_id for r in await store.list_runs(policy="nightly")] == ["r3", "r1"]
    assert [r.run_id for r in await store.list_runs(since=T0 + timedelta(minutes=30))] == ["r3", "r2"]
    assert [r.run_id for r in await store.history(policy="weekly", limit=1)] == ["r3"]
    r1 = await store.get_run("r1")
    assert r1 is not None
    assert (r1.trigger, r1.policies, r1.host, r1.outcome) == ("schedule", ("nightly",), "host-a", "success")
    assert r1.started_at == T0 and r1.ended_at == T0 + timedelta(minutes=5)
    assert r1.counts == {"deleted": 3}
    r3 = await store.get_run("r3")
    assert r3 is not None and r3.policies == ("nightly", "weekly") and r3.ended_at is None
    assert await store.get_run("missing") is None


async def test_a_run_id_is_recorded_once(store: Store) -> None:
    await start(store, "r1")
    with pytest.raises(ValueError, match="already recorded"):
        await start(store, "r1")


# ------------------------------------------------------------------------------------------------------------ intents


async def test_intent_batch_commits_rows_then_outcomes_record_request_ids(store: Store) -> None:
    await start(store, "r1")
    batch = await store.write_intents("r1", SCOPE, [item("b1"), item("b2"), item("b3")], now=T0)
    assert [t.backup_id for t in batch.committed] == ["b1", "b2", "b3"]
    assert batch.held == ()
    active = await store.active_deletions(SCOPE)
    assert {(r.backup.backup_id, r.state) for r in active} == {
        ("b1", "deleting"),
        ("b2", "deleting"),
        ("b3", "deleting"),
    }
    assert await store.active_deletions(OTHER_ENDPOINT) == []  # an emulator rehearsal never mixes with production

    ids = {t.backup_id: t.deletion_id for t in batch.committed}
    await store.record_outcomes(
        [
            Outcome(ids["b1"], "deleted", request_id="req-1", attempts=1),
            Outcome(ids["b2"], "already_deleted", request_id="req-2", attempts=2),
            Outcome(ids["b3"], "failed", request_id="req-3", attempts=3, error="GES.0001 boom"),
        ],
        now=T0 + timedelta(seconds=1),
    )
    assert await store.active_deletions(SCOPE) == []
    (b1,) = (await store.why("b1")).records
    assert (b1.state, b1.request_id, b1.attempts, b1.run_id, b1.reasons) == (
        "deleted",
        "req-1",
        1,
        "r1",
        ("older than 30d",),
    )
    assert b1.backup == item("b1").backup
    assert b1.finished_at == T0 + timedelta(seconds=1)
    (b3,) = (await store.why("b3")).records
    assert (b3.state, b3.error, b3.attempts) == ("failed", "GES.0001 boom", 3)


async def test_an_outcome_state_must_be_an_outcome() -> None:
    with pytest.raises(ValueError, match="outcome"):
        Outcome(1, "pending")


async def test_intent_batch_skips_backups_held_at_that_moment(store: Store) -> None:
    await start(store, "r1")
    await store.put_hold("b2", "legal asks", now=T0)
    await store.put_hold("b3", "ended", until=T0 - timedelta(seconds=1), now=T0 - timedelta(days=1))
    await store.put_hold("b4", "for a while", until=T0 + timedelta(days=1), now=T0)
    await store.mark_pending("r1", SCOPE, [item("b4")], now=T0 - timedelta(days=9))

    batch = await store.write_intents("r1", SCOPE, [item("b1"), item("b2"), item("b3"), item("b4")], now=T0)
    assert [t.backup_id for t in batch.committed] == ["b1", "b3"]
    assert [(h.backup_id, h.reason) for h in batch.held] == [
        ("b2", "held: legal asks"),
        ("b4", "held: for a while until 2026-03-02T12:00:00Z"),
    ]
    b2 = (await store.why("b2")).records
    # The planner's reasons stay; the hold is why the row was closed (`why` tells both).
    assert [(r.state, r.reasons, r.closed_reasons) for r in b2] == [
        ("cancelled", ("older than 30d",), ("held: legal asks",))
    ]
    b4 = (await store.why("b4")).records  # its pending row was cancelled, not duplicated
    assert [r.state for r in b4] == ["cancelled"] and b4[0].id == batch.held[1].deletion_id


async def test_intent_batch_matches_a_hold_in_any_case_of_the_id(store: Store) -> None:
    """A hold placed as `B2` (or `b3` for `B3`) keeps the backup listed as `b2` (`B3`): the safe side."""
    await start(store, "r1")
    await store.put_hold("B2", "typed in upper case", now=T0)
    await store.put_hold("b3", "typed in lower case", now=T0)
    batch = await store.write_intents("r1", SCOPE, [item("b1"), item("b2"), item("B3")], now=T0)
    assert [t.backup_id for t in batch.committed] == ["b1"]
    assert [(h.backup_id, h.reason) for h in batch.held] == [
        ("b2", "held: typed in upper case"),
        ("B3", "held: typed in lower case"),
    ]
    assert [r.state for r in (await store.why("b2")).records] == ["cancelled"]


async def test_a_due_pending_row_becomes_the_intent_keeping_its_clock(store: Store, clock: FakeClock) -> None:
    await start(store, "r1")
    since = await store.mark_pending("r1", SCOPE, [item("b1")], now=T0)
    await start(store, "r2", at=timedelta(days=3))
    batch = await store.write_intents("r2", SCOPE, [item("b1", "still old")], now=T0 + timedelta(days=3))
    (record,) = (await store.why("b1")).records
    assert record.id == batch.committed[0].deletion_id
    assert (record.state, record.run_id, record.planned_run_id, record.reasons) == (
        "deleting",
        "r2",
        "r1",
        ("still old",),
    )
    assert record.pending_since == since["b1"] and record.planned_at == since["b1"]


async def test_an_intent_batch_naming_a_backup_twice_is_refused(store: Store) -> None:
    await start(store, "r1")
    with pytest.raises(ValueError, match="twice"):
        await store.write_intents("r1", SCOPE, [item("b1"), item("b1")], now=T0)
    assert await store.active_deletions(SCOPE) == []


async def test_a_late_outcome_does_not_overwrite_a_resolution(store: Store) -> None:
    await start(store, "r1")
    batch = await store.write_intents("r1", SCOPE, [item("b1")], now=T0)
    await store.end_run("r1", ended_at=T0, outcome="failed", counts={})
    await start(store, "r2", at=timedelta(hours=1))
    await store.resolve_deleting("r2", SCOPE, {"b1"}, now=T0 + timedelta(hours=1))
    await store.record_outcomes([Outcome(batch.committed[0].deletion_id, "deleted")], now=T0 + timedelta(hours=2))
    assert [r.state for r in (await store.why("b1")).records] == ["not_started"]


# ------------------------------------------------------------------------------------------------------------ pending


async def test_pending_clock_starts_once_and_cancel_or_gone_ends_it(store: Store, backend: str) -> None:
    await start(store, "r1")
    first = await store.mark_pending("r1", SCOPE, [item("b1"), item("b2"), item("b3")], now=T0)
    assert set(first) == {"b1", "b2", "b3"}
    again = await store.mark_pending("r1", SCOPE, [item("b1"), item("b4")], now=T0 + timedelta(hours=1))
    assert again["b1"] == first["b1"]  # the clock does not restart while the row is pending
    assert again["b4"] >= again["b1"]
    if backend == "sqlite":
        assert first["b1"] == T0 and again["b4"] == T0 + timedelta(hours=1)
    assert await store.pending_counts() == {"nightly": 4}

    changed = await store.cancel_pending("r1", SCOPE, {"b1": ["kept: daily"], "b9": ["x"]}, now=T0)
    assert changed == 1
    assert await store.cancel_pending("r1", SCOPE, {"b2": []}, state="gone", now=T0) == 1
    with pytest.raises(ValueError, match="cancelled or gone"):
        await store.cancel_pending("r1", SCOPE, {"b3": []}, state="deleted", now=T0)
    states = {r.backup.backup_id: r.state for r in await store.active_deletions(SCOPE)}
    assert states == {"b3": "pending", "b4": "pending"}
    (b1,) = (await store.why("b1")).records
    assert (b1.state, b1.reasons, b1.closed_reasons) == ("cancelled", ("older than 30d",), ("kept: daily",))

    # Planned again later: a new row, and the clock starts again.
    await start(store, "r2", at=timedelta(days=2))
    later = await store.mark_pending("r2", SCOPE, [item("b1")], now=T0 + timedelta(days=2))
    history = (await store.why("b1")).records
    assert [r.state for r in history] == ["cancelled", "pending"]
    assert later["b1"] == history[1].pending_since and history[1].planned_run_id == "r2"
    assert later["b1"] > first["b1"] or backend == "postgresql"


async def test_pending_since_comes_from_the_database_clock_on_postgresql(store: Store, backend: str) -> None:
    """SQLite has no clock of its own: the injected one. PostgreSQL: `now()`, whatever the process's clock says."""
    await start(store, "r1")
    long_ago = T0 - timedelta(days=3650)
    since = await store.mark_pending("r1", SCOPE, [item("b1")], now=long_ago)
    if backend == "sqlite":
        assert since["b1"] == long_ago
    else:
        assert since["b1"] > T0  # the server's real clock: this test was written after T0


# ------------------------------------------------------------------------------------------------------------ resolve


async def test_deleting_rows_of_an_ended_run_resolve_against_a_trusted_listing(store: Store) -> None:
    await start(store, "r1")
    await store.write_intents("r1", SCOPE, [item("gone1"), item("still1")], now=T0)
    await store.end_run("r1", ended_at=T0 + timedelta(minutes=1), outcome="failed", counts={})
    await start(store, "r2", at=timedelta(hours=1))
    await store.write_intents("r2", SCOPE, [item("mine")], now=T0 + timedelta(hours=1))

    result = await store.resolve_deleting("r2", SCOPE, {"still1", "mine", "other"}, now=T0 + timedelta(hours=1))
    assert (result.deleted, result.not_started, result.unresolved) == (("gone1",), ("still1",), ())
    assert [r.state for r in (await store.why("gone1")).records] == ["deleted"]
    assert [r.state for r in (await store.why("still1")).records] == ["not_started"]
    assert [r.state for r in (await store.why("mine")).records] == ["deleting"]  # this run's own row: untouched


async def test_deleting_rows_of_a_run_not_known_ended_stay_unless_the_run_lock_is_held(store: Store) -> None:
    await start(store, "crashed")
    await store.write_intents("crashed", SCOPE, [item("b1"), item("b2")], now=T0)
    await start(store, "r2", at=timedelta(hours=1))

    result = await store.resolve_deleting("r2", SCOPE, {"b2"}, now=T0 + timedelta(hours=1))
    assert result.unresolved == ("b1", "b2") and result.deleted == () and result.not_started == ()
    assert {r.state for r in await store.active_deletions(SCOPE)} == {"deleting"}

    other_policy_lock = await store.try_run_lock("weekly")
    assert other_policy_lock is not None
    result = await store.resolve_deleting("r2", SCOPE, {"b2"}, lock=other_policy_lock)
    assert result.unresolved == ("b1", "b2")  # the lock of another policy proves nothing

    lock = await store.try_run_lock("nightly")
    assert lock is not None
    result = await store.resolve_deleting("r2", SCOPE, {"b2"}, lock=lock, now=T0 + timedelta(hours=1))
    assert (result.deleted, result.not_started) == (("b1",), ("b2",))
    await lock.release()
    await other_policy_lock.release()


async def test_a_released_lock_does_not_prove_the_run_ended(store: Store) -> None:
    await start(store, "r1")
    await store.write_intents("r1", SCOPE, [item("b1")], now=T0)
    lock = await store.try_run_lock("nightly")
    assert lock is not None
    await lock.release()
    result = await store.resolve_deleting("r2", SCOPE, set(), lock=lock)
    assert result.unresolved == ("b1",)
