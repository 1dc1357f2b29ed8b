"""Durations of the policy file (`1y6mo`, `36h`, `2w3d`, `90min`, `30s`) and their calendar arithmetic.

A duration is a count of years, months, weeks, days, hours, minutes and seconds. Subtracting one from an instant is
calendar arithmetic on the wall clock of the policy's timezone, as `dateutil.relativedelta` does it on an aware
datetime: years and months first (clamped to the month's last day: 31 March minus `1mo` is 28/29 February), then
weeks, days, hours, minutes and seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from dateutil.relativedelta import relativedelta

from ges_retention.errors import GesRetentionError, shorten

__all__ = ["Duration", "DurationError"]

# Largest units first, each at most once: `1y6mo` yes, `6mo1y` or `1d1d` no.
_PATTERN = re.compile(r"(?:(\d+)y)?(?:(\d+)mo)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)min)?(?:(\d+)s)?", re.ASCII)
_UNITS = ("y", "mo", "w", "d", "h", "min", "s")
# Bounds so that arithmetic can never overflow datetime's range silently (seconds and minutes: a few years' worth).
_MAX_PART = (100_000, 100_000, 100_000, 100_000, 100_000, 10_000_000, 1_000_000_000)
_MAX_DIGITS = 12


class DurationError(GesRetentionError, ValueError):
    """A duration string that cannot be read."""


@dataclass(frozen=True, slots=True)
class Duration:
    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        if not isinstance(text, str):
            raise DurationError(f"a duration must be a string like '2d' or '1y6mo', not {shorten(text)}")
        cleaned = text.strip()
        match = _PATTERN.fullmatch(cleaned)
        if not cleaned or match is None or not any(match.groups()):
            raise DurationError(
                f"invalid duration {shorten(text)}: use counts with units y, mo, w, d, h, min, s, largest first "
                "(e.g. 36h, 1y6mo, 90min)"
            )
        groups = match.groups()
        for group, unit, bound in zip(groups, _UNITS, _MAX_PART, strict=True):
            if group and (len(group) > _MAX_DIGITS or int(group) > bound):
                raise DurationError(f"invalid duration {shorten(text)}: at most {bound} {unit}")
        parts = [int(group) if group else 0 for group in groups]
        if not any(parts):
            raise DurationError(f"invalid duration {shorten(text)}: it must be longer than zero")
        return cls(*parts)

    def __str__(self) -> str:
        units = (
            ("y", self.years),
            ("mo", self.months),
            ("w", self.weeks),
            ("d", self.days),
            ("h", self.hours),
            ("min", self.minutes),
            ("s", self.seconds),
        )
        return "".join(f"{value}{unit}" for unit, value in units if value) or "0h"

    def after(self, instant: datetime, tz: tzinfo) -> datetime:
        """`instant + self` on the wall clock of `tz` (the mirror of `before`); aware, in UTC; clamped to
        `datetime.max` rather than overflowing."""
        return self._shift(instant, tz, 1)

    def before(self, instant: datetime, tz: tzinfo) -> datetime:
        """`instant - self` on the wall clock of `tz`; the result is aware, in UTC.

        Raises `OverflowError` never: a result before year 1 is clamped to `datetime.min` (everything is younger).
        """
        return self._shift(instant, tz, -1)

    def _shift(self, instant: datetime, tz: tzinfo, sign: int) -> datetime:
        if instant.tzinfo is None:
            raise ValueError("instant must be timezone-aware")
        local = instant.astimezone(tz)
        try:
            shifted = local + sign * relativedelta(
                years=self.years,
                months=self.months,
                weeks=self.weeks,
                days=self.days,
                hours=self.hours,
                minutes=self.minutes,
                seconds=self.seconds,
            )
            # relativedelta keeps tzinfo and the wall clock; re-anchor through the zone to get the real instant
            # (near year 1 this conversion can leave datetime's range too).
            return shifted.replace(tzinfo=tz).astimezone(UTC)
        except (OverflowError, ValueError):
            return (datetime.min if sign < 0 else datetime.max).replace(tzinfo=UTC)
