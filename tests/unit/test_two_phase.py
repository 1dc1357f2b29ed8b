"""Two-phase deletion, the pure part: due or not (and when), which pending rows are cancelled or gone."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from factories import NO_FLOOR, at, b, pol

from ges_retention.durations import Duration
from ges_retention.retention import plan
from ges_retention.two_phase import NOT_SELECTED, Clock, two_phase

NOW = at("2026-11-27T12:00")
UTC_TZ = ZoneInfo("UTC")
BACKUPS = [b("new", "2026-11-27T01:00"), b("old1", "2026-11-20T01:00"), b("old2", "2026-11-19T01:00")]
POLICY = pol("keep: {last: 1}", "safety: {min_keep: 0, confirm_after: 2d}")


def test_without_confirm_after_every_planned_deletion_is_due_now() -> None:
    result = two_phase(plan(BACKUPS, POLICY, NOW), {}, None, NOW, UTC_TZ)
    assert [d.backup.id for d in result.due] == ["old1", "old2"]
    assert result.waiting == ()
    assert result.clock("old1") == Clock(None, None, True)


def test_a_deletion_without_a_pending_row_waits_and_is_due_confirm_after_from_now() -> None:
    result = two_phase(plan(BACKUPS, POLICY, NOW), {}, Duration(days=2), NOW, UTC_TZ)
    assert result.due == ()
    assert result.pending_ids == ["old1", "old2"]
    assert result.clock("old1") == Clock(None, NOW + timedelta(days=2), False)


def test_a_pending_row_old_enough_is_due_and_a_younger_one_is_not() -> None:
    since = {"old1": NOW - timedelta(days=2), "old2": NOW - timedelta(days=2) + timedelta(seconds=1)}
    result = two_phase(plan(BACKUPS, POLICY, NOW), since, Duration(days=2), NOW, UTC_TZ)
    assert [d.backup.id for d in result.due] == ["old1"]
    assert result.clock("old1") == Clock(since["old1"], NOW, True)
    assert result.clock("old2") == Clock(since["old2"], NOW + timedelta(seconds=1), False)


def test_the_due_time_is_calendar_arithmetic_in_the_policys_timezone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    since = at("2026-03-28T12:00", "Europe/Berlin")  # the clocks go forward in the night of 28/29 March
    result = two_phase(plan(BACKUPS, POLICY, NOW), {"old1": since}, Duration(days=1), since, berlin)
    due_at = result.clock("old1").due_at
    assert due_at == at("2026-03-29T12:00", "Europe/Berlin")
    assert due_at - since == timedelta(hours=23)


def test_max_deletes_counts_the_whole_plan_due_or_not() -> None:
    policy = pol("keep: {last: 1}", "safety: {min_keep: 0, max_deletes: 1, confirm_after: 2d}")
    decided = plan(BACKUPS, policy, NOW)
    assert decided.safety_stop
    assert len(two_phase(decided, {}, Duration(days=2), NOW, UTC_TZ).waiting) == 2  # reported, acted on by nobody


def test_pending_rows_of_kept_held_or_unselected_backups_are_cancelled_with_reasons() -> None:
    kept_policy = pol("keep: {last: 2}", NO_FLOOR, "select: {names: ['n*', 'old*']}")
    backups = [*BACKUPS, b("other", "2026-11-10T01:00")]
    decided = plan(backups, kept_policy, NOW, {"old2": _Hold("case 7")})
    since = {bid: NOW - timedelta(days=1) for bid in ("old1", "old2", "other")}
    result = two_phase(decided, since, Duration(days=2), NOW, UTC_TZ, listed_ids={b.id for b in backups})
    assert result.cancel == {"old1": ("last 2/2",), "old2": ("held: case 7",), "other": (NOT_SELECTED,)}
    assert result.gone == ()


def test_pending_rows_of_backups_absent_from_the_listing_are_gone() -> None:
    since = {"old1": NOW - timedelta(hours=1), "vanished": NOW - timedelta(hours=1)}
    result = two_phase(plan(BACKUPS, POLICY, NOW), since, Duration(days=2), NOW, UTC_TZ, listed_ids={"new", "old1"})
    assert result.gone == ("vanished",)
    assert result.cancel == {}  # old1 is still planned: its clock goes on


def test_without_a_listing_no_row_is_closed() -> None:
    since = {"vanished": NOW - timedelta(hours=1)}
    result = two_phase(plan(BACKUPS, POLICY, NOW), since, Duration(days=2), NOW, UTC_TZ)
    assert (result.cancel, result.gone) == ({}, ())


class _Hold:
    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.until = None
