"""The planner against the contract's retention semantics, case by case, with the exact reasons it gives."""

from __future__ import annotations

import random

import pytest
from factories import NO_FLOOR, at, b, earlier, ids, outcome, pol

from ges_retention.backup import Backup
from ges_retention.policy import Policy
from ges_retention.retention import plan, plan_file
from ges_retention.retention_decisions import PlanWarning
from ges_retention.retention_overlap import find_overlaps
from ges_retention.retention_selection import select_backups

NOW = at("2026-12-31T12:00")


# --- bucket rules --------------------------------------------------------------------------------------------


def test_daily_keeps_the_newest_backup_of_each_day() -> None:
    backups = [
        b("a", "2026-11-25T22:00"),
        b("b", "2026-11-25T10:00"),
        b("c", "2026-11-24T10:00"),
        b("d", "2026-11-23T23:59:59"),
        b("e", "2026-11-23T00:00"),
        b("f", "2026-11-22T10:00"),
    ]
    result = plan(backups, pol("keep: {daily: 3}", NO_FLOOR), NOW)

    assert outcome(result) == {
        "a": "keep: daily 1/3 (2026-11-25)",
        "b": "delete: expired",
        "c": "keep: daily 2/3 (2026-11-24)",
        "d": "keep: daily 3/3 (2026-11-23)",
        "e": "delete: expired",
        "f": "delete: expired",
    }


def test_reason_strings_and_their_order_as_in_the_contract() -> None:
    policy = pol("keep: {last: 3, daily: 7, weekly: 4, yearly: unlimited, within: 2d}", NO_FLOOR)
    backups = [b("n1", "2026-11-26T10:00"), b("n2", "2026-11-25T10:00")]

    assert outcome(plan(backups, policy, NOW)) == {
        "n1": "keep: last 1/3; daily 1/7 (2026-11-26); weekly 1/4 (2026-W48); yearly 1/unlimited (2026); within 2d",
        # n2 is the oldest success: weekly and yearly still have slots, so it is kept as the oldest of both.
        "n2": "keep: last 2/3; daily 2/7 (2026-11-25); oldest weekly; oldest yearly; within 2d",
    }


def test_hourly_buckets() -> None:
    backups = [
        b("a", "2026-11-25T10:59:59"),
        b("b", "2026-11-25T10:00"),
        b("c", "2026-11-25T09:30"),
        b("d", "2026-11-25T07:15"),
        b("e", "2026-11-25T07:00"),
    ]
    result = plan(backups, pol("keep: {hourly: 2}", NO_FLOOR), NOW)

    assert outcome(result) == {
        "a": "keep: hourly 1/2 (2026-11-25 10)",
        "b": "delete: expired",
        "c": "keep: hourly 2/2 (2026-11-25 09)",
        "d": "delete: expired",
        "e": "delete: expired",
    }


def test_iso_week_53_and_a_year_whose_iso_year_differs() -> None:
    # 2027-01-01 (Fri) and 2027-01-03 (Sun) are in ISO week 2026-W53, which started on Monday 2026-12-28.
    backups = [
        b("w1", "2027-01-03T10:00"),
        b("w2", "2027-01-01T10:00"),
        b("w3", "2026-12-28T10:00"),
        b("w4", "2026-12-27T10:00"),
        b("w5", "2026-12-20T10:00"),
        b("w6", "2026-12-14T10:00"),
    ]
    result = plan(backups, pol("keep: {weekly: 3, yearly: 3}", NO_FLOOR), at("2027-01-05T00:00"))

    assert outcome(result) == {
        "w1": "keep: weekly 1/3 (2026-W53); yearly 1/3 (2027)",
        "w2": "delete: expired",
        "w3": "keep: yearly 2/3 (2026)",
        "w4": "keep: weekly 2/3 (2026-W52)",
        "w5": "keep: weekly 3/3 (2026-W51)",
        "w6": "keep: oldest yearly",
    }


def test_a_december_day_in_iso_week_one_of_the_next_year() -> None:
    backups = [b("x", "2024-12-30T10:00"), b("y", "2024-12-29T10:00")]
    result = plan(backups, pol("keep: {weekly: 2, yearly: 1}", NO_FLOOR), at("2025-01-05T00:00"))

    assert outcome(result) == {
        "x": "keep: weekly 1/2 (2025-W01); yearly 1/1 (2024)",
        "y": "keep: weekly 2/2 (2024-W52)",
    }


def test_monthly_and_yearly_buckets() -> None:
    backups = [
        b("m1", "2026-12-01T00:00"),
        b("m2", "2026-11-30T23:59"),
        b("m3", "2026-11-01T00:00"),
        b("m4", "2026-10-31T12:00"),
        b("m5", "2025-12-31T23:00"),
        b("m6", "2025-06-15T12:00"),
    ]
    result = plan(backups, pol("keep: {monthly: 3, yearly: 2}", NO_FLOOR), NOW)

    assert outcome(result) == {
        "m1": "keep: monthly 1/3 (2026-12); yearly 1/2 (2026)",
        "m2": "keep: monthly 2/3 (2026-11)",
        "m3": "delete: expired",
        "m4": "keep: monthly 3/3 (2026-10)",
        "m5": "keep: yearly 2/2 (2025)",
        "m6": "delete: expired",
    }


