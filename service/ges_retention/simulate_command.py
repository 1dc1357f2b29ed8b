"""`ges-retention simulate`: the scenario its arguments (`simulate_arguments.py`) describe, and the report (table,
JSON, SVG).

The simulation itself is `simulate.py` (pure); this module turns the command line into a `Scenario` (cron and times
read in the policy's timezone), and the `Forecast` into text. Every bad input is one line and exit 2. It reads the
policy file and `--from-file`, and writes nothing but `--svg`; it never touches settings, the state or the network.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ges_retention.backup import Backup
from ges_retention.cron import CronError, CronSchedule
from ges_retention.errors import UsageError, shorten
from ges_retention.exit_codes import ExitCode
from ges_retention.inputs import read_export
from ges_retention.policy_loading import load_policy_file
from ges_retention.simulate import Cadence, Forecast, Outage, Scenario, simulate
from ges_retention.simulate_arguments import DEFAULT_BACKUPS, MAX_DAYS, add_arguments
from ges_retention.svg import render_svg

__all__ = ["DEFAULT_BACKUPS", "MAX_DAYS", "add_arguments", "forecast_document", "parse_cadence", "render_table", "run"]

_METHOD_RE = re.compile(r"[a-z][a-z0-9_]*")


# --- the scenario -------------------------------------------------------------------------------------------


def parse_cadence(text: str) -> Cadence:
    """`CRON[@METHOD]`: `0 2 * * *@auto`, `@daily@manual`, `0 */6 * * *` (method `auto`)."""
    head, at, method = text.rpartition("@")
    if not at or not head.strip():  # no `@`, or only a macro like `@daily`
        head, method = text, "auto"
    if not _METHOD_RE.fullmatch(method):
        raise UsageError(
            f"--backups {shorten(text)}: backup method {shorten(method)} must be a lowercase word like 'auto'"
        )
    try:
        return Cadence(CronSchedule.parse(head), method)
    except CronError as exc:
        raise UsageError(f"--backups {shorten(text)}: {exc}") from None


def _instant(text: str, tz: tzinfo, option: str) -> datetime:
    """An ISO 8601 date (midnight) or date-time; without an offset it is read on the wall clock of `tz`."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time(), tz)
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise UsageError(f"{option}: not an ISO 8601 date or date-time: {shorten(text)}") from None
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


def _outage(text: str, tz: tzinfo) -> Outage:
    first, sep, last = text.partition("..")
    if not sep or not first.strip() or not last.strip():
        raise UsageError(f"--outage {shorten(text)}: expected START..END, like 2027-03-01..2027-03-15")
    start, end = _instant(first, tz, "--outage"), _instant(last, tz, "--outage")
    if end <= start:
        raise UsageError(f"--outage {shorten(text)}: the end must be after the start (END is exclusive)")
    return Outage(start.astimezone(UTC), end.astimezone(UTC))


def _read_export(path: str) -> tuple[Backup, ...]:
    """The export; one holding fewer unique backups than its own `backup_count` is incomplete: refused (exit 2)."""
    export = read_export(path)
    if export.backup_count is not None and len(export.backups) < export.backup_count:
        raise UsageError(
            f"--from-file {path}: incomplete export: {len(export.backups)} unique backup ids but backup_count "
            f"{export.backup_count}; a forecast from part of the history would mislead: export every page"
        )
    return tuple(export.backups)


def build_scenario(args: argparse.Namespace) -> Scenario:
    policy_file = load_policy_file(args.policy_file)
    (policy,) = policy_file.select([args.policy])
    tz = policy.tz
    cadences = tuple(parse_cadence(text) for text in (args.backups or [DEFAULT_BACKUPS]))
    outages = tuple(_outage(text, tz) for text in args.outage)
    if args.start is None:
        start = datetime.combine(datetime.now(tz).date(), time(), tz)
    else:
        start = _instant(args.start, tz, "--start")
    existing = _read_export(args.from_file) if args.from_file is not None else ()
    return Scenario(
        policy=policy,
        start=start,
        days=args.days,
        cadences=cadences,
        failure_rate=args.failure_rate,
        outages=outages,
        quota=args.quota,
        existing=existing,
        seed=args.seed,
    )


