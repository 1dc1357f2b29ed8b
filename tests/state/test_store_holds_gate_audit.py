"""Contract suite, holds, change gate records, rates, `why`, pruning: the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from state_helpers import SCOPE, T0, item, start

from ges_retention.state import Outcome, RunRecord, Scope, Store, validate_backup_id, validate_hold_reason

# ------------------------------------------------------------------------------------------------------------ holds


async def test_holds_are_placed_replaced_listed_and_released(store: Store) -> None:
    placed = await store.put_hold("b1", "legal: case 42", by="cli", now=T0)
    assert (placed.backup_id, placed.reason, placed.until, placed.placed_at, placed.placed_by) == (
        "b1",
        "legal: case 42",
        None,
        T0,
        "cli",
    )
    await store.put_hold("b2", "until audit", until=T0 + timedelta(days=2), now=T0)
    await store.put_hold("b1", "replaced reason", now=T0 + timedelta(hours=1))
    assert [(h.backup_id, h.reason) for h in await store.list_holds()] == [
        ("b1", "replaced reason"),
        ("b2", "until audit"),
    ]

    in_force_later = await store.holds_in_force(at=T0 + timedelta(days=3))
    assert set(in_force_later) == {"b1"}  # an ended hold is ignored
    assert set(await store.holds_in_force(at=T0)) == {"b1", "b2"}
    assert [h.backup_id for h in await store.list_holds(at=T0 + timedelta(days=3))] == ["b1"]
    hold = await store.get_hold("b2")
    assert hold is not None and hold.until == T0 + timedelta(days=2)
    assert hold.kept_reason() == "held: until audit until 2026-03-03T12:00:00Z"

    assert await store.release_hold("b1", now=T0) is True
    assert await store.release_hold("b1", now=T0) is False  # not held
    assert await store.release_hold("b2", now=T0 + timedelta(days=3)) is False  # ended: not held, but removed
    assert await store.list_holds() == []


async def test_a_hold_of_an_id_never_listed_is_allowed(store: Store) -> None:
    await store.put_hold("not-seen-yet", "pre-emptive", now=T0)
    report = await store.why("not-seen-yet")
    assert report.records == () and report.hold is not None and not report.empty


BAD_IDS = ["", "..", ".", "a/b", "a b", "x" * 129, "%2F", "é", "a\nb", "a?b"]
BAD_REASONS = ["", "   ", "x" * 201, "line\nbreak", "tab\there", "bell\x07"]


async def test_a_malformed_backup_id_or_reason_is_refused_and_nothing_is_written(store: Store) -> None:
    for bad_id in BAD_IDS:
        with pytest.raises(ValueError, match="malformed"):
            await store.put_hold(bad_id, "reason", now=T0)
        with pytest.raises(ValueError, match="malformed"):
            validate_backup_id(bad_id)
    for bad_reason in BAD_REASONS:
        with pytest.raises(ValueError, match="reason"):
            await store.put_hold("b1", bad_reason, now=T0)
    assert await store.list_holds() == []


def test_valid_ids_and_reasons_pass_unchanged() -> None:
    assert validate_backup_id("bk_2026.03-01~x") == "bk_2026.03-01~x"
    assert validate_hold_reason("x" * 200) == "x" * 200
    assert validate_hold_reason("ticket #42: keep (ünïcode ok)") == "ticket #42: keep (ünïcode ok)"


async def test_a_naive_hold_end_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone"):
        await store.put_hold("b1", "r", until=T0.replace(tzinfo=None), now=T0)


# ------------------------------------------------------------------------------------------------------------ gate


async def test_baseline_ack_change_digest_and_rate_round_trip_and_upsert(store: Store) -> None:
    assert await store.get_baseline(SCOPE) is None
    definition = {"keep": {"daily": 30}, "name_free": True, "ünï": [1, 2.5, None]}
    await store.put_baseline(
        SCOPE, definition=definition, overlap={"other": {"keep": {"last": 1}}}, gate_digest="d1", run_id="r1", now=T0
    )
    await store.put_baseline(
        SCOPE, definition={"keep": {"daily": 3}}, overlap=[], gate_digest="d2", run_id="r2", now=T0
    )
    baseline = await store.get_baseline(SCOPE)
    assert baseline is not None
    assert (baseline.definition, baseline.overlap, baseline.gate_digest, baseline.run_id, baseline.recorded_at) == (
        {"keep": {"daily": 3}},
        [],
        "d2",
        "r2",
        T0,
    )
    assert await store.get_baseline(Scope("nightly", "http://127.0.0.1:1", "p1")) is None

    assert await store.find_ack(SCOPE, "d3") is None
    ack = await store.put_ack(SCOPE, "d3", by="cli", now=T0)
    assert (ack.digest, ack.by, ack.acked_at) == ("d3", "cli", T0)
    await store.put_ack(SCOPE, "d3", by="http", now=T0 + timedelta(minutes=1))
    found = await store.find_ack(SCOPE, "d3")
    assert found is not None and found.by == "http"

    assert await store.get_change_digest(SCOPE) is None  # never run on change: a load differs
    await store.put_change_digest(SCOPE, "c1", run_id="r1", now=T0)
    await store.put_change_digest(SCOPE, "c2", run_id="r2", now=T0)
    assert await store.get_change_digest(SCOPE) == "c2"

    assert await store.get_rate("https://ges.example", "p1") is None
    await store.put_rate("https://ges.example", "p1", 12, now=T0)
    await store.put_rate("https://ges.example", "p1", 37.5, now=T0)
    assert await store.get_rate("https://ges.example", "p1") == 37.5
    with pytest.raises(ValueError):
        await store.put_rate("https://ges.example", "p1", 0, now=T0)


# ------------------------------------------------------------------------------------------------------------ audit


async def test_why_lists_every_record_oldest_first_with_the_hold(store: Store) -> None:
    await start(store, "r1")
    await store.mark_pending("r1", SCOPE, [item("b1", "older than 30d")], now=T0)
    await store.cancel_pending("r1", SCOPE, {"b1": ["kept: monthly"]}, now=T0)
    await start(store, "r2", at=timedelta(days=1))
    batch = await store.write_intents("r2", SCOPE, [item("b1", "older than 60d")], now=T0 + timedelta(days=1))
    await store.record_outcomes(
        [Outcome(batch.committed[0].deletion_id, "deleted", request_id="req-9", attempts=1)], now=T0 + timedelta(days=1)
    )
    await store.put_hold("b1", "too late, but recorded", now=T0 + timedelta(days=2))

    report = await store.why("b1")
    # A cancelled row keeps why it was planned; why it was cancelled is beside it.
    assert [(r.state, r.run_id, r.reasons, r.closed_reasons) for r in report.records] == [
        ("cancelled", "r1", ("older than 30d",), ("kept: monthly",)),
        ("deleted", "r2", ("older than 60d",), ()),
    ]
    assert report.records[1].request_id == "req-9" and report.records[1].scope == SCOPE
    assert report.hold is not None and report.hold.reason == "too late, but recorded"
    assert (await store.why("unknown")).empty


# ------------------------------------------------------------------------------------------------------------ prune


async def test_prune_forgets_old_runs_and_keeps_what_is_still_referenced(store: Store) -> None:
    old = T0 - timedelta(days=500)
    await store.start_run(_run("old-done", "nightly", old))
    await store.end_run("old-done", ended_at=old, outcome="success", counts={})
    batch = await store.write_intents("old-done", SCOPE, [item("d1")], now=old)
    await store.record_outcomes([Outcome(batch.committed[0].deletion_id, "deleted")], now=old)

    await store.start_run(_run("old-pending", "nightly", old + timedelta(hours=1)))
    await store.end_run("old-pending", ended_at=old + timedelta(hours=1), outcome="success", counts={})
    await store.mark_pending("old-pending", SCOPE, [item("p1")], now=old)

    await store.start_run(_run("old-baseline", "nightly", old + timedelta(hours=2)))
    await store.end_run("old-baseline", ended_at=old + timedelta(hours=2), outcome="success", counts={})
    await store.put_baseline(SCOPE, definition={}, overlap=[], gate_digest="g", run_id="old-baseline", now=old)

    await store.start_run(_run("weekly-last", "weekly", old))  # the weekly policy's last run: kept however old
    await store.end_run("weekly-last", ended_at=old, outcome="success", counts={})

    await store.start_run(_run("nightly-last", "nightly", old + timedelta(hours=3)))
    await store.end_run("nightly-last", ended_at=old + timedelta(hours=3), outcome="success", counts={})

    await store.start_run(_run("recent", "monthly", T0 - timedelta(days=1)))
    await store.end_run("recent", ended_at=T0 - timedelta(days=1), outcome="success", counts={})
    await store.start_run(_run("monthly-unended", "monthly", old))  # never ended (crashed): not pruned by age

    await store.put_hold("h-forever", "r", now=old)
    await store.put_hold("h-ended-long-ago", "r", until=old, now=old)
    await store.put_hold("h-ended-recently", "r", until=T0 - timedelta(days=2), now=old)
    await store.put_ack(SCOPE, "ack-old", by="cli", now=old)
    await store.put_ack(SCOPE, "ack-older", by="cli", now=old - timedelta(days=1))

    report = await store.prune(keep_days=400, now=T0)
    assert (report.runs, report.deletions, report.holds, report.acks) == (1, 1, 1, 1)
    runs = {r.run_id for r in await store.list_runs()}
    assert runs == {"old-pending", "old-baseline", "weekly-last", "nightly-last", "recent", "monthly-unended"}
    assert (await store.why("d1")).empty
    assert [r.state for r in (await store.why("p1")).records] == ["pending"]
    assert {h.backup_id for h in await store.list_holds()} == {"h-forever", "h-ended-recently"}
    assert await store.find_ack(SCOPE, "ack-old") is not None  # the latest ack of the scope stays
    assert await store.find_ack(SCOPE, "ack-older") is None
    assert await store.get_baseline(SCOPE) is not None
    assert (await store.prune(keep_days=400, now=T0)).runs == 0


def _run(run_id: str, policy: str, at: datetime) -> RunRecord:
    return RunRecord(run_id, "schedule", (policy,), "host-a", at)


def test_state_errors_carry_the_exit_codes_the_command_line_uses() -> None:
    from ges_retention.errors import GesRetentionError
    from ges_retention.exit_codes import ExitCode
    from ges_retention.state import (
        DaemonLockHeld,
        InvalidStateInput,
        RunLockTimeout,
        StateAuthFailed,
        StateSchemaTooNew,
        StateUnavailable,
    )

    assert StateAuthFailed("x", location="l").exit_code == ExitCode.INVALID
    assert StateSchemaTooNew("x", location="l", found=3, supported=2).exit_code == ExitCode.INVALID
    assert StateUnavailable("x", location="l").exit_code == ExitCode.FAILED
    assert RunLockTimeout("x", location="l", name="p", holder="h:1").exit_code == ExitCode.FAILED
    assert DaemonLockHeld("x", location="l", name="daemon", holder="h:1").exit_code == ExitCode.INVALID
    with pytest.raises(InvalidStateInput) as caught:
        validate_backup_id("a/b")
    assert isinstance(caught.value, GesRetentionError) and caught.value.exit_code == ExitCode.INVALID