def test_a_backup_spends_a_slot_of_every_rule_that_keeps_it() -> None:
    # `last` keeps d1, and daily keeps d1 as well: daily's two slots go to d1 and d3, so d4 is not reached.
    backups = [
        b("d1", "2026-11-25T10:00"),
        b("d2", "2026-11-25T08:00"),
        b("d3", "2026-11-24T10:00"),
        b("d4", "2026-11-23T10:00"),
    ]
    result = plan(backups, pol("keep: {last: 1, daily: 2}", NO_FLOOR), NOW)

    assert outcome(result) == {
        "d1": "keep: last 1/1; daily 1/2 (2026-11-25)",
        "d2": "delete: expired",
        "d3": "keep: daily 2/2 (2026-11-24)",
        "d4": "delete: expired",
    }


def test_unlimited_keeps_the_newest_of_every_bucket() -> None:
    backups = [
        b("a", "2026-11-25T10:00"),
        b("b", "2026-11-25T08:00"),
        b("c", "2025-02-01T10:00"),
        b("d", "2019-07-01T10:00"),
        b("e", "2019-01-01T10:00"),
    ]
    result = plan(backups, pol("keep: {yearly: unlimited}", NO_FLOOR), NOW)

    assert outcome(result) == {
        "a": "keep: yearly 1/unlimited (2026)",
        "b": "delete: expired",
        "c": "keep: yearly 2/unlimited (2025)",
        "d": "keep: yearly 3/unlimited (2019)",
        # the walk reached the oldest success with slots left: it is kept too
        "e": "keep: oldest yearly",
    }


def test_last_unlimited_keeps_every_success() -> None:
    backups = [b("a", "2026-11-25T10:00"), b("b", "2026-11-25T08:00"), b("c", "2020-01-01T00:00")]
    result = plan(backups, pol("keep: {last: unlimited}", NO_FLOOR), NOW)

    assert outcome(result) == {
        "a": "keep: last 1/unlimited",
        "b": "keep: last 2/unlimited",
        "c": "keep: last 3/unlimited",
    }


def test_last_keeps_the_newest_n_whatever_the_day() -> None:
    backups = [b(f"b{i}", f"2026-11-25T1{i}:00") for i in range(5)]
    result = plan(backups, pol("keep: {last: 3}", NO_FLOOR), NOW)

    assert outcome(result) == {
        "b4": "keep: last 1/3",
        "b3": "keep: last 2/3",
        "b2": "keep: last 3/3",
        "b1": "delete: expired",
        "b0": "delete: expired",
    }


def test_oldest_is_kept_only_while_a_rule_has_slots_left() -> None:
    backups = [
        b("a", "2026-12-10T10:00"),
        b("b", "2026-11-10T10:00"),
        b("c", "2026-10-20T10:00"),
        b("d", "2026-10-10T10:00"),
    ]
    with_slots = plan(backups, pol("keep: {monthly: 12}", NO_FLOOR), NOW)
    without_slots = plan(backups, pol("keep: {monthly: 3}", NO_FLOOR), NOW)
    exactly_used_up = plan(backups, pol("keep: {monthly: 2}", NO_FLOOR), NOW)

    assert outcome(with_slots) == {
        "a": "keep: monthly 1/12 (2026-12)",
        "b": "keep: monthly 2/12 (2026-11)",
        "c": "keep: monthly 3/12 (2026-10)",
        "d": "keep: oldest monthly",
    }
    assert outcome(without_slots)["d"] == "delete: expired"
    assert ids(exactly_used_up.planned) == ["c", "d"]


def test_the_oldest_success_kept_by_its_own_bucket_gets_no_oldest_reason() -> None:
    backups = [b("a", "2026-12-10T10:00"), b("b", "2026-11-10T10:00")]
    assert outcome(plan(backups, pol("keep: {monthly: 12}", NO_FLOOR), NOW)) == {
        "a": "keep: monthly 1/12 (2026-12)",
        "b": "keep: monthly 2/12 (2026-11)",
    }


def test_oldest_reasons_come_after_every_bucket_reason_and_before_within() -> None:
    backups = [b("new", "2026-12-30T10:00"), b("old", "2026-12-30T08:00")]
    policy = pol("keep: {hourly: 1, daily: 5, yearly: 5, within: 1w}", NO_FLOOR)

    assert outcome(plan(backups, policy, NOW))["old"] == "keep: oldest daily; oldest yearly; within 1w"


# --- timezones -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        (
            # 00:30 local on 29 March (CET, before the DST change at 02:00) is still 28 March in UTC.
            "Europe/Berlin",
            {"x": "keep: daily 1/2 (2026-03-29)", "y": "keep: daily 2/2 (2026-03-28)", "z": "delete: expired"},
        ),
        (
            "UTC",
            {"x": "keep: daily 1/2 (2026-03-28)", "y": "delete: expired", "z": "keep: oldest daily"},
        ),
    ],
)
def test_daily_buckets_are_days_of_the_policy_timezone(tz: str, expected: dict[str, str]) -> None:
    backups = [
        b("x", "2026-03-29T00:30", tz="Europe/Berlin"),  # 2026-03-28T23:30Z
        b("y", "2026-03-28T22:00"),  # 23:00 in Berlin
        b("z", "2026-03-28T12:00"),
    ]
    assert outcome(plan(backups, pol("keep: {daily: 2}", f"timezone: {tz}", NO_FLOOR), NOW)) == expected


