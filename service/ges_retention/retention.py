"""THE PURE PLANNER: which backups a policy keeps, which it deletes, and why.

`plan(backups, policy, now, holds)` is a pure function: no I/O, no clock, no logging. The same input gives the same
plan in any input order, and planning again over what a plan keeps deletes nothing more. The semantics are the
contract's ("Retention semantics"), per group of backups (a graph, or a graph and a backup method):

- only `success` backups count for the rules; `backing_up` and unknown statuses are kept and never counted;
  `failed` ones are deleted only by `failed.delete_after`, and only when a newer success exists in the group;
- a backup more than 5 minutes in the future is kept (`future`) and takes no part in the rules;
- bucket rules walk the successes newest first and keep the newest backup of each bucket while slots are left; when
  the walk ends with slots left, the oldest success is kept too (`oldest <rule>`), so history reaches back as far as
  the rules allow;
- `within` keeps what started at or after `anchor - duration` (calendar arithmetic in the policy's timezone); pins
  keep without spending slots; `min_keep` keeps the newest successes of the group whatever the rules say;
- a backup with a hold in force (`holds`: backup id, matched in any case -> reason and end) is kept by every policy
  (`held: REASON`, plus ` until ISO` when it ends), right after the pins in the reasons; like a pin it still takes
  part in the bucket rules;
- a backup selected by two or more policies of the file acting on the same listing (`plan_file`: the same
  (endpoint, project_id) in a run) is never deleted (`overlap: a, b`);
- a plan deleting more than `safety.max_deletes` is flagged `safety_stop`: its `deletions` are then empty.
"""

from __future__ import annotations

import fnmatch
import functools
import gc
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Final, Literal, Protocol, TypeVar, overload

from ges_retention.backup import Backup
from ges_retention.durations import Duration
from ges_retention.policy import BUCKET_RULES, Policy
from ges_retention.policy_fields import UNLIMITED

__all__ = [
    "BUCKETS",
    "FUTURE_TOLERANCE_MS",
    "Bucket",
    "Decision",
    "HoldLike",
    "Plan",
    "PlanWarning",
    "find_overlaps",
    "held_reason",
    "hold_key",
    "holds_in_force",
    "plan",
    "plan_file",
    "select_backups",
]

FUTURE_TOLERANCE_MS = 5 * 60 * 1000

K = TypeVar("K", bound=Hashable)

Action = Literal["keep", "delete"]


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
    raise ImportError(f"retention.BUCKETS {tuple(BUCKETS)} and the Keep counts {BUCKET_RULES} must name the same rules")


class HoldLike(Protocol):
    """A hold as the planner sees it (the journal's `Hold` is one): why, and until when (None: until released)."""

    @property
    def reason(self) -> str: ...

    @property
    def until(self) -> datetime | None: ...


def held_reason(hold: HoldLike) -> str:
    """`held: REASON`, plus ` until ISO` (UTC, `Z`) when the hold ends."""
    if hold.until is None:
        return f"held: {hold.reason}"
    return f"held: {hold.reason} until {hold.until.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"


def hold_key(backup_id: str) -> str:
    """What a hold and a backup id are matched by: the id without its case. An id is ASCII (`hold` checks it), and a
    hold typed in another case than GES lists the id must still protect the backup (the safe side: it keeps more).
    The intent batches re-check holds by the same rule (`state/deletions.py`)."""
    return backup_id.lower()


def holds_in_force(holds: Mapping[str, HoldLike] | None, now: datetime) -> dict[str, str]:
    """`hold_key(backup id)` -> the planner's reason, for the holds not ended at `now` (an ended hold is ignored)."""
    if not holds:
        return {}
    return {hold_key(bid): held_reason(h) for bid, h in sorted(holds.items()) if h.until is None or h.until > now}


@dataclass(frozen=True, slots=True)
class Decision:
    backup: Backup
    action: Action
    reasons: tuple[str, ...]

    @property
    def is_delete(self) -> bool:
        return self.action == "delete"


@dataclass(frozen=True, slots=True)
class PlanWarning:
    """Something an operator should hear about; the planner cannot log, so the plan carries it."""

    kind: Literal["future", "unknown_status", "policy_overlap"]
    backup_id: str
    detail: str


@dataclass(frozen=True, slots=True)
class Plan:
    policy: str
    project_id: str
    decisions: tuple[Decision, ...]  # ordered by graph_id, newest first, then backup id
    safety_stop: bool
    max_deletes: int
    warnings: tuple[PlanWarning, ...] = ()
    held: tuple[str, ...] = ()  # ids of selected backups a hold in force kept (whatever the rules said), sorted

    @property
    def planned(self) -> list[Decision]:
        """Every decision to delete, whether or not a safety stop holds them back."""
        return [d for d in self.decisions if d.action == "delete"]

    @property
    def deletions(self) -> list[Decision]:
        """What may actually be deleted: nothing at all under a safety stop."""
        return [] if self.safety_stop else self.planned

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == "keep"]


def select_backups(backups: Iterable[Backup], policy: Policy) -> list[Backup]:
    """The backups a policy manages."""
    return list(_selected(backups, policy))


