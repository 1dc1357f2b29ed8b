"""The forecast: what a policy keeps over simulated time, decided by the one pure planner.

`simulate(scenario)` creates backups on the scenario's cadences (cron on the wall clock of the policy's timezone; a
seeded random draw per backup makes some `failed`; none during an outage), in one synthetic graph the policy selects,
on top of an optional real export. At each fire of the policy's schedule (daily 03:00 in its timezone when it has
none) it calls `retention.plan` on the backups alive at that instant and deletes what a real run would: nothing under
a safety stop, and with `safety.confirm_after` only what has been planned for deletion continuously for that long
(the pending clocks the journal keeps in a real run; planned again later, a clock starts again). The rules themselves
(buckets, pins, `min_keep`, failed backups, time zones) are the planner's and only the planner's.

Only backups the policy selects are planned, so the set handed to the planner stays what the policy keeps (a few dozen
for a GFS policy), and two years of daily runs take well under a second. Pure: no I/O, no clock; the same scenario
gives the same forecast.
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final

from ges_retention.backup import Backup
from ges_retention.cron import CronSchedule
from ges_retention.errors import GesRetentionError
from ges_retention.forecast import (
    AGE_BANDS,
    DAY_MS,
    GAP_WINDOWS,
    Day,
    Forecast,
    Mark,
    RunRecord,
    age_bands,
    longest_gap_h,
    sampled_days,
)
from ges_retention.policy import Policy
from ges_retention.retention import plan
from ges_retention.retention_selection import select_backups

__all__ = [
    "AGE_BANDS",
    "DEFAULT_RUN_SCHEDULE",
    "GAP_WINDOWS",
    "MAX_BACKUPS",
    "MAX_RUNS",
    "Cadence",
    "Day",
    "Forecast",
    "Mark",
    "Outage",
    "RunRecord",
    "Scenario",
    "SimulationError",
    "sampled_days",
    "simulate",
    "synthetic_graph",
]

DEFAULT_RUN_SCHEDULE: Final = CronSchedule.parse("0 3 * * *")
MAX_BACKUPS: Final = 200_000  # backups created over the whole simulation
MAX_RUNS: Final = 50_000  # policy runs over the whole simulation
_SYNTHETIC_GRAPH_ID: Final = "sim-graph-0001"
_SYNTHETIC_GRAPH_NAME: Final = "simulated"


class SimulationError(GesRetentionError, ValueError):
    """A scenario that cannot be simulated; `str()` is one line for the operator (exit 2)."""


@dataclass(frozen=True, slots=True)
class Cadence:
    """Backups created at every fire of `schedule`, with this backup method."""

    schedule: CronSchedule
    method: str = "auto"

    def __str__(self) -> str:
        return f"{self.schedule}@{self.method}"


@dataclass(frozen=True, slots=True)
class Outage:
    """No backup is created in [start, end); the policy still runs."""

    start: datetime
    end: datetime

    def covers(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


@dataclass(frozen=True, slots=True)
class Scenario:
    policy: Policy
    start: datetime  # aware; day i is [start + i days, start + i + 1 days) on the policy's wall clock
    days: int
    cadences: tuple[Cadence, ...] = (Cadence(CronSchedule.parse("0 2 * * *")),)
    failure_rate: float = 0.0
    outages: tuple[Outage, ...] = ()
    quota: int | None = None
    existing: tuple[Backup, ...] = ()  # a real export, alive at the start
    seed: int = 0
    rows: int = 120  # the days whose kept backups are recorded for the picture (`sampled_days`)


def _instantiate(glob: str, filler: str) -> str:
    """A string `glob` matches: the first `*` becomes `filler`, other wildcards the simplest thing they match."""
    out: list[str] = []
    used = False
    i = 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            out.append("" if used else filler)
            used = True
        elif char == "?":
            out.append("x")
        elif char == "[" and (close := glob.find("]", i + 2)) != -1:
            klass = glob[i : close + 1]
            out.append(next((c for c in "x0a_-.A9" if fnmatch.fnmatchcase(c, klass)), "x"))
            i = close
        else:
            out.append(char)
        i += 1
    return "".join(out)


def synthetic_graph(policy: Policy) -> tuple[str, str]:
    """A graph id and name the policy selects, for the simulated backups; `SimulationError` when there is none."""
    select = policy.select
    candidates = [(_SYNTHETIC_GRAPH_ID, _instantiate(p, _SYNTHETIC_GRAPH_NAME)) for p in select.graphs]
    candidates += [(p, _SYNTHETIC_GRAPH_NAME) for p in select.graphs]  # the pattern may be an exact graph id
    for graph_id, graph_name in candidates:
        if graph_id and graph_name and select.matches_graph(graph_id, graph_name):
            return graph_id, graph_name
    raise SimulationError(
        f"policy {policy.name!r} selects no graph the simulation can create "
        f"(graphs {select.graphs}, exclude_graphs {select.exclude_graphs})"
    )


def _name_pattern(policy: Policy, graph_name: str) -> str:
    """A backup-name glob of the policy's `select.names` to build names from, preferring one that pins nothing."""
    patterns = list(policy.select.names)
    probe = f"{graph_name}_20260101020000"
    usable = [p for p in patterns if fnmatch.fnmatchcase(_instantiate(p, probe), p)]
    unpinned = [p for p in usable if not policy.keep.is_pinned_name(_instantiate(p, probe))]
    return (unpinned or usable or patterns)[0]