def test_month_boundary_in_a_timezone_ahead_of_utc() -> None:
    backups = [b("dec", "2026-11-30T23:30"), b("nov", "2026-11-30T22:00")]  # 00:30 and 23:00 in Berlin
    berlin = plan(backups, pol("keep: {monthly: 1}", "timezone: Europe/Berlin", NO_FLOOR), NOW)
    utc = plan(backups, pol("keep: {monthly: 1}", NO_FLOOR), NOW)

    assert outcome(berlin)["dec"] == "keep: monthly 1/1 (2026-12)"
    assert outcome(utc)["dec"] == "keep: monthly 1/1 (2026-11)"


def test_the_repeated_hour_when_dst_ends_is_one_hourly_bucket() -> None:
    # Berlin, 2026-10-25: 02:00-02:59 happens twice (CEST, then CET).
    backups = [
        b("cet", "2026-10-25T01:30"),  # 02:30 CET
        b("cest", "2026-10-25T00:30"),  # 02:30 CEST
        b("one", "2026-10-24T23:30"),  # 01:30 CEST
    ]
    result = plan(backups, pol("keep: {hourly: 5}", "timezone: Europe/Berlin", NO_FLOOR), NOW)

    assert outcome(result) == {
        "cet": "keep: hourly 1/5 (2026-10-25 02)",
        "cest": "delete: expired",
        "one": "keep: hourly 2/5 (2026-10-25 01)",
    }


def test_weekly_buckets_in_a_timezone_behind_utc() -> None:
    # Monday 2026-11-30 02:00 UTC is still Sunday evening in New York: ISO week 48 there, week 49 in UTC.
    backups = [b("mon", "2026-11-30T02:00")]
    ny = plan(backups, pol("keep: {weekly: 1}", "timezone: America/New_York", NO_FLOOR), NOW)
    utc = plan(backups, pol("keep: {weekly: 1}", NO_FLOOR), NOW)

    assert outcome(ny) == {"mon": "keep: weekly 1/1 (2026-W48)"}
    assert outcome(utc) == {"mon": "keep: weekly 1/1 (2026-W49)"}


# --- within and the anchor ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("newest", "boundary"),
    [
        ("2026-03-31T10:00", "2026-02-28T10:00"),  # 31 March minus 1mo is the end of February
        ("2028-03-31T10:00", "2028-02-29T10:00"),  # leap year
        ("2026-05-31T10:00", "2026-04-30T10:00"),
    ],
)
def test_within_months_clamps_to_the_end_of_the_month(newest: str, boundary: str) -> None:
    backups = [b("newest", newest), b("at", boundary), earlier(b("before", boundary))]
    result = plan(backups, pol("keep: {within: 1mo}", NO_FLOOR), at("2028-12-31T00:00"))

    assert outcome(result) == {
        "newest": "keep: within 1mo",
        "at": "keep: within 1mo",
        "before": "delete: expired",
    }


def test_within_is_wall_clock_arithmetic_in_the_policy_timezone() -> None:
    # Newest: Monday 2026-03-30 12:00 CEST (10:00Z). 2d earlier on Berlin's wall clock is 28 March 12:00 CET = 11:00Z:
    # 47 real hours, not 48.
    backups = [b("newest", "2026-03-30T10:00"), b("edge", "2026-03-28T11:00"), b("inside_48h", "2026-03-28T10:30")]
    berlin = plan(backups, pol("keep: {within: 2d}", "timezone: Europe/Berlin", NO_FLOOR), NOW)
    utc = plan(backups, pol("keep: {within: 2d}", NO_FLOOR), NOW)

    assert outcome(berlin) == {
        "newest": "keep: within 2d",
        "edge": "keep: within 2d",
        "inside_48h": "delete: expired",
    }
    assert outcome(utc)["inside_48h"] == "keep: within 2d"


def test_within_hours() -> None:
    backups = [b("a", "2026-11-25T12:00"), b("b", "2026-11-24T00:00"), b("c", "2026-11-23T23:59")]
    assert outcome(plan(backups, pol("keep: {within: 36h}", NO_FLOOR), NOW)) == {
        "a": "keep: within 36h",
        "b": "keep: within 36h",
        "c": "delete: expired",
    }


def test_anchor_newest_measures_from_the_newest_success() -> None:
    backups = [
        b("fail", "2026-12-30T00:00", status="failed"),  # not a success: not the anchor
        b("run", "2026-12-31T00:00", status="backing_up"),
        b("s1", "2026-11-01T10:00"),
        b("s2", "2026-10-30T10:00"),
        b("s3", "2026-10-30T09:59"),
    ]
    result = plan(backups, pol("keep: {within: 2d}", "anchor: newest", NO_FLOOR), NOW)

    assert outcome(result) == {
        "run": "keep: backing_up",
        "fail": "keep: failed: no failed.delete_after",
        "s1": "keep: within 2d",
        "s2": "keep: within 2d",
        "s3": "delete: expired",
    }


def test_anchor_now_measures_from_now() -> None:
    backups = [b("s1", "2026-12-30T12:00"), b("s2", "2026-12-29T12:00"), b("s3", "2026-11-01T10:00")]
    result = plan(backups, pol("keep: {within: 2d}", "anchor: now", NO_FLOOR), NOW)

    assert outcome(result) == {
        "s1": "keep: within 2d",
        "s2": "keep: within 2d",
        "s3": "delete: expired",
    }


