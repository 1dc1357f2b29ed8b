"""Standard crontab(5) schedules, checked at load and translated for APScheduler.

crontab(5) and APScheduler disagree in two places, and both would silently run a policy on the wrong day:
- day of week: crontab has 0 and 7 = Sunday, 1 = Monday; APScheduler's `day_of_week` has 0 = Monday. Every weekday
  is therefore handed over by name (`sun`, `mon`, ...), never by number;
- when both day of month and day of week are restricted, crontab fires when EITHER matches, APScheduler when both
  do. Such a schedule becomes two field sets, to be OR'ed (APScheduler's `OrTrigger`).

Pure: no APScheduler import here; `daemon` builds the triggers from `CronSchedule.trigger_fields()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

__all__ = ["CronError", "CronSchedule"]

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """A schedule that is not a valid crontab(5) expression."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_base: int = 0  # value of names[0]


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTH_NAMES, 1),
    _Field("day of week", 0, 7, _DAY_NAMES, 0),
)


def _value(token: str, spec: _Field, expr: str) -> int:
    lowered = token.lower()
    if spec.names and lowered in spec.names:
        return spec.names.index(lowered) + spec.names_base
    if not (token.isascii() and token.isdigit()):  # not '²' nor other Unicode digits
        raise CronError(f"invalid cron {expr!r}: {token!r} is not a valid {spec.name}")
    number = int(token)
    if not spec.low <= number <= spec.high:
        raise CronError(f"invalid cron {expr!r}: {spec.name} {number} is outside {spec.low}-{spec.high}")
    return number


def _parse_field(text: str, spec: _Field, expr: str) -> frozenset[int] | None:
    """The set of values, or None for `*` (unrestricted)."""
    if text == "*":
        return None
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise CronError(f"invalid cron {expr!r}: bad step in {item!r}")
            step = int(step_text)
        if base == "*":
            start, end = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, spec, expr), _value(last, spec, expr)
            if start > end:
                raise CronError(f"invalid cron {expr!r}: range {base!r} runs backwards")
        else:
            start = _value(base, spec, expr)
            end = spec.high if slash else start
        values.update(range(start, end + 1, step))
    if spec.name == "day of week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed crontab(5) expression. Field sets are None where the field is `*`."""

    expression: str
    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days: frozenset[int] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # crontab numbering: 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        if not isinstance(expression, str):
            raise CronError(f"a schedule must be a string, not {expression!r}")
        text = _MACROS.get(expression.strip().lower(), expression.strip())
        parts = text.split()
        if len(parts) != 5:
            raise CronError(
                f"invalid cron {expression!r}: expected 5 fields (minute hour day-of-month month day-of-week)"
            )
        sets = [_parse_field(part, spec, expression) for part, spec in zip(parts, _FIELDS, strict=True)]
        return cls(expression, *sets)

    def trigger_fields(self) -> list[dict[str, str]]:
        """APScheduler `CronTrigger` keyword arguments; more than one set means OR them."""
        common = {
            "minute": _join(self.minutes),
            "hour": _join(self.hours),
            "month": _join(self.months),
        }
        day = _join(self.days)
        weekday = "*" if self.weekdays is None else ",".join(_DAY_NAMES[d] for d in sorted(self.weekdays))
        if self.days is not None and self.weekdays is not None and not self._a_day_field_starts_with_star():
            # crontab(5): "If both fields are restricted (i.e., don't start with *), the command will be run when
            # either field matches the current time". `*/2` restricts the days but starts with `*`: both must match.
            return [
                {**common, "day": day, "day_of_week": "*"},
                {**common, "day": "*", "day_of_week": weekday},
            ]
        return [{**common, "day": day, "day_of_week": weekday}]

    def fire_times(self, start: datetime, end: datetime, tz: tzinfo) -> list[datetime]:
        """Every fire time in [start, end), as aware UTC datetimes, ascending; fields read on the wall clock of `tz`.

        Across DST: a wall time that does not exist (spring forward) fires at the instant its pre-change offset gives,
        i.e. one hour later on the new wall clock, as cron does; a wall time that exists twice (fall back) fires once,
        at its first occurrence. Without jitter: the simulation's view of a schedule.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        hours = sorted(self.hours) if self.hours is not None else range(24)
        minutes = sorted(self.minutes) if self.minutes is not None else range(60)
        either = self.days is not None and self.weekdays is not None and not self._a_day_field_starts_with_star()
        times: set[datetime] = set()
        day = start.astimezone(tz).date() - timedelta(days=1)  # a shifted wall time may land on the next day
        last = end.astimezone(tz).date()
        while day <= last:
            if self._matches_day(day, either=either):
                for hour in hours:
                    for minute in minutes:
                        instant = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).astimezone(UTC)
                        if start <= instant < end:
                            times.add(instant)
            day += timedelta(days=1)
        return sorted(times)

    def _matches_day(self, day: date, *, either: bool) -> bool:
        if self.months is not None and day.month not in self.months:
            return False
        day_ok = self.days is None or day.day in self.days
        weekday_ok = self.weekdays is None or (day.isoweekday() % 7) in self.weekdays
        return (day_ok or weekday_ok) if either else (day_ok and weekday_ok)

    def _a_day_field_starts_with_star(self) -> bool:
        parts = _MACROS.get(self.expression.strip().lower(), self.expression.strip()).split()
        return parts[2].startswith("*") or parts[4].startswith("*")

    def __str__(self) -> str:
        return self.expression


def _join(values: frozenset[int] | None) -> str:
    return "*" if values is None else ",".join(str(v) for v in sorted(values))
