"""The bucket rules (hourly, daily, weekly, monthly, yearly: GFS) as one table, and how they mark the successes they
keep: the newest backup of each of the newest `count` buckets, and the oldest success while slots are left. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Final

from ges_retention.backup import Backup
from ges_retention.policy import BUCKET_RULES, Keep
from ges_retention.policy_fields import UNLIMITED

__all__ = ["BUCKETS", "Bucket", "BucketLabels", "mark_buckets"]


@dataclass(frozen=True, slots=True)
class Bucket:
    """A bucket rule: which bucket a local time falls in, and how that bucket is written in a reason."""

    key: Callable[[datetime], tuple[int, ...]]
    label: Callable[..., str]  # called with the key's parts


def _iso_week(local: datetime) -> tuple[int, ...]:
    iso = local.isocalendar()
    return (iso.year, iso.week)


# THE table of bucket rules, in the contract's reason order. A new rule is a row here and a count in `Keep` (the
# import-time check below fails loudly if the two disagree); nothing else names the rules.
BUCKETS: Final[Mapping[str, Bucket]] = {
    "hourly": Bucket(lambda t: (t.year, t.month, t.day, t.hour), "{:04d}-{:02d}-{:02d} {:02d}".format),
    "daily": Bucket(lambda t: (t.year, t.month, t.day), "{:04d}-{:02d}-{:02d}".format),
    "weekly": Bucket(_iso_week, "{:04d}-W{:02d}".format),
    "monthly": Bucket(lambda t: (t.year, t.month), "{:04d}-{:02d}".format),
    "yearly": Bucket(lambda t: (t.year,), "{:04d}".format),
}
if tuple(BUCKETS) != BUCKET_RULES:
    raise ImportError(f"BUCKETS {tuple(BUCKETS)} and the Keep counts {BUCKET_RULES} must name the same rules")


class BucketLabels:
    """The bucket reasons of one plan, each made once (a million-backup plan repeats the same few hundred of them;
    one string each keeps its memory down)."""

    __slots__ = ("_labels",)

    def __init__(self) -> None:
        self._labels: dict[tuple[str, int, tuple[int, ...]], str] = {}

    def reason(self, rule: str, bucket: Bucket, spent: int, count: int | str, key: tuple[int, ...]) -> str:
        label = self._labels.get((rule, spent, key))
        if label is None:
            label = self._labels[(rule, spent, key)] = f"{rule} {spent}/{count} ({bucket.label(*key)})"
        return label


def mark_buckets(
    reasons: list[list[str]], successes: list[Backup], keep: Keep, tz: tzinfo, labels: BucketLabels
) -> None:
    """The bucket rules (hourly, daily, ...): the newest backup of each of the newest `count` buckets."""
    rules = [(rule, bucket, getattr(keep, rule)) for rule, bucket in BUCKETS.items()]
    rules = [(rule, bucket, count) for rule, bucket, count in rules if count == UNLIMITED or count > 0]
    if not rules:
        return
    locals_ = [datetime.fromtimestamp(b.start_ms / 1000, tz) for b in successes]
    for rule, bucket, count in rules:
        _mark_bucket_rule(reasons, locals_, rule, bucket, count, labels)
    # Bucket reasons were appended rule by rule; put each backup's in the contract's order (oldest ones last). Only
    # the oldest success can hold an `oldest` reason.
    last = reasons[-1]
    oldest = [r for r in last if r.startswith("oldest ")]
    if oldest:
        reasons[-1] = [r for r in last if not r.startswith("oldest ")] + oldest


def _mark_bucket_rule(
    reasons: list[list[str]],
    locals_: list[datetime],
    rule: str,
    bucket: Bucket,
    count: int | str,
    labels: BucketLabels,
) -> None:
    limit = None if count == UNLIMITED else int(count)
    spent = 0
    last_key: tuple[int, ...] | None = None
    kept_oldest = False
    key_of = bucket.key
    for i, local in enumerate(locals_):
        if limit is not None and spent >= limit:
            break
        key = key_of(local)
        if key != last_key:
            spent += 1
            last_key = key
            reasons[i].append(labels.reason(rule, bucket, spent, count, key))
            kept_oldest = i == len(locals_) - 1
    slots_left = limit is None or spent < limit
    if slots_left and not kept_oldest:
        reasons[-1].append(f"oldest {rule}")