def test_anchor_now_may_keep_nothing_by_within_and_min_keep_then_holds_the_floor() -> None:
    backups = [b("s1", "2026-11-01T10:00"), b("s2", "2026-10-31T10:00"), b("s3", "2026-10-30T10:00")]
    no_floor = plan(backups, pol("keep: {within: 2d}", "anchor: now", NO_FLOOR), NOW)
    floor = plan(backups, pol("keep: {within: 2d}", "anchor: now", "safety: {min_keep: 2}"), NOW)
    newest = plan(backups, pol("keep: {within: 2d}", "anchor: newest", NO_FLOOR), NOW)

    assert ids(no_floor.planned) == ["s1", "s2", "s3"]
    assert outcome(floor) == {"s1": "keep: min_keep", "s2": "keep: min_keep", "s3": "delete: expired"}
    assert ids(newest.kept) == ["s1", "s2", "s3"]


# --- pins ------------------------------------------------------------------------------------------------------


def test_pins_keep_without_spending_slots() -> None:
    backups = [b("p", "2026-11-26T10:00"), b("a", "2026-11-25T10:00"), b("c", "2026-11-24T10:00")]
    result = plan(backups, pol("keep: {last: 2, ids: [p]}", NO_FLOOR), NOW)

    # p is pinned AND takes part in `last`; a pin is not a slot, so nothing shifts.
    assert outcome(result) == {
        "p": "keep: pinned id; last 1/2",
        "a": "keep: last 2/2",
        "c": "delete: expired",
    }


def test_a_pinned_backup_still_takes_part_in_buckets() -> None:
    # The golden backup is the newest of its day: it takes the day's bucket, the other backup of the day is not kept.
    backups = [
        b("g", "2026-11-25T12:00", name="weekly-golden"),
        b("a", "2026-11-25T10:00"),
        b("y", "2026-11-24T10:00"),
        b("old", "2026-01-01T10:00", name="release-golden"),
    ]
    result = plan(backups, pol("keep: {daily: 2, names: ['*-golden']}", NO_FLOOR), NOW)

    assert outcome(result) == {
        "g": "keep: pinned name; daily 1/2 (2026-11-25)",
        "a": "delete: expired",
        "y": "keep: daily 2/2 (2026-11-24)",
        "old": "keep: pinned name",
    }


def test_pinned_by_id_and_name_in_that_order() -> None:
    backups = [b("x", "2026-01-01T10:00", name="x-golden"), b("y", "2026-11-01T10:00")]
    result = plan(backups, pol("keep: {last: 1, ids: [x], names: ['*-golden']}", NO_FLOOR), NOW)

    assert outcome(result) == {"y": "keep: last 1/1", "x": "keep: pinned id; pinned name"}


@pytest.mark.parametrize(
    ("globs", "name", "pinned"),
    [
        ('["*-golden", "keep-?"]', "db-golden", True),
        ('["*-golden", "keep-?"]', "keep-1", True),
        ('["*-golden", "keep-?"]', "keep-12", False),
        ('["*-golden", "keep-?"]', "db-golden-2", False),
        ('["[a-c]*", "x.y"]', "b-1", True),
        ('["[a-c]*", "x.y"]', "xzy", False),  # "." is no wildcard in a glob
        ('["[!a-c]*"]', "a-1", False),
        ('["[!a-c]*"]', "d-1", True),
        ('["a|b"]', "a", False),  # the globs are joined into one pattern: "|" inside one stays a character
        ('["a|b"]', "a|b", True),
        ('["Golden"]', "golden", False),  # case-sensitive, like fnmatchcase
        ('["*"]', "", True),
    ],
)
def test_pinned_name_globs_match_like_fnmatchcase(globs: str, name: str, pinned: bool) -> None:
    result = plan(
        [b("x", "2026-11-20T10:00", name=name), b("y", "2026-11-25T10:00")],
        pol(f"keep: {{last: 1, names: {globs}}}", NO_FLOOR),
        NOW,
    )
    assert outcome(result)["x"] == ("keep: pinned name" if pinned else "delete: expired")


def test_planning_leaves_the_garbage_collector_as_it_found_it() -> None:
    import gc

    backups = [b("a", "2026-11-25T10:00"), b("b", "2026-11-24T10:00")]
    policy = pol("keep: {last: 1}", NO_FLOOR)
    assert gc.isenabled()
    plan(backups, policy, NOW)
    assert gc.isenabled()
    gc.disable()
    try:
        plan(backups, policy, NOW)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_pins_keep_failed_and_running_backups_too() -> None:
    backups = [
        b("s", "2026-12-30T10:00"),
        b("f", "2026-01-01T10:00", status="failed"),
        b("r", "2026-01-02T10:00", status="backing_up", name="r-golden"),
    ]
    policy = pol("keep: {last: 1, ids: [f], names: ['*-golden']}", "failed: {delete_after: 1d}", NO_FLOOR)

    assert outcome(plan(backups, policy, NOW)) == {
        "s": "keep: last 1/1",
        "r": "keep: backing_up; pinned name",
        "f": "keep: pinned id",
    }


# --- min_keep -------------------------------------------------------------------------------------------------


