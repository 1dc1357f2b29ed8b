"""The figures of a forecast: what `simulate` returns and the pure arithmetic of its summary (age bands, gaps).

Kept apart from the simulation loop so that the picture (`svg.py`) and the report read the result without the engine.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from ges_retention.backup import Backup

__all__ = [
    "AGE_BANDS",
    "DAY_MS",
    "GAP_WINDOWS",
    "Day",
    "Forecast",
    "Mark",
    "RunRecord",
    "age_bands",
    "longest_gap_h",
    "sampled_days",
]

DAY_MS: Final = 86_400_000
_HOUR_MS: Final = 3_600_000
# (label, upper bound of the age in days): (0, 1d], (1d, 7d], (7d, 30d], (30d, 365d], older.
AGE_BANDS: Final = (("1d", 1), ("1w", 7), ("1mo", 30), ("1y", 365), ("older", None))
GAP_WINDOWS: Final = (("90d", 90), ("1y", 365))


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of the policy: what it planned and what it deleted."""

    at: datetime
    planned: int
    deleted: tuple[str, ...]
    pending: int  # pending deletions (confirm_after) after the run
    safety_stop: bool
    kept: int  # live successes the policy selects, after the run


@dataclass(frozen=True, slots=True)
class Mark:
    """One backup alive at the end of a sampled day."""

    age_ms: int
    kind: str  # "kept" (a success), "pending" (a success waiting out confirm_after), "failed", "other"


@dataclass(frozen=True, slots=True)
class Day:
    date: date
    kept: int  # successes the policy selects, alive at the end of the day
    deleted: int
    outage: bool  # part of the day fell in an outage
    safety_stops: int
    marks: tuple[Mark, ...] | None  # recorded on sampled days only


@dataclass(frozen=True, slots=True)
class Forecast:
    policy: str
    timezone: str
    start: datetime
    end: datetime
    graph_id: str
    graph_name: str
    days: tuple[Day, ...]
    runs: tuple[RunRecord, ...]
    created: tuple[Backup, ...]
    steady_state: int
    peak: int
    oldest_restore_point_days: float | None
    age_bands: tuple[tuple[str, int], ...]
    longest_gap_hours: tuple[tuple[str, float | None], ...]
    safety_stops: int
    quota: int | None
    quota_exceeded_on: date | None


def sampled_days(days: int, rows: int) -> list[int]:
    """Indices of the days drawn as rows: every day when they fit, else evenly spread, first and last included."""
    if days <= rows or rows < 2:
        return list(range(days)) if days <= rows else [days - 1]
    return sorted({round(i * (days - 1) / (rows - 1)) for i in range(rows)})


# --- the synthetic graph ------------------------------------------------------------------------------------


def age_bands(restore_points: Sequence[int], end_ms: int) -> tuple[tuple[str, int], ...]:
    counts = dict.fromkeys((label for label, _ in AGE_BANDS), 0)
    for start_ms in restore_points:
        age_ms = end_ms - start_ms
        label = next(lb for lb, days in AGE_BANDS if days is None or age_ms <= days * DAY_MS)
        counts[label] += 1
    return tuple(counts.items())


def longest_gap_h(restore_points: Sequence[int], end_ms: int, window_days: int) -> float | None:
    """The longest stretch of the window [end - window, end] between two consecutive restore points (hours).

    A gap that starts before the window counts from the window's start; None with fewer than two restore points.
    """
    window_start = end_ms - window_days * DAY_MS
    longest: int | None = None
    for earlier, later in itertools.pairwise(restore_points):
        lo, hi = max(earlier, window_start), min(later, end_ms)
        if hi > lo and (longest is None or hi - lo > longest):
            longest = hi - lo
    return None if longest is None else round(longest / _HOUR_MS, 1)
