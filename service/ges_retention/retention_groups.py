"""One group of backups (a graph, or a graph and a backup method) planned on its own: statuses and future backups
sorted out, the keep rules walked over the successes newest first (`last`, the buckets, `within`, `min_keep`), and
failed backups deleted only by `failed.delete_after` when a newer success exists. Pure: no I/O, no clock."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Final

from ges_retention.backup import Backup
from ges_retention.durations import Duration
from ges_retention.policy import Policy
from ges_retention.policy_fields import UNLIMITED
from ges_retention.retention_buckets import BucketLabels, mark_buckets
from ges_retention.retention_decisions import Decision, PlanWarning

__all__ = ["FUTURE_TOLERANCE_MS", "GroupContext", "plan_group"]

FUTURE_TOLERANCE_MS = 5 * 60 * 1000


class GroupContext:
    """What every group of one plan shares: the policy's parts read once, and the reason strings made once (a
    million-backup plan repeats the same few hundred of them; one string each keeps its memory down)."""

    __slots__ = (
        "bucket_labels",
        "cutoff_ms",
        "keep",
        "now",
        "now_ms",
        "pinned_ids",
        "pinned_name",
        "policy",
        "reasons",
        "tz",
    )

    def __init__(self, policy: Policy, now: datetime, now_ms: int, tz: tzinfo) -> None:
        self.policy = policy
        self.keep = policy.keep
        self.now = now
        self.now_ms = now_ms
        self.tz = tz
        self.pinned_ids = frozenset(self.keep.ids)
        self.pinned_name = _name_matcher(self.keep.names)
        delete_after = policy.failed.delete_after
        self.cutoff_ms = None if delete_after is None else int(delete_after.before(now, tz).timestamp() * 1000)
        self.bucket_labels = BucketLabels()
        self.reasons: dict[tuple[str, ...], tuple[str, ...]] = {}

    def shared(self, reasons: list[str]) -> tuple[str, ...]:
        """`reasons` as a tuple, one object for every backup kept for the same reasons."""
        as_tuple = tuple(reasons)
        return self.reasons.setdefault(as_tuple, as_tuple)

    def pin_reasons(self, backup: Backup) -> list[str]:
        reasons = []
        if backup.id in self.pinned_ids:
            reasons.append("pinned id")
        if self.pinned_name is not None and self.pinned_name(backup.name):
            reasons.append("pinned name")
        return reasons


def _name_matcher(patterns: Sequence[str]) -> Callable[[str], bool] | None:
    """One compiled test for the name globs (`fnmatchcase` of any of them), or None without globs."""
    if not patterns:
        return None
    if "*" in patterns:
        return lambda _name: True
    match = re.compile("|".join(fnmatch.translate(p) for p in patterns)).match
    return lambda name: match(name) is not None


def plan_group(group: list[Backup], context: GroupContext, warnings: list[PlanWarning]) -> list[Decision]:
    """The decisions of one group, in no particular order; its warnings are appended to `warnings`."""
    decisions: list[Decision] = []
    successes: list[Backup] = []
    failed: list[Backup] = []
    future_ms = context.now_ms + FUTURE_TOLERANCE_MS
    for backup in group:
        if backup.start_ms > future_ms:
            warnings.append(PlanWarning("future", backup.id, f"starts at {backup.start.isoformat()}"))
            decisions.append(Decision(backup, "keep", ("future", *context.pin_reasons(backup))))
        elif backup.status == "success":
            successes.append(backup)
        elif backup.status == "failed":
            failed.append(backup)
        elif backup.status == "backing_up":
            decisions.append(Decision(backup, "keep", ("backing_up", *context.pin_reasons(backup))))
        else:
            warnings.append(PlanWarning("unknown_status", backup.id, backup.status))
            reason = f"unknown status {backup.status!r}"
            decisions.append(Decision(backup, "keep", (reason, *context.pin_reasons(backup))))

    successes.sort(key=_start_then_id)
    decisions.extend(_plan_successes(successes, context))
    newest_success_ms = successes[0].start_ms if successes else None
    decisions.extend(_plan_failed(failed, context, newest_success_ms))
    return decisions


def _start_then_id(backup: Backup) -> tuple[int, str]:
    return (-backup.start_ms, backup.id)


_EXPIRED: Final = ("expired",)


def _plan_successes(successes: list[Backup], context: GroupContext) -> list[Decision]:
    if not successes:
        return []
    policy = context.policy
    keep = context.keep
    reasons: list[list[str]] = [context.pin_reasons(b) for b in successes]
    _mark_last(reasons, keep.last)
    mark_buckets(reasons, successes, keep, context.tz, context.bucket_labels)
    if keep.within is not None:
        anchor = successes[0].start if policy.anchor == "newest" else context.now.astimezone(UTC)
        _mark_within(reasons, successes, keep.within, anchor, context.tz)
    # min_keep: the newest successes of the group are kept whatever the rules say.
    for i in range(min(policy.safety.min_keep, len(successes))):
        if not reasons[i]:
            reasons[i].append("min_keep")

    return [
        Decision(backup, "keep", context.shared(rs)) if rs else Decision(backup, "delete", _EXPIRED)
        for backup, rs in zip(successes, reasons, strict=True)
    ]


@functools.cache
def _last_reason(i: int, last: int | str) -> str:
    return f"last {i + 1}/{last}"


def _mark_last(reasons: list[list[str]], last: int | str) -> None:
    """`keep.last`: the newest `last` successes (all of them if unlimited)."""
    if last == UNLIMITED or (isinstance(last, int) and last > 0):
        limit = len(reasons) if last == UNLIMITED else min(int(last), len(reasons))
        for i in range(limit):
            reasons[i].append(_last_reason(i, last))


def _mark_within(
    reasons: list[list[str]], successes: list[Backup], within: Duration, anchor: datetime, tz: tzinfo
) -> None:
    """`keep.within`: every success younger than `within` before the anchor."""
    threshold_ms = int(within.before(anchor, tz).timestamp() * 1000)
    label = f"within {within}"
    for i, backup in enumerate(successes):
        if backup.start_ms >= threshold_ms:
            reasons[i].append(label)
        else:
            break  # newest first: everything after is older still


def _plan_failed(failed: list[Backup], context: GroupContext, newest_success_ms: int | None) -> list[Decision]:
    decisions = []
    delete_after = context.policy.failed.delete_after
    cutoff_ms = context.cutoff_ms
    for backup in failed:
        pins = context.pin_reasons(backup)
        if pins:
            decisions.append(Decision(backup, "keep", tuple(pins)))
        elif cutoff_ms is None:
            decisions.append(Decision(backup, "keep", ("failed: no failed.delete_after",)))
        elif backup.start_ms >= cutoff_ms:
            decisions.append(Decision(backup, "keep", (f"failed: younger than {delete_after}",)))
        elif newest_success_ms is None or newest_success_ms <= backup.start_ms:
            decisions.append(Decision(backup, "keep", ("failed: no newer success",)))
        else:
            decisions.append(Decision(backup, "delete", ("failed",)))
    return decisions
