"""Properties of the planner over random policies and random backups (hypothesis).

The central property compares the planner with an independent reading of the contract (`expected_kept`): bucket
rules as "the newest backup of each of the N newest buckets", `within` as plain calendar arithmetic, pins, `last`,
the oldest success while a rule has slots left, and the `min_keep` floor.
"""

from __future__ import annotations

import fnmatch
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from ges_retention.backup import Backup
from ges_retention.policy import BUCKET_RULES, Policy
from ges_retention.policy_fields import UNLIMITED
from ges_retention.retention import plan
from ges_retention.retention_decisions import Plan
from ges_retention.retention_groups import FUTURE_TOLERANCE_MS

SETTINGS = settings(max_examples=120, deadline=None, database=None)

TIMEZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
DURATIONS = ["36h", "1d", "2d", "1w", "1mo", "2mo1w", "1y", "1y6mo"]
# Three years of backups, ending a little after `now` (some are in the future).
START_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
NOW = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
HOUR_MS = 3_600_000

counts = st.one_of(st.just(0), st.just(0), st.integers(1, 6), st.just(UNLIMITED))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    keep: dict[str, Any] = {rule: draw(counts) for rule in ("last", *BUCKET_RULES)}
    if draw(st.booleans()):
        keep["within"] = draw(st.sampled_from(DURATIONS))
    if draw(st.integers(0, 3)) == 0:
        keep["ids"] = draw(st.lists(st.sampled_from([f"b{i}" for i in range(40)]), max_size=3))
    if draw(st.integers(0, 3)) == 0:
        keep["names"] = ["*-golden"]
    keeps_nothing = all(keep[rule] == 0 for rule in ("last", *BUCKET_RULES))
    if keeps_nothing and not keep.get("within") and not keep.get("ids") and not keep.get("names"):
        keep["daily"] = 1  # a keep of zeros is not a valid policy
    data: dict[str, Any] = {
        "name": "p",
        "project_id": "proj1",
        "timezone": draw(st.sampled_from(TIMEZONES)),
        "anchor": draw(st.sampled_from(["newest", "now"])),
        "group_by": draw(st.sampled_from(["graph", "graph_and_method"])),
        "keep": keep,
        "safety": {"min_keep": draw(st.integers(0, 3)), "max_deletes": draw(st.sampled_from([0, 3, 10, 10_000]))},
    }
    if draw(st.booleans()):
        data["failed"] = {"delete_after": draw(st.sampled_from(DURATIONS))}
    return Policy.model_validate(data)


@st.composite
def backup_lists(draw: st.DrawFn) -> list[Backup]:
    # A pool of instants, so that several backups share one instant or one day.
    span = NOW_MS - START_MS + 2 * HOUR_MS
    pool = draw(st.lists(st.integers(0, span), min_size=1, max_size=12))
    count = draw(st.integers(0, 40))
    backups = []
    for i in range(count):
        base = START_MS + draw(st.sampled_from(pool))
        jitter = draw(st.sampled_from([0, 0, 1, 59_000, HOUR_MS, 5 * HOUR_MS, -7 * HOUR_MS]))
        status = draw(st.sampled_from(["success"] * 6 + ["failed", "failed", "backing_up", "queued"]))
        backups.append(
            Backup(
                id=f"b{i}",
                graph_id=draw(st.sampled_from(["g1", "g1", "g2", "g3"])),
                status=status,
                start_ms=max(0, base + jitter),
                name=draw(st.sampled_from(["nightly", "x-golden"])),
                graph_name="graph",
                backup_method=draw(st.sampled_from(["auto", "auto", "manual", "import"])),
            )
        )
    return backups


# --- an independent reading of the contract -------------------------------------------------------------------


def _bucket(rule: str, when: datetime) -> tuple[int, ...]:
    if rule == "hourly":
        return (when.year, when.month, when.day, when.hour)
    if rule == "daily":
        return (when.year, when.month, when.day)
    if rule == "weekly":
        return tuple(when.isocalendar())[:2]
    if rule == "monthly":
        return (when.year, when.month)
    return (when.year,)


def _group_key(backup: Backup, policy: Policy) -> tuple[str, str]:
    return (backup.graph_id, backup.backup_method if policy.group_by == "graph_and_method" else "")


def _is_future(backup: Backup) -> bool:
    return backup.start_ms > NOW_MS + FUTURE_TOLERANCE_MS


def _pinned(backup: Backup, policy: Policy) -> bool:
    return backup.id in policy.keep.ids or any(fnmatch.fnmatchcase(backup.name, g) for g in policy.keep.names)


def _minus(duration: Any, instant: datetime, tz: ZoneInfo) -> datetime:
    local = instant.astimezone(tz)
    delta = relativedelta(
        years=duration.years, months=duration.months, weeks=duration.weeks, days=duration.days, hours=duration.hours
    )
    return (local - delta).replace(tzinfo=tz).astimezone(UTC)


