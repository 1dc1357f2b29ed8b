"""APScheduler triggers for policy schedules: crontab(5) in the policy's timezone, with the contract's jitter.

Pure: built from a `Policy` and a given time; the daemon owns the scheduler that uses them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger

from ges_retention.policy import Policy

__all__ = ["MAX_JITTER_S", "build_trigger", "jitter_s"]

MAX_JITTER_S = 300.0


def build_trigger(policy: Policy, now: datetime | None = None) -> BaseTrigger:
    """The APScheduler trigger for a policy's crontab(5) schedule, in its timezone, with the contract's jitter."""
    jitter = jitter_s(_cron_trigger(policy, None), now or datetime.now(UTC))
    return _cron_trigger(policy, jitter or None)


def _cron_trigger(policy: Policy, jitter: int | None) -> BaseTrigger:
    if policy.schedule is None:
        raise ValueError(f"policy {policy.name!r} has no schedule")
    return policy.schedule.trigger(policy.tz, jitter)


def jitter_s(trigger: BaseTrigger, now: datetime) -> int:
    """Up to 10% of the interval between two fire times, at most 5 minutes (whole seconds: APScheduler's unit)."""
    first = trigger.get_next_fire_time(None, now)
    if first is None:
        return 0
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    if second is None:
        return 0
    interval = (second - first).total_seconds()
    return int(min(interval * 0.1, MAX_JITTER_S))