def test_min_keep_keeps_the_newest_successes_of_each_group_whatever_the_rules_say() -> None:
    backups = [
        b("a1", "2026-11-25T10:00"),
        b("a2", "2026-11-24T10:00"),
        b("a3", "2026-11-23T10:00"),
        b("a4", "2026-01-01T10:00", name="a4-golden"),
        b("b1", "2026-10-01T10:00", graph="g2"),
        b("b2", "2026-09-01T10:00", graph="g2"),
    ]
    result = plan(backups, pol("keep: {names: ['*-golden']}", "safety: {min_keep: 2}"), NOW)

    assert outcome(result) == {
        "a1": "keep: min_keep",
        "a2": "keep: min_keep",
        "a3": "delete: expired",
        "a4": "keep: pinned name",
        "b1": "keep: min_keep",
        "b2": "keep: min_keep",
    }


def test_min_keep_adds_no_reason_to_a_backup_a_rule_keeps() -> None:
    backups = [b("a", "2026-11-25T10:00"), b("b", "2026-11-24T10:00"), b("c", "2026-11-23T10:00")]
    result = plan(backups, pol("keep: {last: 1}", "safety: {min_keep: 2}"), NOW)

    assert outcome(result) == {"a": "keep: last 1/1", "b": "keep: min_keep", "c": "delete: expired"}


def test_min_keep_default_is_one() -> None:
    backups = [b("a", "2026-01-25T10:00"), b("b", "2026-01-24T10:00")]
    result = plan(backups, pol("keep: {within: 1d}", "anchor: now"), NOW)

    assert outcome(result) == {"a": "keep: min_keep", "b": "delete: expired"}


def test_min_keep_larger_than_the_group_keeps_all_of_it() -> None:
    backups = [b("a", "2026-01-25T10:00"), b("b", "2026-01-24T10:00")]
    result = plan(backups, pol("keep: {within: 1d}", "anchor: now", "safety: {min_keep: 5}"), NOW)

    assert result.planned == []


def test_min_keep_counts_only_successes() -> None:
    backups = [
        b("r", "2026-12-31T11:00", status="backing_up"),
        b("f", "2026-12-31T10:00", status="failed"),
        b("s", "2026-01-01T10:00"),
        b("t", "2025-01-01T10:00"),
    ]
    result = plan(backups, pol("keep: {within: 1d}", "anchor: now"), NOW)

    assert outcome(result)["s"] == "keep: min_keep"
    assert outcome(result)["t"] == "delete: expired"


# --- statuses and the future -----------------------------------------------------------------------------------


def test_a_backup_more_than_five_minutes_ahead_is_future_and_takes_no_part() -> None:
    now = at("2026-11-30T12:00")
    backups = [
        b("f1", "2026-11-30T12:05:00.001"),
        b("f2", "2026-12-25T00:00", status="failed"),
        b("edge", "2026-11-30T12:05"),  # exactly 5 minutes ahead: not "more than"
        b("s1", "2026-11-30T08:00"),
        b("s2", "2026-11-29T08:00"),
        b("s3", "2026-11-28T08:00"),
    ]
    result = plan(backups, pol("keep: {last: 1, within: 1d}", "safety: {min_keep: 2}"), now)

    assert outcome(result) == {
        "f2": "keep: future",
        "f1": "keep: future",
        # the anchor is `edge`, not f1: within 1d reaches back to 2026-11-29T12:05
        "edge": "keep: last 1/1; within 1d",
        "s1": "keep: within 1d",
        "s2": "delete: expired",
        "s3": "delete: expired",
    }
    assert sorted((w.kind, w.backup_id) for w in result.warnings) == [("future", "f1"), ("future", "f2")]


def test_a_future_backup_is_not_counted_for_min_keep() -> None:
    now = at("2026-11-30T12:00")
    backups = [b("f", "2026-12-01T00:00"), b("s1", "2026-11-01T00:00"), b("s2", "2026-10-01T00:00")]
    result = plan(backups, pol("keep: {within: 1h}", "anchor: now", "safety: {min_keep: 1}"), now)

    assert outcome(result) == {"f": "keep: future", "s1": "keep: min_keep", "s2": "delete: expired"}


def test_backing_up_is_never_deleted_nor_counted() -> None:
    backups = [
        b("run", "2026-11-26T10:00", status="backing_up"),
        b("old_run", "2020-01-01T10:00", status="backing_up"),
        b("s1", "2026-11-25T10:00"),
        b("s2", "2026-11-24T10:00"),
    ]
    result = plan(backups, pol("keep: {last: 1}", NO_FLOOR), NOW)

    assert outcome(result) == {
        "run": "keep: backing_up",
        "s1": "keep: last 1/1",
        "s2": "delete: expired",
        "old_run": "keep: backing_up",
    }


def test_an_unknown_status_is_kept_with_a_warning() -> None:
    backups = [b("q", "2020-01-01T10:00", status="queued"), b("s", "2026-11-25T10:00")]
    result = plan(backups, pol("keep: {last: 1}", NO_FLOOR), NOW)

    assert outcome(result) == {"s": "keep: last 1/1", "q": "keep: unknown status 'queued'"}
    assert result.warnings == (PlanWarning("unknown_status", "q", "queued"),)


# --- failed backups --------------------------------------------------------------------------------------------