# --- the simulation -----------------------------------------------------------------------------------------


def _wall_add(local: datetime, days: int) -> datetime:
    """`local` + `days` on the wall clock of its zone (a DST change makes such a day 23 or 25 hours long)."""
    shifted = local.replace(tzinfo=None) + timedelta(days=days)
    return shifted.replace(tzinfo=local.tzinfo).astimezone(UTC)


def _fires_per_day(schedule: CronSchedule) -> int:
    return len(schedule.hours or range(24)) * len(schedule.minutes or range(60))


def _check_size(scenario: Scenario, run_schedule: CronSchedule) -> None:
    created = sum(_fires_per_day(c.schedule) for c in scenario.cadences) * scenario.days
    if created > MAX_BACKUPS:
        raise SimulationError(
            f"the cadences could create up to {created} backups in {scenario.days} days; "
            f"at most {MAX_BACKUPS} can be simulated: use fewer --days or sparser --backups"
        )
    runs = _fires_per_day(run_schedule) * scenario.days
    if runs > MAX_RUNS:
        raise SimulationError(
            f"schedule {str(run_schedule)!r} could run up to {runs} times in {scenario.days} days; "
            f"at most {MAX_RUNS} runs can be simulated: use fewer --days"
        )


class _World:
    """The simulation's mutable state: the backups alive, the pending clocks, the counters of the current day."""

    __slots__ = ("day_deleted", "day_stops", "live", "pending", "unselected")

    def __init__(self, live: list[Backup], unselected: int) -> None:
        self.live = live  # alive and selected by the policy
        self.unselected = unselected  # alive, not selected: never deleted, counted for the quota
        self.pending: dict[str, datetime] = {}  # backup id -> pending_since
        self.day_deleted = 0
        self.day_stops = 0

    def kept(self) -> int:
        return sum(1 for b in self.live if b.status == "success")

    def marks(self, at_ms: int) -> tuple[Mark, ...]:
        def kind(backup: Backup) -> str:
            if backup.status == "success":
                return "pending" if backup.id in self.pending else "kept"
            return "failed" if backup.status == "failed" else "other"

        ordered = sorted(self.live, key=lambda b: (-b.start_ms, b.id))
        return tuple(Mark(at_ms - b.start_ms, kind(b)) for b in ordered)


def simulate(scenario: Scenario) -> Forecast:
    """Run the scenario; see the module docstring."""
    policy = scenario.policy
    _check_scenario(scenario)
    tz = policy.tz
    run_schedule = policy.schedule or DEFAULT_RUN_SCHEDULE
    _check_size(scenario, run_schedule)
    graph_id, graph_name = synthetic_graph(policy)
    name_pattern = _name_pattern(policy, graph_name)

    local_start = scenario.start.astimezone(tz)
    bounds = [_wall_add(local_start, i) for i in range(scenario.days + 1)]
    start, end = bounds[0], bounds[-1]
    bounds_ms = [int(b.timestamp() * 1000) for b in bounds]
    graph = (graph_id, graph_name)
    probes = [
        _new_backup(0, start, c.method, failed=False, graph=graph, name_pattern=name_pattern, tz=tz)
        for c in scenario.cadences
    ]
    if not select_backups(probes, policy):
        methods = sorted({c.method for c in scenario.cadences})
        raise SimulationError(
            f"policy {policy.name!r} selects none of the simulated backups (methods {methods}; the policy selects "
            f"backup_methods {policy.select.backup_methods}, names {policy.select.names}, "
            f"orphans {policy.select.orphans})"
        )

    # Events: (instant, 0 = a backup is due / 1 = the policy runs, cadence index). Backups due at the instant of a run
    # are listed by it.
    events: list[tuple[datetime, int, int]] = []
    for index, cadence in enumerate(scenario.cadences):
        events.extend((t, 0, index) for t in cadence.schedule.fire_times(start, end, tz))
    events.extend((t, 1, 0) for t in run_schedule.fire_times(start, end, tz))
    events.sort()

    existing = list(scenario.existing)
    selected_existing = select_backups(existing, policy)
    world = _World(selected_existing, len(existing) - len(selected_existing))
    rng = random.Random(scenario.seed)
    sampled = set(sampled_days(scenario.days, scenario.rows))
    days: list[Day] = []
    runs: list[RunRecord] = []
    created: list[Backup] = []
    quota_day: date | None = None
    if scenario.quota is not None and len(existing) > scenario.quota:
        quota_day = local_start.date()

    def close_day() -> None:
        index = len(days)
        day_start, day_end = bounds[index], bounds[index + 1]
        outage = any(o.start < day_end and day_start < o.end for o in scenario.outages)
        marks = world.marks(bounds_ms[index + 1]) if index in sampled else None
        days.append(
            Day(
                day_start.astimezone(tz).date(),
                world.kept(),
                world.day_deleted,
                outage,
                world.day_stops,
                marks,
            )
        )
        world.day_deleted = world.day_stops = 0

    for instant, kind, index in events:
        while instant >= bounds[len(days) + 1]:
            close_day()
        if kind == 0:
            failed = rng.random() < scenario.failure_rate  # drawn for every slot, so an outage moves no other draw
            if any(o.covers(instant) for o in scenario.outages):
                continue
            backup = _new_backup(
                len(created) + 1,
                instant,
                scenario.cadences[index].method,
                failed=failed,
                graph=graph,
                name_pattern=name_pattern,
                tz=tz,
            )
            created.append(backup)
            if select_backups([backup], policy):
                world.live.append(backup)
            else:
                world.unselected += 1
            if quota_day is None and scenario.quota is not None and len(world.live) + world.unselected > scenario.quota:
                quota_day = instant.astimezone(tz).date()
        else:
            runs.append(_run(world, policy, instant))
    while len(days) < scenario.days:
        close_day()

    return _forecast(scenario, world, days, runs, created, (start, end), graph, quota_day)