def describe(scenario: Scenario) -> str:
    """The scenario in one line (the picture's caption)."""
    tz = scenario.policy.tz
    parts = ["backups " + ", ".join(f"'{c}'" for c in scenario.cadences)]
    parts.append(f"runs '{scenario.policy.schedule or '0 3 * * *'}'")
    if scenario.failure_rate:
        parts.append(f"failure rate {scenario.failure_rate:g} (seed {scenario.seed})")
    for outage in scenario.outages:
        parts.append(f"outage {_local(outage.start, tz)}..{_local(outage.end, tz)}")
    if scenario.existing:
        parts.append(f"{len(scenario.existing)} backups from an export")
    return "; ".join(parts)


def _local(instant: datetime, tz: tzinfo) -> str:
    local = instant.astimezone(tz)
    return local.date().isoformat() if local.time() == time() else local.strftime("%Y-%m-%d %H:%M")


# --- the report ---------------------------------------------------------------------------------------------


def forecast_document(forecast: Forecast) -> dict[str, Any]:
    """The `--format json` document: exactly the contract's keys."""
    return {
        "policy": forecast.policy,
        "start": forecast.start.astimezone(ZoneInfo(forecast.timezone)).isoformat(),
        "days": len(forecast.days),
        "steady_state": forecast.steady_state,
        "peak": forecast.peak,
        "oldest_restore_point_days": forecast.oldest_restore_point_days,
        "age_bands": dict(forecast.age_bands),
        "longest_gap_hours": dict(forecast.longest_gap_hours),
        "safety_stops": forecast.safety_stops,
        "quota_exceeded_on": None if forecast.quota_exceeded_on is None else forecast.quota_exceeded_on.isoformat(),
        "daily": [{"date": d.date.isoformat(), "kept": d.kept, "deleted": d.deleted} for d in forecast.days],
    }


def render_table(forecast: Forecast) -> str:
    document = forecast_document(forecast)
    gaps = document["longest_gap_hours"]
    oldest = document["oldest_restore_point_days"]
    if forecast.quota is None:
        quota = "no --quota given"
    elif forecast.quota_exceeded_on is None:
        quota = f"{forecast.quota} never exceeded"
    else:
        quota = f"{forecast.quota} exceeded on {document['quota_exceeded_on']}"
    tail = min(30, len(forecast.days))
    lines = [
        f"policy {forecast.policy}: {len(forecast.days)} days from {document['start']} ({forecast.timezone})",
        f"steady state       {forecast.steady_state} kept (largest daily count, last {tail} days)",
        f"peak               {forecast.peak} kept",
        f"oldest restore     {'none' if oldest is None else f'{oldest:g} days'}",
        "by age             " + ", ".join(f"{k} {v}" for k, v in document["age_bands"].items()),
        "longest gap        " + ", ".join(f"last {k}: {_hours(v)}" for k, v in gaps.items()),
        f"safety stops       {forecast.safety_stops}",
        f"quota              {quota}",
        "",
    ]
    weekly = len(forecast.days) > 62
    lines.append(f"{'WEEK FROM' if weekly else 'DATE':<12}{'KEPT':>6}{'DELETED':>9}")
    step = 7 if weekly else 1
    for first in range(0, len(forecast.days), step):
        days = forecast.days[first : first + step]
        notes = []
        if any(d.outage for d in days):
            notes.append("outage")
        stops = sum(d.safety_stops for d in days)
        if stops:
            notes.append(f"{stops} safety stop{'s' if stops > 1 else ''}")
        row = f"{days[0].date.isoformat():<12}{days[-1].kept:>6}{sum(d.deleted for d in days):>9}"
        lines.append(f"{row}  {', '.join(notes)}".rstrip())
    if weekly:
        lines.append("(KEPT at the end of each week, DELETED during it; --format json gives every day)")
    return "\n".join(lines) + "\n"


def _hours(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g} h"


def run(args: argparse.Namespace) -> int:
    scenario = build_scenario(args)
    forecast = simulate(scenario)  # a SimulationError is one line and exit 2, like any usage error
    if args.svg is not None:
        try:
            Path(args.svg).write_text(render_svg(forecast, caption=describe(scenario)), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--svg {args.svg}: cannot write: {exc.strerror or exc}") from None
    if args.format == "json":
        sys.stdout.write(json.dumps(forecast_document(forecast), indent=2) + "\n")
    else:
        sys.stdout.write(render_table(forecast))
    return ExitCode.OK