def test_failed_backups_are_deleted_only_after_delete_after_and_with_a_newer_success() -> None:
    now = at("2026-11-30T12:00")
    backups = [
        b("young", "2026-11-28T12:00", status="failed"),
        b("edge", "2026-11-27T12:00", status="failed"),  # exactly 3d old: not older than 3d
        b("s", "2026-11-25T12:00"),
        b("old", "2026-11-20T12:00", status="failed"),
        # graph g2: its only success is older than its failed backup
        b("s_g2", "2026-11-01T12:00", graph="g2"),
        b("old_g2", "2026-11-02T12:00", status="failed", graph="g2"),
        # graph g3: no success at all
        b("old_g3", "2026-11-02T12:00", status="failed", graph="g3"),
    ]
    result = plan(backups, pol("keep: {last: 5}", "failed: {delete_after: 3d}", NO_FLOOR), now)

    assert outcome(result) == {
        "young": "keep: failed: younger than 3d",
        "edge": "keep: failed: younger than 3d",
        "s": "keep: last 1/5",
        "old": "delete: failed",
        "old_g2": "keep: failed: no newer success",
        "s_g2": "keep: last 1/5",
        "old_g3": "keep: failed: no newer success",
    }


def test_failed_one_millisecond_past_delete_after_is_deleted() -> None:
    now = at("2026-11-30T12:00")
    just_past = earlier(b("f", "2026-11-27T12:00", status="failed"))
    result = plan([just_past, b("s", "2026-11-29T12:00")], pol("keep: {last: 1}", "failed: {delete_after: 3d}"), now)

    assert outcome(result)["f"] == "delete: failed"


def test_failed_backups_are_never_deleted_without_delete_after() -> None:
    backups = [b("f", "2020-01-01T10:00", status="failed"), b("s", "2026-11-25T10:00")]
    result = plan(backups, pol("keep: {last: 1}", NO_FLOOR), NOW)

    assert outcome(result) == {"s": "keep: last 1/1", "f": "keep: failed: no failed.delete_after"}


def test_a_success_at_the_same_instant_is_not_newer() -> None:
    backups = [b("f", "2026-01-01T10:00", status="failed"), b("s", "2026-01-01T10:00")]
    result = plan(backups, pol("keep: {last: 1}", "failed: {delete_after: 1d}", NO_FLOOR), NOW)

    assert outcome(result)["f"] == "keep: failed: no newer success"


def test_a_newer_success_must_be_in_the_same_group() -> None:
    backups = [
        b("f", "2026-01-01T10:00", status="failed", method="manual"),
        b("s", "2026-06-01T10:00", method="auto"),
    ]
    by_graph = plan(backups, pol("keep: {last: 1}", "failed: {delete_after: 1d}"), NOW)
    by_method = plan(backups, pol("keep: {last: 1}", "failed: {delete_after: 1d}", "group_by: graph_and_method"), NOW)

    assert outcome(by_graph)["f"] == "delete: failed"
    assert outcome(by_method)["f"] == "keep: failed: no newer success"


def test_a_future_success_is_not_a_newer_success() -> None:
    now = at("2026-11-30T12:00")
    backups = [b("f", "2026-01-01T10:00", status="failed"), b("later", "2027-01-01T10:00")]
    result = plan(backups, pol("keep: {last: 1}", "failed: {delete_after: 1d}"), now)

    assert outcome(result) == {"later": "keep: future", "f": "keep: failed: no newer success"}


def test_delete_after_is_calendar_arithmetic_from_now_in_the_timezone() -> None:
    # now: 2026-03-31T10:00 Berlin (CEST). 1mo earlier on the wall clock: 2026-02-28T10:00 CET = 09:00Z.
    now = at("2026-03-31T10:00", "Europe/Berlin")
    backups = [
        b("s", "2026-03-30T10:00"),
        b("kept", "2026-02-28T09:00", status="failed"),
        earlier(b("gone", "2026-02-28T09:00", status="failed")),
    ]
    policy = pol("keep: {last: 1}", "timezone: Europe/Berlin", "failed: {delete_after: 1mo}", NO_FLOOR)
    result = plan(backups, policy, now)

    assert outcome(result) == {
        "s": "keep: last 1/1",
        "kept": "keep: failed: younger than 1mo",
        "gone": "delete: failed",
    }


# --- groups and selection ---------------------------------------------------------------------------------------


def test_group_by_graph_or_by_graph_and_method() -> None:
    backups = [
        b("auto1", "2026-11-25T10:00", method="auto"),
        b("manual1", "2026-11-24T10:00", method="manual"),
        b("auto2", "2026-11-23T10:00", method="auto"),
        b("other", "2026-11-01T10:00", graph="g2", method="manual"),
    ]
    by_graph = plan(backups, pol("keep: {last: 1}", NO_FLOOR), NOW)
    by_method = plan(backups, pol("keep: {last: 1}", "group_by: graph_and_method", NO_FLOOR), NOW)

    assert outcome(by_graph) == {
        "auto1": "keep: last 1/1",
        "manual1": "delete: expired",
        "auto2": "delete: expired",
        "other": "keep: last 1/1",
    }
    assert outcome(by_method) == {
        "auto1": "keep: last 1/1",
        "manual1": "keep: last 1/1",
        "auto2": "delete: expired",
        "other": "keep: last 1/1",
    }


def test_min_keep_holds_per_method_group() -> None:
    backups = [b("a", "2026-01-02T00:00", method="auto"), b("m", "2026-01-01T00:00", method="manual")]
    result = plan(backups, pol("keep: {within: 1h}", "anchor: now", "group_by: graph_and_method"), NOW)

    assert outcome(result) == {"a": "keep: min_keep", "m": "keep: min_keep"}