def _check_scenario(scenario: Scenario) -> None:
    if scenario.days < 1:
        raise SimulationError(f"the simulation needs at least one day, got {scenario.days}")
    if not 0.0 <= scenario.failure_rate <= 1.0:
        raise SimulationError(f"the failure rate must be between 0 and 1, got {scenario.failure_rate}")
    if scenario.start.tzinfo is None:
        raise ValueError("start must be timezone-aware")


def _new_backup(
    number: int,
    instant: datetime,
    method: str,
    *,
    failed: bool,
    graph: tuple[str, str],
    name_pattern: str,
    tz: tzinfo,
) -> Backup:
    stamp = instant.astimezone(tz).strftime("%Y%m%d%H%M%S")
    return Backup(
        id=f"sim-{number:06d}",
        graph_id=graph[0],
        status="failed" if failed else "success",
        start_ms=int(instant.timestamp() * 1000),
        name=_instantiate(name_pattern, f"{graph[1]}_{stamp}"),
        graph_name=graph[1],
        backup_method=method,
        orphan=False,  # the synthetic graph exists for the whole simulation
    )


def _run(world: _World, policy: Policy, now: datetime) -> RunRecord:
    """One run: the planner decides; a real run deletes what is due."""
    decided = plan(world.live, policy, now)
    planned = decided.planned
    if decided.safety_stop:
        # Nothing deleted, and (as in a real run) no pending clock started or cancelled.
        world.day_stops += 1
        return RunRecord(now, len(planned), (), len(world.pending), True, world.kept())
    confirm_after = policy.safety.confirm_after
    if confirm_after is None:
        doomed = [d.backup.id for d in planned]
    else:
        due_by = confirm_after.before(now, policy.tz)
        planned_ids = {d.backup.id for d in planned}
        for backup_id in [b for b in world.pending if b not in planned_ids]:
            del world.pending[backup_id]  # kept (or no longer selected) by this run: cancelled
        doomed = []
        for decision in planned:
            since = world.pending.setdefault(decision.backup.id, now)
            if since <= due_by:
                doomed.append(decision.backup.id)
        for backup_id in doomed:
            del world.pending[backup_id]
    if doomed:
        gone = set(doomed)
        world.live = [b for b in world.live if b.id not in gone]
        world.day_deleted += len(doomed)
    return RunRecord(now, len(planned), tuple(doomed), len(world.pending), False, world.kept())


def _forecast(
    scenario: Scenario,
    world: _World,
    days: list[Day],
    runs: list[RunRecord],
    created: list[Backup],
    span: tuple[datetime, datetime],
    graph: tuple[str, str],
    quota_day: date | None,
) -> Forecast:
    end_ms = int(span[1].timestamp() * 1000)
    restore_points = sorted(b.start_ms for b in world.live if b.status == "success")
    kept = [d.kept for d in days]
    tail = kept[-min(30, len(kept)) :]
    oldest = round((end_ms - restore_points[0]) / DAY_MS, 1) if restore_points else None
    return Forecast(
        policy=scenario.policy.name,
        timezone=scenario.policy.timezone,
        start=span[0],
        end=span[1],
        graph_id=graph[0],
        graph_name=graph[1],
        days=tuple(days),
        runs=tuple(runs),
        created=tuple(created),
        steady_state=max(tail),
        peak=max(kept),
        oldest_restore_point_days=oldest,
        age_bands=age_bands(restore_points, end_ms),
        longest_gap_hours=tuple((label, longest_gap_h(restore_points, end_ms, w)) for label, w in GAP_WINDOWS),
        safety_stops=sum(1 for r in runs if r.safety_stop),
        quota=scenario.quota,
        quota_exceeded_on=quota_day,
    )
