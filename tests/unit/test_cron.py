"""crontab(5) schedules, translated for APScheduler: checked by the fire times APScheduler computes from them.

APScheduler's own `day_of_week` numbers Monday as 0 and ANDs day-of-month with day-of-week; crontab(5) has 0 and 7 =
Sunday and fires when EITHER restricted day field matches. The translation must make APScheduler fire exactly when
cron would.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from ges_retention.cron import CronError, CronSchedule

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
# A Wednesday.
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC_ZONE)


def trigger(expression: str, tz: ZoneInfo) -> BaseTrigger:
    field_sets = CronSchedule.parse(expression).trigger_fields()
    triggers = [CronTrigger(timezone=tz, **fields) for fields in field_sets]
    return triggers[0] if len(triggers) == 1 else OrTrigger(triggers)


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