SELECTION = [
    b("p1", "2026-11-25T10:00", graph="id-prod-1", graph_name="prod-orders"),
    b("p2", "2026-11-25T10:00", graph="id-prod-2", graph_name="prod-scratch"),
    b("s1", "2026-11-25T10:00", graph="id-stage", graph_name="stage-orders"),
    b("d1", "2026-11-25T10:00", graph="id-deleted", graph_name=""),  # graph deleted: no name any more
    b("imp", "2026-11-25T09:00", graph="id-prod-1", graph_name="prod-orders", method="import"),
    b("man", "2026-11-25T08:00", graph="id-prod-1", graph_name="prod-orders", method="manual", name="manual-x"),
]


@pytest.mark.parametrize(
    ("select", "selected"),
    [
        ("{}", ["p1", "p2", "s1", "d1", "imp", "man"]),
        ("{graphs: ['prod-*']}", ["p1", "p2", "imp", "man"]),
        ("{graphs: ['prod-*'], exclude_graphs: [prod-scratch]}", ["p1", "imp", "man"]),
        # d1's graph name is unknown: any exclude entry excludes it (fail closed; an id cannot be told from a name).
        ("{graphs: ['*'], exclude_graphs: [id-prod-1]}", ["p2", "s1"]),
        ("{graphs: [id-deleted, stage-orders]}", ["s1", "d1"]),
        ("{graphs: ['id-prod-*']}", []),  # ids are matched exactly, never as globs
        ("{backup_methods: [auto, manual]}", ["p1", "p2", "s1", "d1", "man"]),
        ("{backup_methods: [import]}", ["imp"]),
        ("{names: ['manual-*']}", ["man"]),
        ("{graphs: ['prod-?rders'], names: ['p*', 'i*']}", ["p1", "imp"]),
        ("{graphs: ['PROD-*']}", []),  # case-sensitive
    ],
)
def test_select(select: str, selected: list[str]) -> None:
    policy = pol("keep: {last: 1}", f"select: {select}")
    assert ids_of(select_backups(SELECTION, policy)) == selected
    assert sorted(ids(plan(SELECTION, policy, NOW).decisions)) == sorted(selected)


def ids_of(backups: list[Backup]) -> list[str]:
    return [backup.id for backup in backups]


# --- ordering and determinism -----------------------------------------------------------------------------------


def test_decisions_are_ordered_by_graph_then_newest_first_then_id() -> None:
    backups = [
        b("z", "2026-11-25T10:00", graph="g2"),
        b("c", "2026-11-25T10:00", graph="g1"),
        b("a", "2026-11-25T10:00", graph="g1"),
        b("f", "2026-11-26T10:00", graph="g1", status="failed"),
        b("old", "2026-11-01T10:00", graph="g1"),
        b("run", "2026-11-20T10:00", graph="g1", status="backing_up"),
        b("b", "2026-11-25T10:00", graph="g1", method="manual"),
        b("y", "2026-12-01T10:00", graph="g2"),
    ]
    policy = pol("keep: {last: 1}", "group_by: graph_and_method", NO_FLOOR)
    expected = ["f", "a", "b", "c", "run", "old", "y", "z"]

    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(backups)
        result = plan(backups, policy, NOW)
        assert ids(result.decisions) == expected


def test_equal_timestamps_are_walked_in_id_order() -> None:
    backups = [b("b", "2026-11-25T10:00"), b("a", "2026-11-25T10:00"), b("c", "2026-11-25T10:00")]
    result = plan(backups, pol("keep: {last: 1, daily: 1}", NO_FLOOR), NOW)

    assert outcome(result) == {
        "a": "keep: last 1/1; daily 1/1 (2026-11-25)",
        "b": "delete: expired",
        "c": "delete: expired",
    }


def test_plan_metadata() -> None:
    result = plan([b("a", "2026-11-25T10:00")], pol("keep: {last: 1}", name="nightly", project="proj9"), NOW)

    assert (result.policy, result.project_id, result.max_deletes, result.safety_stop) == (
        "nightly",
        "proj9",
        100,
        False,
    )


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        plan([], pol("keep: {last: 1}"), NOW.replace(tzinfo=None))


def test_nothing_selected_is_an_empty_plan() -> None:
    result = plan([], pol("keep: {last: 1}"), NOW)
    assert (result.decisions, result.safety_stop, result.warnings) == ((), False, ())


# --- safety -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_deletes", "stop"), [(0, True), (2, True), (3, False), (100, False)])
def test_safety_stop_when_the_plan_deletes_more_than_max_deletes(max_deletes: int, stop: bool) -> None:
    backups = [b(f"s{i}", f"2026-11-2{i}T10:00") for i in range(5)]
    result = plan(backups, pol("keep: {last: 2}", f"safety: {{max_deletes: {max_deletes}, min_keep: 0}}"), NOW)

    assert ids(result.planned) == ["s2", "s1", "s0"]
    assert result.safety_stop is stop
    assert result.max_deletes == max_deletes
    assert ids(result.deletions) == ([] if stop else ["s2", "s1", "s0"])
    # the decisions still show what was planned
    assert [d.action for d in result.decisions] == ["keep", "keep", "delete", "delete", "delete"]