def find_overlaps(backups: Sequence[Backup], policies: Iterable[Policy]) -> dict[str, tuple[str, ...]]:
    """backup id -> the names (sorted) of every policy that selects it, for backups selected by two or more."""
    selectors: dict[str, list[str]] = defaultdict(list)
    for policy in policies:
        for backup in select_backups(backups, policy):
            selectors[backup.id].append(policy.name)
    return {bid: tuple(sorted(names)) for bid, names in selectors.items() if len(names) > 1}


@overload
def plan_file(
    all_policies: Sequence[Policy],
    selected: Sequence[Policy],
    backups_of: Callable[[str], Sequence[Backup]],
    now: datetime,
    holds: Mapping[str, HoldLike] | None = None,
) -> list[Plan]: ...


@overload
def plan_file(
    all_policies: Sequence[Policy],
    selected: Sequence[Policy],
    backups_of: Callable[[K], Sequence[Backup]],
    now: datetime,
    holds: Mapping[str, HoldLike] | None = None,
    *,
    scope_of: Callable[[Policy], K],
) -> list[Plan]: ...


def plan_file(
    all_policies: Sequence[Policy],
    selected: Sequence[Policy],
    backups_of: Callable[[Any], Sequence[Backup]],
    now: datetime,
    holds: Mapping[str, HoldLike] | None = None,
    *,
    scope_of: Callable[[Policy], Hashable] | None = None,
) -> list[Plan]:
    """Plans for the `selected` policies, with overlap resolved over every policy of the file in the same scope.

    `scope_of(policy)` is the listing a policy acts on (the runner's: its (endpoint, project_id)); without it, the
    project id. `backups_of(scope)` gives that listing's backups; `plan` and `run` both come through here so they
    agree. Only policies of one scope can overlap: the same project id at another endpoint is other backups.
    """
    key: Callable[[Policy], Hashable] = scope_of if scope_of is not None else _project_of
    plans = []
    overlaps_by_scope: dict[Hashable, dict[str, tuple[str, ...]]] = {}
    for policy in selected:
        scope = key(policy)
        backups = backups_of(scope)
        overlaps = overlaps_by_scope.get(scope)
        if overlaps is None:
            peers = [p for p in all_policies if key(p) == scope]
            overlaps = find_overlaps(backups, peers) if len(peers) > 1 else {}
            overlaps_by_scope[scope] = overlaps
        plans.append(plan(backups, policy, now, holds, overlaps=overlaps))
    return plans


def _project_of(policy: Policy) -> str:
    return policy.project_id


def plan(
    backups: Iterable[Backup],
    policy: Policy,
    now: datetime,
    holds: Mapping[str, HoldLike] | None = None,
    *,
    overlaps: Mapping[str, tuple[str, ...]] | None = None,
) -> Plan:
    """Decide keep/delete with reasons for every backup the policy selects; `holds` (backup id -> hold) keep."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now_ms = int(now.timestamp() * 1000)
    tz = policy.tz
    # Grouped by graph first: the plan is ordered by graph id, so each graph's decisions are sorted on their own (no
    # sort key for every backup of a million-backup plan at once) and appended in graph order.
    graphs: dict[str, list[Backup]] = defaultdict(list)
    for backup in _selected(backups, policy):
        graphs[backup.graph_id].append(backup)

    context = _Context(policy, now, now_ms, tz)
    decisions: list[Decision] = []
    warnings: list[PlanWarning] = []
    overlap_warnings: list[PlanWarning] = []  # after every other warning
    held: list[str] = []
    in_force = holds_in_force(holds, now)
    by_method = policy.group_by == "graph_and_method"
    with _collection_paused():
        for graph_id in sorted(graphs):
            members = graphs.pop(graph_id)  # released as it is planned
            if by_method:
                methods: dict[str, list[Backup]] = defaultdict(list)
                for backup in members:
                    methods[backup.backup_method].append(backup)
                graph_decisions = []
                for method in sorted(methods):
                    graph_decisions.extend(_plan_group(methods[method], context, warnings))
            else:
                graph_decisions = _plan_group(members, context, warnings)
            if in_force:
                graph_decisions = [_apply_hold(d, in_force, held) for d in graph_decisions]
            if overlaps:
                graph_decisions = [_apply_overlap(d, overlaps, overlap_warnings) for d in graph_decisions]
            graph_decisions.sort(key=_newest_first)
            decisions.extend(graph_decisions)
    warnings.extend(overlap_warnings)
    planned = sum(1 for d in decisions if d.action == "delete")
    return Plan(
        policy=policy.name,
        project_id=policy.project_id,
        decisions=tuple(decisions),
        safety_stop=planned > policy.safety.max_deletes,
        max_deletes=policy.safety.max_deletes,
        warnings=tuple(warnings),
        held=tuple(sorted(held)),
    )


# Reasons that come before `held: ...` in the contract's order.
_BEFORE_HELD = ("future", "backing_up", "unknown status ", "pinned id", "pinned name")


def _apply_hold(decision: Decision, in_force: Mapping[str, str], held: list[str]) -> Decision:
    """A hold keeps: its reason goes right after the status and pin reasons. The rules have already walked (a held
    backup took part in them like a pin), so only the action and the reasons change; a deletion's reason goes."""
    reason = in_force.get(hold_key(decision.backup.id))
    if reason is None:
        return decision
    held.append(decision.backup.id)
    if decision.action == "delete":
        return Decision(decision.backup, "keep", (reason,))
    reasons = decision.reasons
    at = 0
    while at < len(reasons) and reasons[at].startswith(_BEFORE_HELD):
        at += 1
    return Decision(decision.backup, "keep", (*reasons[:at], reason, *reasons[at:]))


