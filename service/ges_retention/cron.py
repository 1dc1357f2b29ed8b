"""Standard crontab(5) schedules, checked at load and translated for APScheduler.

crontab(5) and APScheduler disagree in two places, and both would silently run a policy on the wrong day:
- day of week: crontab has 0 and 7 = Sunday, 1 = Monday; APScheduler's `day_of_week` has 0 = Monday. Every weekday
  is therefore handed over by name (`sun`, `mon`, ...), never by number;
- when both day of month and day of week are restricted, crontab fires when EITHER matches, APScheduler when both
  do. Such a schedule becomes two field sets, to be OR'ed (APScheduler's `OrTrigger`).

Two more rules of crontab(5) are kept here:
- a schedule that can never fire (`0 0 31 2 *`) is refused when it is read: no day of the next 5 years matches it;
- a fixed-time job (neither minute nor hour starts with `*`) whose time falls in the hour repeated when the clocks go
  back fires once, at the first of the two wall-clock times; APScheduler alone fires at both. Wildcard jobs (hourly,
  every 15 minutes) follow elapsed time and fire in both hours, as cron does.

`CronSchedule.trigger(tz, jitter)` builds the APScheduler trigger with those rules; the rest of the module is pure.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from ges_retention.errors import GesRetentionError, shorten

__all__ = ["FIRE_HORIZON_DAYS", "CronError", "CronSchedule"]

FIRE_HORIZON_DAYS = 5 * 366  # a schedule with no fire time this far ahead is refused

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


class CronError(GesRetentionError, ValueError):
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
        raise CronError(f"invalid cron {shorten(expr)}: {shorten(token)} is not a valid {spec.name}")
    number = int(token)
    if not spec.low <= number <= spec.high:
        raise CronError(f"invalid cron {shorten(expr)}: {spec.name} {number} is outside {spec.low}-{spec.high}")
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
                raise CronError(f"invalid cron {shorten(expr)}: bad step in {shorten(item)}")
            step = int(step_text)
        if base == "*":
            start, end = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, spec, expr), _value(last, spec, expr)
            if start > end:
                raise CronError(f"invalid cron {shorten(expr)}: range {shorten(base)} runs backwards")
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
            raise CronError(f"a schedule must be a string, not {shorten(expression)}")
        text = _MACROS.get(expression.strip().lower(), expression.strip())
        parts = text.split()
        if len(parts) != 5:
            raise CronError(
                f"invalid cron {shorten(expression)}: expected 5 fields (minute hour day-of-month month day-of-week)"
            )
        sets = [_parse_field(part, spec, expression) for part, spec in zip(parts, _FIELDS, strict=True)]
        schedule = cls(expression, *sets)
        if schedule.first_fire_day(datetime.now(UTC).date()) is None:
            raise CronError(
                f"cron {shorten(expression)} never fires: no day of the next 5 years matches its day of month, "
                "month and day of week"
            )
        return schedule

    def first_fire_day(self, start: date, horizon_days: int = FIRE_HORIZON_DAYS) -> date | None:
        """The first day from `start` on which the schedule fires (hours and minutes always exist), or None."""
        return _first_fire_day(self.days, self.months, self.weekdays, self._either_day_matches(), start, horizon_days)

    def _either_day_matches(self) -> bool:
        return self.days is not None and self.weekdays is not None and not self._a_day_field_starts_with_star()

    def is_fixed_time(self) -> bool:
        """Neither minute nor hour starts with `*`: crontab(5) runs such a job once in a repeated hour."""
        parts = self._fields_text()
        return not parts[0].startswith("*") and not parts[1].startswith("*")

    def trigger(self, tz: tzinfo, jitter_s: int | None = None) -> BaseTrigger:
        """The APScheduler trigger of this schedule in `tz`, firing as crontab(5) does (see the module docstring)."""
        fields = self.trigger_fields()
        inner: BaseTrigger
        if len(fields) == 1:
            inner = CronTrigger(timezone=tz, **fields[0])
        else:
            # Day of month and day of week both restricted: crontab fires when either matches.
            inner = OrTrigger([CronTrigger(timezone=tz, **f) for f in fields])
        return _CrontabTrigger(inner, once_in_repeated_hour=self.is_fixed_time(), jitter_s=jitter_s)

    def trigger_fields(self) -> list[dict[str, str]]:
        """APScheduler `CronTrigger` keyword arguments; more than one set means OR them."""
        common = {
            "minute": _join(self.minutes),
            "hour": _join(self.hours),
            "month": _join(self.months),
        }
        day = _join(self.days)
        weekday = "*" if self.weekdays is None else ",".join(_DAY_NAMES[d] for d in sorted(self.weekdays))
        if self._either_day_matches():
            # crontab(5): "If both fields are restricted (i.e., don't start with *), the command will be run when
            # either field matches the current time". `*/2` restricts the days but starts with `*`: both must match.
            return [
                {**common, "day": day, "day_of_week": "*"},
                {**common, "day": "*", "day_of_week": weekday},
            ]
        return [{**common, "day": day, "day_of_week": weekday}]

    def fire_times(self, start: datetime, end: datetime, tz: tzinfo) -> list[datetime]:
        """Every fire time in [start, end), as aware UTC datetimes, ascending; fields read on the wall clock of `tz`.

        The rules of `trigger`, without jitter (the simulation's view of a schedule). A fixed-time job whose wall time
        does not exist (spring forward) fires at the instant its pre-change offset gives (02:30 -> 03:30 on the new
        wall clock) and in a repeated hour once, at the first occurrence; a wildcard job follows elapsed time: nothing
        in the skipped hour, both occurrences in a repeated one.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        hours = sorted(self.hours) if self.hours is not None else range(24)
        minutes = sorted(self.minutes) if self.minutes is not None else range(60)
        either = self._either_day_matches()
        wildcard = not self.is_fixed_time()
        times: set[datetime] = set()
        day = start.astimezone(tz).date() - timedelta(days=1)  # a shifted wall time may land on the next day
        last = end.astimezone(tz).date()
        while day <= last:
            if _day_matches(self.days, self.months, self.weekdays, either, day):
                for hour in hours:
                    for minute in minutes:
                        wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
                        first = wall.astimezone(UTC)
                        candidates = [first]
                        if wildcard:
                            if first.astimezone(tz).replace(tzinfo=None) != wall.replace(tzinfo=None):
                                continue  # in the skipped hour: elapsed time never reaches it
                            second = wall.replace(fold=1).astimezone(UTC)
                            if second.astimezone(tz).replace(tzinfo=None) == wall.replace(tzinfo=None):
                                candidates.append(second)  # the same wall time again: a repeated hour
                        times.update(t for t in candidates if start <= t < end)
            day += timedelta(days=1)
        return sorted(times)

    def _a_day_field_starts_with_star(self) -> bool:
        parts = self._fields_text()
        return parts[2].startswith("*") or parts[4].startswith("*")

    def _fields_text(self) -> list[str]:
        return _MACROS.get(self.expression.strip().lower(), self.expression.strip()).split()

    def __str__(self) -> str:
        return self.expression


def _join(values: frozenset[int] | None) -> str:
    return "*" if values is None else ",".join(str(v) for v in sorted(values))


@functools.lru_cache(maxsize=4096)
def _first_fire_day(
    days: frozenset[int] | None,
    months: frozenset[int] | None,
    weekdays: frozenset[int] | None,
    either: bool,
    start: date,
    horizon_days: int,
) -> date | None:
    # At most a few thousand cheap steps, cached per schedule and day: loading a file of many policies stays fast.
    day = start
    for _ in range(horizon_days):
        if _day_matches(days, months, weekdays, either, day):
            return day
        try:
            day += timedelta(days=1)
        except OverflowError:
            return None
    return None


def _day_matches(
    days: frozenset[int] | None, months: frozenset[int] | None, weekdays: frozenset[int] | None, either: bool, day: date
) -> bool:
    if months is not None and day.month not in months:
        return False
    day_ok = days is None or day.day in days
    weekday_ok = weekdays is None or (day.isoweekday() % 7) in weekdays
    return (day_ok or weekday_ok) if either else (day_ok and weekday_ok)


def _is_repeated_wall_time(instant: datetime) -> bool:
    """`instant` is the second occurrence of its wall-clock time (the clocks went back over it)."""
    if not instant.fold:
        return False
    return instant.replace(fold=0).utcoffset() != instant.utcoffset()


class _CrontabTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 has no type hints
    """APScheduler's cron trigger with crontab(5)'s repeated-hour rule and the contract's jitter applied last."""

    __slots__ = ("_inner", "_once", "jitter")

    def __init__(self, inner: BaseTrigger, *, once_in_repeated_hour: bool, jitter_s: int | None) -> None:
        self._inner = inner
        self._once = once_in_repeated_hour
        self.jitter = jitter_s

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        candidate = self._inner.get_next_fire_time(previous_fire_time, now)
        # Skip the second occurrence of a fixed time; a handful of steps at most (one per match in the hour).
        for _ in range(120):
            if candidate is None or not (self._once and _is_repeated_wall_time(candidate)):
                break
            # In UTC: adding to a folded local time would step back to the first occurrence of that wall time.
            candidate = self._inner.get_next_fire_time(None, candidate.astimezone(UTC) + timedelta(seconds=1))
        if candidate is None:
            return None
        fire_time: datetime | None = self._apply_jitter(candidate, self.jitter, now)
        return fire_time

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "inner": self._inner, "once": self._once, "jitter": self.jitter}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._inner = state["inner"]
        self._once = state["once"]
        self.jitter = state["jitter"]

    def __str__(self) -> str:
        return str(self._inner)

    def __repr__(self) -> str:
        return f"<CrontabTrigger {self._inner!r} once_in_repeated_hour={self._once} jitter={self.jitter}>"