def test_no_safety_stop_without_deletions_even_at_zero() -> None:
    result = plan([b("a", "2026-11-25T10:00")], pol("keep: {last: 1}", "safety: {max_deletes: 0}"), NOW)
    assert (result.safety_stop, result.deletions) == (False, [])


# --- overlap over the whole file ----------------------------------------------------------------------------------


def two_policies(project_b: str = "proj1") -> tuple[Policy, Policy]:
    a = pol("keep: {last: 1}", "select: {graphs: ['prod-*']}", NO_FLOOR, name="a")
    b_ = pol("keep: {last: 2}", "select: {graphs: ['*-orders']}", NO_FLOOR, name="b", project=project_b)
    return a, b_


OVERLAP_BACKUPS = [
    b("o1", "2026-11-25T10:00", graph="g1", graph_name="prod-orders"),
    b("o2", "2026-11-24T10:00", graph="g1", graph_name="prod-orders"),
    b("o3", "2026-11-23T10:00", graph="g1", graph_name="prod-orders"),
    b("x1", "2026-11-25T10:00", graph="g2", graph_name="prod-users"),
    b("x2", "2026-11-24T10:00", graph="g2", graph_name="prod-users"),
]


def test_a_backup_selected_by_two_policies_is_never_deleted_even_if_only_one_is_planned() -> None:
    a, b_ = two_policies()
    (result,) = plan_file([a, b_], [a], lambda project: OVERLAP_BACKUPS, NOW)

    assert result.policy == "a"
    assert outcome(result) == {
        "o1": "keep: last 1/1; overlap: a, b",
        "o2": "keep: overlap: a, b",
        "o3": "keep: overlap: a, b",
        "x1": "keep: last 1/1",
        "x2": "delete: expired",
    }
    assert [w for w in result.warnings if w.kind == "policy_overlap"] == [
        PlanWarning("policy_overlap", "o1", "a, b"),
        PlanWarning("policy_overlap", "o2", "a, b"),
        PlanWarning("policy_overlap", "o3", "a, b"),
    ]


def test_overlap_is_reported_by_both_policies() -> None:
    a, b_ = two_policies()
    plan_a, plan_b = plan_file([a, b_], [a, b_], lambda project: OVERLAP_BACKUPS, NOW)

    assert outcome(plan_b) == {
        "o1": "keep: last 1/2; overlap: a, b",
        "o2": "keep: last 2/2; overlap: a, b",
        "o3": "keep: overlap: a, b",
    }
    assert plan_a.planned == plan_file([a, b_], [a], lambda project: OVERLAP_BACKUPS, NOW)[0].planned


def test_policies_on_different_projects_do_not_overlap() -> None:
    a, b_ = two_policies(project_b="proj2")
    asked: list[str] = []

    def backups_of(project: str) -> list[Backup]:
        asked.append(project)
        return OVERLAP_BACKUPS

    plan_a, plan_b = plan_file([a, b_], [a, b_], backups_of, NOW)

    assert sorted(asked) == ["proj1", "proj2"]
    assert ids(plan_a.planned) == ["o2", "o3", "x2"]
    assert ids(plan_b.planned) == ["o3"]
    assert not [w for w in (*plan_a.warnings, *plan_b.warnings) if w.kind == "policy_overlap"]


def test_overlap_names_every_policy_that_selects_the_backup_sorted() -> None:
    c = pol("keep: {last: 1}", name="c")
    a, b_ = two_policies()
    overlaps = find_overlaps(OVERLAP_BACKUPS, [c, b_, a])

    assert overlaps == {
        "o1": ("a", "b", "c"),
        "o2": ("a", "b", "c"),
        "o3": ("a", "b", "c"),
        "x1": ("a", "c"),
        "x2": ("a", "c"),
    }


def test_overlap_also_holds_back_failed_deletions_and_counts_for_the_safety_stop() -> None:
    a = pol("keep: {last: 1}", "failed: {delete_after: 1d}", "safety: {min_keep: 0, max_deletes: 0}", name="a")
    other = pol("keep: {last: 1}", "select: {graphs: [g-shared]}", name="other")
    backups = [b("s", "2026-11-25T10:00"), b("f", "2026-11-01T10:00", status="failed", graph="g-shared")]
    backups.append(b("s2", "2026-11-25T10:00", graph="g-shared"))

    (result,) = plan_file([a, other], [a], lambda project: backups, NOW)

    assert outcome(result) == {
        "s": "keep: last 1/1",
        "s2": "keep: last 1/1; overlap: a, other",
        "f": "keep: overlap: a, other",
    }
    assert result.safety_stop is False


# --- the bucket rules are one table -----------------------------------------------------------------------------


def test_the_bucket_table_names_the_keep_counts_and_writes_the_contract_labels() -> None:
    from datetime import datetime as _dt

    from ges_retention.policy import BUCKET_RULES, Keep
    from ges_retention.retention_buckets import BUCKETS

    assert tuple(BUCKETS) == BUCKET_RULES and set(BUCKET_RULES) <= set(Keep.model_fields)
    # 2027-01-01 is in ISO week 53 of 2026: the weekly key is the ISO year's.
    local = _dt(2027, 1, 1, 7, 30)
    labels = {rule: bucket.label(*bucket.key(local)) for rule, bucket in BUCKETS.items()}
    assert labels == {
        "hourly": "2027-01-01 07",
        "daily": "2027-01-01",
        "weekly": "2026-W53",
        "monthly": "2027-01",
        "yearly": "2027",
    }