def _ms(instant: datetime) -> int:
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def expected_kept(backups: list[Backup], policy: Policy) -> set[str]:
    """The ids the contract keeps (for a single policy, no overlap)."""
    tz = ZoneInfo(policy.timezone)
    keep = policy.keep
    kept: set[str] = set()
    groups: dict[tuple[str, str], list[Backup]] = defaultdict(list)
    for backup in backups:
        groups[_group_key(backup, policy)].append(backup)
    for members in groups.values():
        successes = sorted(
            (m for m in members if m.status == "success" and not _is_future(m)), key=lambda m: (-m.start_ms, m.id)
        )
        for member in members:
            if _is_future(member) or member.status not in ("success", "failed") or _pinned(member, policy):
                kept.add(member.id)
        if successes:
            for rule, count in [("last", keep.last)] + [(r, getattr(keep, r)) for r in BUCKET_RULES]:
                kept.update(_kept_by_rule(successes, rule, count, tz))
            if keep.within is not None:
                anchor = successes[0].start if policy.anchor == "newest" else NOW
                threshold = _ms(_minus(keep.within, anchor, tz))
                kept.update(m.id for m in successes if m.start_ms >= threshold)
            kept.update(m.id for m in successes[: policy.safety.min_keep])
        delete_after = policy.failed.delete_after
        newest_success = successes[0].start_ms if successes else None
        for member in members:
            if member.status != "failed" or _is_future(member) or _pinned(member, policy):
                continue
            old_enough = delete_after is not None and member.start_ms < _ms(_minus(delete_after, NOW, tz))
            if not (old_enough and newest_success is not None and newest_success > member.start_ms):
                kept.add(member.id)
    return kept


def _kept_by_rule(successes: list[Backup], rule: str, count: Any, tz: ZoneInfo) -> set[str]:
    """The ids one count rule (`last` or a bucket rule) keeps among a group's successes, newest first."""
    if count == 0:
        return set()
    if rule == "last":
        return {m.id for m in successes[: None if count == UNLIMITED else count]}
    newest_of: dict[tuple[int, ...], Backup] = {}
    for member in successes:  # newest first: the first seen of a bucket is its newest
        newest_of.setdefault(_bucket(rule, datetime.fromtimestamp(member.start_ms / 1000, tz)), member)
    buckets = sorted(newest_of, reverse=True)
    chosen = buckets if count == UNLIMITED else buckets[:count]
    kept = {newest_of[key].id for key in chosen}
    if count == UNLIMITED or len(buckets) < count:
        kept.add(successes[-1].id)
    return kept


def kept_ids(result: Plan) -> set[str]:
    return {d.backup.id for d in result.kept}


# --- properties --------------------------------------------------------------------------------------------------


@SETTINGS
@given(policies(), backup_lists())
def test_the_plan_keeps_exactly_what_the_contract_keeps(policy: Policy, backups: list[Backup]) -> None:
    result = plan(backups, policy, NOW)

    assert kept_ids(result) == expected_kept(backups, policy)
    assert len(result.decisions) == len(backups)
    for decision in result.decisions:
        assert decision.reasons, decision
        if decision.action == "delete":
            expected_reason = "failed" if decision.backup.status == "failed" else "expired"
            assert decision.reasons == (expected_reason,)
            assert decision.backup.status in ("success", "failed")
            assert not _is_future(decision.backup)


@SETTINGS
@given(policies(), backup_lists())
def test_a_backup_a_rule_keeps_is_never_deleted(policy: Policy, backups: list[Backup]) -> None:
    result = plan(backups, policy, NOW)

    deleted = {d.backup.id for d in result.planned}
    assert not deleted & expected_kept(backups, policy)
    for decision in result.kept:
        assert decision.reasons


@SETTINGS
@given(policies(), backup_lists())
def test_backing_up_and_unknown_statuses_are_never_deleted(policy: Policy, backups: list[Backup]) -> None:
    result = plan(backups, policy, NOW)
    for decision in result.decisions:
        if decision.backup.status not in ("success", "failed"):
            assert decision.action == "keep"
            assert decision.reasons[0] in ("future", "backing_up", f"unknown status {decision.backup.status!r}")


@SETTINGS
@given(policies(), backup_lists())
def test_at_least_min_keep_successes_are_kept_per_group(policy: Policy, backups: list[Backup]) -> None:
    result = plan(backups, policy, NOW)
    successes: dict[tuple[str, str], int] = defaultdict(int)
    kept: dict[tuple[str, str], int] = defaultdict(int)
    for decision in result.decisions:
        backup = decision.backup
        if backup.status == "success" and not _is_future(backup):
            key = _group_key(backup, policy)
            successes[key] += 1
            kept[key] += decision.action == "keep"
    for key, total in successes.items():
        assert kept[key] >= min(policy.safety.min_keep, total)


@SETTINGS
@given(policies(), backup_lists(), st.randoms(use_true_random=False))
def test_the_plan_does_not_depend_on_input_order(policy: Policy, backups: list[Backup], rng: random.Random) -> None:
    shuffled = list(backups)
    rng.shuffle(shuffled)

    first, second = plan(backups, policy, NOW), plan(shuffled, policy, NOW)

    assert first.decisions == second.decisions
    assert first.safety_stop == second.safety_stop
    assert sorted(first.warnings, key=repr) == sorted(second.warnings, key=repr)


@SETTINGS
@given(policies(), backup_lists())
def test_planning_again_over_what_is_kept_deletes_nothing(policy: Policy, backups: list[Backup]) -> None:
    first = plan(backups, policy, NOW)
    again = plan([d.backup for d in first.kept], policy, NOW)

    assert again.planned == []


@SETTINGS
@given(policies(), backup_lists())
def test_a_safety_stop_deletes_nothing(policy: Policy, backups: list[Backup]) -> None:
    result = plan(backups, policy, NOW)

    assert result.safety_stop == (len(result.planned) > policy.safety.max_deletes)
    if result.safety_stop:
        assert result.deletions == []
        assert result.planned  # still shows what would have gone
    else:
        assert result.deletions == result.planned


@SETTINGS
@given(policies(), backup_lists())
def test_decisions_are_ordered_by_graph_newest_first_then_id(policy: Policy, backups: list[Backup]) -> None:
    keys = [(d.backup.graph_id, -d.backup.start_ms, d.backup.id) for d in plan(backups, policy, NOW).decisions]
    assert keys == sorted(keys)