def _newest_first(decision: Decision) -> tuple[int, str]:
    return (-decision.backup.start_ms, decision.backup.id)


@contextmanager
def _collection_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a plan is built: planning makes no reference cycles, but a million
    new decisions next to a million live backups would set off several full collections (a quarter of the time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _selected(backups: Iterable[Backup], policy: Policy) -> Iterator[Backup]:
    """`select_backups`, one backup at a time."""
    select = policy.select
    # Graph conditions are the same for every backup of a graph: decide them once per graph. The backup conditions
    # are skipped when they select everything (every method and the name glob "*").
    every_backup = select.backup_methods is None and "*" in select.names
    any_orphan = select.orphans == "include"
    graph_ok: dict[tuple[str, str], bool] = {}
    for backup in backups:
        key = (backup.graph_id, backup.graph_name)
        ok = graph_ok.get(key)
        if ok is None:
            ok = graph_ok[key] = select.matches_graph(backup.graph_id, backup.graph_name)
        if (
            ok
            and (every_backup or select.matches_backup(backup.backup_method, backup.name))
            and (any_orphan or select.matches_orphan(backup.orphan))
        ):
            yield backup


class _Context:
    """What every group of one plan shares: the policy's parts read once, and the reason strings made once (a
    million-backup plan repeats the same few hundred of them; one string each keeps its memory down)."""

    __slots__ = (
        "cutoff_ms",
        "keep",
        "labels",
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
        self.labels: dict[tuple[str, int, tuple[int, ...]], str] = {}
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

    def bucket_reason(self, rule: str, bucket: Bucket, spent: int, count: int | str, key: tuple[int, ...]) -> str:
        label = self.labels.get((rule, spent, key))
        if label is None:
            label = self.labels[(rule, spent, key)] = f"{rule} {spent}/{count} ({bucket.label(*key)})"
        return label


def _name_matcher(patterns: Sequence[str]) -> Callable[[str], bool] | None:
    """One compiled test for the name globs (`fnmatchcase` of any of them), or None without globs."""
    if not patterns:
        return None
    if "*" in patterns:
        return lambda _name: True
    match = re.compile("|".join(fnmatch.translate(p) for p in patterns)).match
    return lambda name: match(name) is not None


def _apply_overlap(
    decision: Decision, overlaps: Mapping[str, tuple[str, ...]], warnings: list[PlanWarning]
) -> Decision:
    names = overlaps.get(decision.backup.id)
    if not names:
        return decision
    reason = f"overlap: {', '.join(names)}"
    warnings.append(PlanWarning("policy_overlap", decision.backup.id, ", ".join(names)))
    if decision.action == "delete":
        return Decision(decision.backup, "keep", (reason,))
    return Decision(decision.backup, "keep", (*decision.reasons, reason))


# --- one group ---------------------------------------------------------------------------------------------


def _plan_group(group: list[Backup], context: _Context, warnings: list[PlanWarning]) -> list[Decision]:
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


def _plan_successes(successes: list[Backup], context: _Context) -> list[Decision]:
    if not successes:
        return []
    policy = context.policy
    keep = context.keep
    reasons: list[list[str]] = [context.pin_reasons(b) for b in successes]
    _mark_last(reasons, keep.last)
    _mark_buckets(reasons, successes, context)
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


def _mark_buckets(reasons: list[list[str]], successes: list[Backup], context: _Context) -> None:
    """The bucket rules (hourly, daily, ...): the newest backup of each of the newest `count` buckets."""
    keep = context.keep
    rules = [(rule, bucket, getattr(keep, rule)) for rule, bucket in BUCKETS.items()]
    rules = [(rule, bucket, count) for rule, bucket, count in rules if count == UNLIMITED or count > 0]
    if not rules:
        return
    tz = context.tz
    locals_ = [datetime.fromtimestamp(b.start_ms / 1000, tz) for b in successes]
    for rule, bucket, count in rules:
        _mark_bucket_rule(reasons, locals_, rule, bucket, count, context)
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
    context: _Context,
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
            reasons[i].append(context.bucket_reason(rule, bucket, spent, count, key))
            kept_oldest = i == len(locals_) - 1
    slots_left = limit is None or spent < limit
    if slots_left and not kept_oldest:
        reasons[-1].append(f"oldest {rule}")


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


def _plan_failed(failed: list[Backup], context: _Context, newest_success_ms: int | None) -> list[Decision]:
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
