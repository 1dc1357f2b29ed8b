"""crontab(5) schedules, translated for APScheduler: checked by the fire times APScheduler computes from them.

APScheduler's own `day_of_week` numbers Monday as 0 and ANDs day-of-month with day-of-week; crontab(5) has 0 and 7 =
Sunday and fires when EITHER restricted day field matches. The translation must make APScheduler fire exactly when
cron would.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger

from ges_retention.cron import CronError, CronSchedule

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
# A Wednesday.
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC_ZONE)


def trigger(expression: str, tz: ZoneInfo) -> BaseTrigger:
    """The trigger the daemon schedules with."""
    return CronSchedule.parse(expression).trigger(tz)


def fire_times_utc(expression: str, tz: ZoneInfo, start: datetime, count: int) -> list[str]:
    """Fire times as APScheduler asks for them: `now` just after the previous fire time, in UTC."""
    trig = trigger(expression, tz)
    out: list[str] = []
    previous: datetime | None = None
    now = start
    for _ in range(count):
        fire = trig.get_next_fire_time(previous, now)
        assert fire is not None
        out.append(fire.astimezone(UTC_ZONE).strftime("%Y-%m-%d %H:%M"))
        previous, now = fire, fire.astimezone(UTC_ZONE) + timedelta(microseconds=1)
    return out


def fire_times(expression: str, count: int, *, tz: ZoneInfo = UTC_ZONE, start: datetime = START) -> list[str]:
    """The next `count` fire times from `start` (inclusive), as local `Day YYYY-MM-DD HH:MM`."""
    trig = trigger(expression, tz)
    out: list[str] = []
    previous: datetime | None = None
    now = start.astimezone(tz)
    for _ in range(count):
        fire = trig.get_next_fire_time(previous, now)
        assert fire is not None
        out.append(fire.astimezone(tz).strftime("%a %Y-%m-%d %H:%M"))
        previous = now = fire
    return out


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # 0 and 7 are both Sunday; APScheduler's own numbering would make 0 a Monday.
        ("0 3 * * 0", ["Sun 2026-11-29 03:00", "Sun 2026-12-06 03:00", "Sun 2026-12-13 03:00"]),
        ("0 3 * * 7", ["Sun 2026-11-29 03:00", "Sun 2026-12-06 03:00", "Sun 2026-12-13 03:00"]),
        ("0 3 * * sun", ["Sun 2026-11-29 03:00", "Sun 2026-12-06 03:00", "Sun 2026-12-13 03:00"]),
        ("0 3 * * SUN", ["Sun 2026-11-29 03:00", "Sun 2026-12-06 03:00", "Sun 2026-12-13 03:00"]),
        ("0 3 * * 6", ["Sat 2026-11-28 03:00", "Sat 2026-12-05 03:00", "Sat 2026-12-12 03:00"]),
        (
            "0 3 * * 1-5",
            ["Thu 2026-11-26 03:00", "Fri 2026-11-27 03:00", "Mon 2026-11-30 03:00", "Tue 2026-12-01 03:00"],
        ),
        (
            "0 3 * * mon-fri",
            ["Thu 2026-11-26 03:00", "Fri 2026-11-27 03:00", "Mon 2026-11-30 03:00", "Tue 2026-12-01 03:00"],
        ),
        ("0 3 * * 5-7", ["Fri 2026-11-27 03:00", "Sat 2026-11-28 03:00", "Sun 2026-11-29 03:00"]),
        ("0 3 * * 0,3", ["Sun 2026-11-29 03:00", "Wed 2026-12-02 03:00", "Sun 2026-12-06 03:00"]),
        # Both day fields restricted: either one matching is enough (the 1st, and every Monday).
        (
            "0 0 1 * mon",
            ["Mon 2026-11-30 00:00", "Tue 2026-12-01 00:00", "Mon 2026-12-07 00:00", "Mon 2026-12-14 00:00"],
        ),
        (
            "0 0 13 * fri",
            ["Fri 2026-11-27 00:00", "Fri 2026-12-04 00:00", "Fri 2026-12-11 00:00", "Sun 2026-12-13 00:00"],
        ),
        # A day field starting with `*` is not "restricted" in crontab(5): both must match (odd days AND Monday).
        ("0 0 */2 * mon", ["Mon 2026-12-07 00:00", "Mon 2026-12-21 00:00", "Mon 2027-01-11 00:00"]),
        ("*/15 * * * *", ["Wed 2026-11-25 12:00", "Wed 2026-11-25 12:15", "Wed 2026-11-25 12:30"]),
        ("5/20 * * * *", ["Wed 2026-11-25 12:05", "Wed 2026-11-25 12:25", "Wed 2026-11-25 12:45"]),
        ("30 2 * * *", ["Thu 2026-11-26 02:30", "Fri 2026-11-27 02:30", "Sat 2026-11-28 02:30"]),
        ("0 9-17/4 * * *", ["Wed 2026-11-25 13:00", "Wed 2026-11-25 17:00", "Thu 2026-11-26 09:00"]),
        ("0 0 31 * *", ["Thu 2026-12-31 00:00", "Sun 2027-01-31 00:00", "Wed 2027-03-31 00:00"]),
        ("0 0 1 jan,jul *", ["Fri 2027-01-01 00:00", "Thu 2027-07-01 00:00", "Sat 2028-01-01 00:00"]),
        ("@hourly", ["Wed 2026-11-25 12:00", "Wed 2026-11-25 13:00"]),  # the start itself counts
        ("@daily", ["Thu 2026-11-26 00:00", "Fri 2026-11-27 00:00"]),
        ("@midnight", ["Thu 2026-11-26 00:00", "Fri 2026-11-27 00:00"]),
        ("@weekly", ["Sun 2026-11-29 00:00", "Sun 2026-12-06 00:00"]),
        ("@monthly", ["Tue 2026-12-01 00:00", "Fri 2027-01-01 00:00"]),
        ("@yearly", ["Fri 2027-01-01 00:00", "Sat 2028-01-01 00:00"]),
        ("@annually", ["Fri 2027-01-01 00:00", "Sat 2028-01-01 00:00"]),
        ("@WEEKLY", ["Sun 2026-11-29 00:00", "Sun 2026-12-06 00:00"]),
    ],
)
def test_fire_times_follow_crontab(expression: str, expected: list[str]) -> None:
    assert fire_times(expression, len(expected)) == expected


def test_fire_times_are_on_the_wall_clock_of_the_timezone_across_dst() -> None:
    # Berlin leaves DST on Sunday 2026-10-25: the Sunday 03:00 run stays at 03:00 local time.
    start = datetime(2026, 10, 17, 0, 0, tzinfo=BERLIN)
    assert fire_times("0 3 * * 0", 3, tz=BERLIN, start=start) == [
        "Sun 2026-10-18 03:00",
        "Sun 2026-10-25 03:00",
        "Sun 2026-11-01 03:00",
    ]
    fires = [trigger("0 3 * * 7", BERLIN).get_next_fire_time(None, start.replace(day=day)) for day in (17, 19)]
    assert [f.utcoffset() for f in fires if f is not None] == [timedelta(hours=2), timedelta(hours=1)]


# --- against an independent matcher ---------------------------------------------------------------------------


def cron_matches(
    when: datetime,
    minutes: Iterable[int],
    hours: Iterable[int],
    days: Iterable[int] | None,
    months: Iterable[int],
    weekdays: Iterable[int] | None,
    *,
    either: bool,
) -> bool:
    """crontab(5) for written-out field sets; weekday 0 = Sunday; None = `*`."""
    cron_weekday = when.isoweekday() % 7
    day_ok = days is None or when.day in set(days)
    weekday_ok = weekdays is None or cron_weekday in set(weekdays)
    days_ok = (day_ok or weekday_ok) if either else (day_ok and weekday_ok)
    return when.minute in set(minutes) and when.hour in set(hours) and when.month in set(months) and days_ok


ALL_MONTHS = range(1, 13)


@pytest.mark.parametrize(
    ("expression", "fields", "either"),
    [
        ("0 3 * * 0", ([0], [3], None, ALL_MONTHS, [0]), False),
        ("15 4 * * 7", ([15], [4], None, ALL_MONTHS, [0]), False),
        ("0 3 * * 1-5", ([0], [3], None, ALL_MONTHS, [1, 2, 3, 4, 5]), False),
        ("0 3 * * sat,sun", ([0], [3], None, ALL_MONTHS, [6, 0]), False),
        ("0 6 * * 6-7", ([0], [6], None, ALL_MONTHS, [6, 0]), False),
        ("0 0 1 * mon", ([0], [0], [1], ALL_MONTHS, [1]), True),
        ("0 12 1,15 * 5-7", ([0], [12], [1, 15], ALL_MONTHS, [5, 6, 0]), True),
        ("0 0 */2 * mon", ([0], [0], range(1, 32, 2), ALL_MONTHS, [1]), False),
        ("0 0 1-10 * */3", ([0], [0], range(1, 11), ALL_MONTHS, [0, 3, 6]), False),
        ("30 1 * feb-mar tue", ([30], [1], None, [2, 3], [2]), False),
        ("0 */6 10 * *", ([0], [0, 6, 12, 18], [10], ALL_MONTHS, None), False),
    ],
)
def test_fire_times_match_an_independent_crontab_matcher(
    expression: str, fields: tuple[Any, ...], either: bool
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC_ZONE)
    end = start + timedelta(days=120)
    minutes, hours, days, months, weekdays = fields
    expected = []
    day = start
    while day < end:
        for hour in sorted(set(hours)):
            for minute in sorted(set(minutes)):
                when = day.replace(hour=hour, minute=minute)
                if cron_matches(when, minutes, hours, days, months, weekdays, either=either):
                    expected.append(when)
        day += timedelta(days=1)

    trig = trigger(expression, UTC_ZONE)
    actual = []
    previous: datetime | None = None
    now = start
    while True:
        fire = trig.get_next_fire_time(previous, now)
        if fire is None or fire >= end:
            break
        actual.append(fire)
        previous = now = fire

    assert expected, "the window must contain fire times"
    assert actual == expected


# --- parsing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "weekdays", "days"),
    [
        ("0 3 * * 0", {0}, None),
        ("0 3 * * 7", {0}, None),
        ("0 3 * * 0,7", {0}, None),
        ("0 3 * * 1-5", {1, 2, 3, 4, 5}, None),
        ("0 3 * * sun", {0}, None),
        ("0 3 * * Sat", {6}, None),
        ("0 3 * * 5-7", {5, 6, 0}, None),
        ("0 3 * * */2", {0, 2, 4, 6}, None),
        ("0 3 1,15 * *", None, {1, 15}),
        ("0 3 * * *", None, None),
    ],
)
def test_parsed_day_fields_use_crontab_numbering(
    expression: str, weekdays: set[int] | None, days: set[int] | None
) -> None:
    schedule = CronSchedule.parse(expression)
    assert schedule.weekdays == (None if weekdays is None else frozenset(weekdays))
    assert schedule.days == (None if days is None else frozenset(days))


def test_weekdays_are_handed_to_apscheduler_by_name() -> None:
    assert CronSchedule.parse("0 3 * * 0").trigger_fields() == [
        {"minute": "0", "hour": "3", "month": "*", "day": "*", "day_of_week": "sun"}
    ]
    assert CronSchedule.parse("0 3 * * 1-5").trigger_fields() == [
        {"minute": "0", "hour": "3", "month": "*", "day": "*", "day_of_week": "mon,tue,wed,thu,fri"}
    ]


def test_restricted_day_of_month_and_day_of_week_become_two_field_sets() -> None:
    assert CronSchedule.parse("0 0 1 * mon").trigger_fields() == [
        {"minute": "0", "hour": "0", "month": "*", "day": "1", "day_of_week": "*"},
        {"minute": "0", "hour": "0", "month": "*", "day": "*", "day_of_week": "mon"},
    ]


def test_str_is_the_expression_as_written() -> None:
    assert str(CronSchedule.parse("30 2 * * *")) == "30 2 * * *"
    assert str(CronSchedule.parse("@daily")) == "@daily"


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "   ",
        "* * * *",
        "0 0 3 * * *",  # 6 fields (seconds or years are not crontab(5))
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 0 *",
        "* * * 13 *",
        "* * * * 8",
        "* * * * funday",
        "* * * smarch *",
        "* * * * mo",
        "5-1 * * * *",
        "* * * * fri-mon",  # 5-1: backwards
        "*/0 * * * *",
        "*/x * * * *",
        "1/ * * * *",
        "1,,2 * * * *",
        "-1 * * * *",
        "1- * * * *",
        "1-2-3 * * * *",
        "? * * * *",
        "L * * * *",
        "0 0 L * *",
        "0 0 * * 1#2",
        "@reboot",
        "@every 5m",
        "\u00b2 * * * *",  # SUPERSCRIPT TWO is a digit to str.isdigit, not to cron
        "\u0663 * * * *",  # ARABIC-INDIC DIGIT THREE
        "*/\u00b2 * * * *",
    ],
)
def test_invalid_expressions_raise_cron_error(expression: str) -> None:
    with pytest.raises(CronError, match="invalid cron"):
        CronSchedule.parse(expression)


@pytest.mark.parametrize("value", [None, 5, ["0", "3", "*", "*", "*"]])
def test_a_schedule_must_be_a_string(value: Any) -> None:
    with pytest.raises(CronError, match="must be a string"):
        CronSchedule.parse(value)


# --- crontab(5)'s rules beyond the fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "zone", "start", "expected"),
    [
        # Berlin falls back on 2026-10-25 at 03:00 CEST (01:00 UTC): 02:30 happens twice; cron runs the job once.
        (
            "30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 10, 24, 0, 0, tzinfo=UTC_ZONE),
            ["2026-10-24 00:30", "2026-10-25 00:30", "2026-10-26 01:30", "2026-10-27 01:30"],
        ),
        # New York falls back on 2026-11-01 at 02:00 EDT (06:00 UTC): 01:30 happens twice.
        (
            "30 1 * * *",
            "America/New_York",
            datetime(2026, 10, 31, 0, 0, tzinfo=UTC_ZONE),
            ["2026-10-31 05:30", "2026-11-01 05:30", "2026-11-02 06:30", "2026-11-03 06:30"],
        ),
        # A job at two fixed times of the repeated hour runs each once.
        (
            "0,30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 10, 25, 0, 0, tzinfo=UTC_ZONE),
            ["2026-10-25 00:00", "2026-10-25 00:30", "2026-10-26 01:00", "2026-10-26 01:30"],
        ),
        # Wildcard jobs follow elapsed time, as cron's do: hourly fires in both 02:00s.
        (
            "0 * * * *",
            "Europe/Berlin",
            datetime(2026, 10, 24, 23, 30, tzinfo=UTC_ZONE),
            ["2026-10-25 00:00", "2026-10-25 01:00", "2026-10-25 02:00", "2026-10-25 03:00"],
        ),
        (
            "*/30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 10, 24, 23, 30, tzinfo=UTC_ZONE),
            ["2026-10-25 00:00", "2026-10-25 00:30", "2026-10-25 01:00", "2026-10-25 01:30"],
        ),
        # The skipped hour in spring is unchanged: 02:30 does not exist, the job runs once, at 03:30 CEST.
        (
            "30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 3, 28, 0, 0, tzinfo=UTC_ZONE),
            ["2026-03-28 01:30", "2026-03-29 01:30", "2026-03-30 00:30"],
        ),
    ],
)
def test_a_fixed_time_in_the_repeated_hour_fires_once(
    expression: str, zone: str, start: datetime, expected: list[str]
) -> None:
    assert fire_times_utc(expression, ZoneInfo(zone), start, len(expected)) == expected


def test_the_daemon_trigger_keeps_the_jitter_after_skipping_the_repeated_time() -> None:
    trig = CronSchedule.parse("30 2 * * *").trigger(BERLIN, jitter_s=300)
    first = trig.get_next_fire_time(None, datetime(2026, 10, 25, 0, 35, tzinfo=UTC_ZONE))
    assert first is not None
    # Not the repeated 02:30 (01:30 UTC) of that day: the next day's 02:30 CET, within the jitter.
    base = datetime(2026, 10, 26, 1, 30, tzinfo=UTC_ZONE)
    assert base <= first <= base + timedelta(seconds=300)


@pytest.mark.parametrize("expression", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 feb *"])
def test_a_schedule_that_never_fires_is_refused(expression: str) -> None:
    with pytest.raises(CronError, match="never fires"):
        CronSchedule.parse(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 29 2 *",  # leap days: within 5 years
        "0 0 31 2 mon",  # either field: every Monday of February
        "0 0 */10 2 mon",  # `*/10` starts with `*`: both must match, and 1 February is a Monday in some year
        "0 0 13 * fri",
    ],
)
def test_a_rare_schedule_is_accepted(expression: str) -> None:
    CronSchedule.parse(expression)


def test_first_fire_day_is_computed_from_the_given_day() -> None:
    schedule = CronSchedule.parse("0 0 29 2 *")
    assert schedule.first_fire_day(date(2026, 3, 1)) == date(2028, 2, 29)
    assert schedule.first_fire_day(date(2026, 3, 1), horizon_days=365) is None
    assert CronSchedule.parse("0 0 31 1 mon").first_fire_day(date(2026, 1, 1)) == date(2026, 1, 5)
