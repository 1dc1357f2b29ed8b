"""Builders for the simulation tests: a policy from a few YAML lines, a scenario, and an independent replay."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from ges_retention.backup import Backup
from ges_retention.cron import CronSchedule
from ges_retention.policy import Policy
from ges_retention.policy_loading import parse_policy_text
from ges_retention.retention import plan
from ges_retention.retention_selection import select_backups
from ges_retention.simulate import Cadence, Forecast, Outage, Scenario


def policy(body: str, *, tz: str = "UTC", name: str = "sim") -> Policy:
    """One policy named `sim` in project p1; `body` holds its other keys (YAML, any indentation)."""
    lines = textwrap.indent(textwrap.dedent(body).strip(), "    ")
    text = f"version: 1\npolicies:\n  - name: {name}\n    project_id: p1\n    timezone: {tz}\n{lines}\n"
    return parse_policy_text(text).policies[0]


def local(text: str, tz: str) -> datetime:
    """An aware datetime on the wall clock of `tz`."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


def scenario(
    pol: Policy,
    start: str,
    days: int,
    *,
    backups: Iterable[str] = ("0 2 * * *",),
    method: str = "auto",
    outages: Iterable[tuple[str, str]] = (),
    **kwargs: object,
) -> Scenario:
    tz = pol.timezone
    return Scenario(
        policy=pol,
        start=local(start, tz),
        days=days,
        cadences=tuple(Cadence(CronSchedule.parse(c), method) for c in backups),
        outages=tuple(Outage(local(a, tz), local(b, tz)) for a, b in outages),
        **kwargs,  # type: ignore[arg-type]
    )


def replay(sc: Scenario, forecast: Forecast) -> dict[date, int]:
    """Rebuild the simulation from its created backups and check every run against the planner, independently.

    At each run, the backups alive are the export and every created backup started by then, minus what earlier runs
    deleted; the run must have deleted exactly what `retention.plan` plans for them (confirm_after off), or nothing
    under a safety stop. Returns the kept successes at the end of each day, as the replay sees them.
    """
    assert sc.policy.safety.confirm_after is None
    live = {b.id: b for b in select_backups(sc.existing, sc.policy)}
    created = sorted(forecast.created, key=lambda b: (b.start_ms, b.id))
    next_created = 0
    tz = ZoneInfo(sc.policy.timezone)
    kept_by_day: dict[date, int] = {}

    def add_until(instant_ms: int) -> None:
        nonlocal next_created
        while next_created < len(created) and created[next_created].start_ms <= instant_ms:
            backup = created[next_created]
            if select_backups([backup], sc.policy):
                live[backup.id] = backup
            next_created += 1

    for run in forecast.runs:
        add_until(int(run.at.timestamp() * 1000))
        expected = plan(list(live.values()), sc.policy, run.at)
        assert run.safety_stop == expected.safety_stop, run.at
        assert sorted(run.deleted) == sorted(d.backup.id for d in expected.deletions), run.at
        assert run.planned == len(expected.planned)
        for backup_id in run.deleted:
            del live[backup_id]
        assert run.kept == sum(1 for b in live.values() if b.status == "success")
        kept_by_day[run.at.astimezone(tz).date()] = run.kept
    return kept_by_day


def successes(backups: Iterable[Backup]) -> int:
    return sum(1 for b in backups if b.status == "success")
