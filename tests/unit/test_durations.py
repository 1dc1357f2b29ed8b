"""Durations (`1y6mo`, `36h`) and their calendar arithmetic on the policy's wall clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from factories import at

from ges_retention.durations import Duration, DurationError

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2d", Duration(days=2)),
        ("36h", Duration(hours=36)),
        ("1y6mo", Duration(years=1, months=6)),
        ("2w3d", Duration(weeks=2, days=3)),
        ("1y2mo3w4d5h", Duration(1, 2, 3, 4, 5)),
        ("1mo", Duration(months=1)),
        ("  3d  ", Duration(days=3)),
        ("0y1d", Duration(days=1)),
        ("100000h", Duration(hours=100_000)),
        # Minutes and seconds (contract round 2): `min`, not `m`, which would read like months.
        ("90min", Duration(minutes=90)),
        ("30s", Duration(seconds=30)),
        ("1h30min", Duration(hours=1, minutes=30)),
        ("1d2h3min4s", Duration(days=1, hours=2, minutes=3, seconds=4)),
        ("1mo1min", Duration(months=1, minutes=1)),
    ],
)
def test_parse(text: str, expected: Duration) -> None:
    assert Duration.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("2d", "2d"),
        ("1y6mo", "1y6mo"),
        ("0y1d", "1d"),
        ("2w3d", "2w3d"),
        ("36h", "36h"),
        ("90min", "90min"),
        ("1h0min30s", "1h30s"),
    ],
)
def test_str_is_the_canonical_spelling(text: str, shown: str) -> None:
    assert str(Duration.parse(text)) == shown


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "d",
        "2",
        "2x",
        "2D",
        "2 d",
        "1.5d",
        "-1d",
        "+1d",
        "6mo1y",  # largest unit first
        "1d1d",
        "1h2d",
        "0d",
        "0y0mo0w0d0h",
        "100001d",
        "1m",  # months are `mo`: a bare `m` would be ambiguous with minutes
        "\u0663d",  # ARABIC-INDIC DIGIT THREE: only ASCII digits
        "2d\n1d",
        "30s1min",  # largest first
        "1min1h",
        "0min0s",
        "90mins",
        "90 min",
        "1" * 40 + "s",
    ],
)
def test_invalid_durations_are_rejected(text: str) -> None:
    with pytest.raises(DurationError):
        Duration.parse(text)


@pytest.mark.parametrize("value", [2, None, 1.5, ["2d"]])
def test_a_duration_must_be_a_string(value: Any) -> None:
    with pytest.raises(DurationError, match="must be a string"):
        Duration.parse(value)


@pytest.mark.parametrize(
    ("duration", "instant", "tz", "expected"),
    [
        # Months are calendar months clamped to the month's end: 31 March minus 1mo is the end of February.
        ("1mo", "2026-03-31T10:00", "UTC", "2026-02-28T10:00"),
        ("1mo", "2028-03-31T10:00", "UTC", "2028-02-29T10:00"),  # leap year
        ("1y", "2028-02-29T10:00", "UTC", "2027-02-28T10:00"),
        ("1y1mo", "2028-03-31T10:00", "UTC", "2027-02-28T10:00"),  # years and months first, then clamp
        ("1mo1d", "2026-03-31T10:00", "UTC", "2026-02-27T10:00"),  # ... then days
        ("1w", "2026-01-03T00:00", "UTC", "2025-12-27T00:00"),
        ("36h", "2026-11-25T12:00", "UTC", "2026-11-24T00:00"),
        # On the wall clock of the zone: one day before noon on the day DST starts is noon the day before,
        # 23 real hours earlier; 24h is the same wall-clock shift.
        ("1d", "2026-03-29T12:00", "Europe/Berlin", "2026-03-28T12:00"),
        ("24h", "2026-03-29T12:00", "Europe/Berlin", "2026-03-28T12:00"),
        ("1d", "2026-10-26T12:00", "Europe/Berlin", "2026-10-25T12:00"),  # 25 real hours
        # Month arithmetic in the zone, not in UTC: 1 April 00:30 CEST is 31 March 22:30 UTC.
        ("1mo", "2026-04-01T00:30", "Europe/Berlin", "2026-03-01T00:30"),
        ("90min", "2026-11-25T12:00", "UTC", "2026-11-25T10:30"),
        ("30s", "2026-11-25T12:00", "UTC", "2026-11-25T11:59:30"),
        ("1h30min", "2026-11-25T12:00", "UTC", "2026-11-25T10:30"),
    ],
)
def test_before_is_calendar_arithmetic_on_the_wall_clock(duration: str, instant: str, tz: str, expected: str) -> None:
    zone = ZoneInfo(tz)
    result = Duration.parse(duration).before(at(instant, tz), zone)

    assert result == at(expected, tz)
    assert result.tzinfo == UTC


def test_before_in_a_zone_differs_from_utc_arithmetic() -> None:
    instant = at("2026-04-01T00:30", "Europe/Berlin")  # 2026-03-31T22:30Z
    in_berlin = Duration.parse("1mo").before(instant, BERLIN)
    in_utc = Duration.parse("1mo").before(instant, UTC)

    assert in_berlin == at("2026-02-28T23:30+00:00")
    assert in_utc == at("2026-02-28T22:30+00:00")


def test_before_accepts_any_aware_instant() -> None:
    offset_instant = datetime.fromisoformat("2026-03-31T12:00:00+02:00")
    assert Duration.parse("1mo").before(offset_instant, BERLIN) == at("2026-02-28T12:00", "Europe/Berlin")


def test_before_needs_an_aware_instant() -> None:
    with pytest.raises(ValueError, match="aware"):
        Duration.parse("1d").before(datetime(2026, 1, 1), UTC)


@pytest.mark.parametrize(
    ("duration", "instant", "tz"),
    [
        ("100000y", "2026-01-01T00:00", "UTC"),
        ("2026y", "2026-06-01T00:00", "UTC"),
        # Lands on 0001-01-01 00:30 in Berlin, which is before datetime's range in UTC.
        ("2025y", "2026-01-01T00:30", "Europe/Berlin"),
    ],
)
def test_before_clamps_to_the_beginning_of_time(duration: str, instant: str, tz: str) -> None:
    result = Duration.parse(duration).before(at(instant, tz), ZoneInfo(tz))
    assert result == datetime.min.replace(tzinfo=UTC)
