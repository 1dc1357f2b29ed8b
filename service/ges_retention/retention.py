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

This module is the entry point and the walk over groups; the parts live beside it: `retention_decisions` (Decision,
Plan, PlanWarning), `retention_selection` (what a policy selects), `retention_groups` (one group: statuses, the keep
rules, failed backups), `retention_buckets` (the bucket table and its marking), `retention_holds`, `retention_overlap`.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar, overload

from ges_retention.backup import Backup
from ges_retention.policy import Policy
from ges_retention.retention_decisions import Decision, Plan, PlanWarning
from ges_retention.retention_groups import GroupContext, plan_group
from ges_retention.retention_holds import HoldLike, apply_hold, holds_in_force
from ges_retention.retention_overlap import apply_overlap, find_overlaps
from ges_retention.retention_selection import iter_selected

# `Decision` and `Plan` are the planner's results: named here too, where `plan` returns them.
__all__ = ["Decision", "Plan", "plan", "plan_file"]

K = TypeVar("K", bound=Hashable)


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
    for backup in iter_selected(backups, policy):
        graphs[backup.graph_id].append(backup)

    context = GroupContext(policy, now, now_ms, tz)
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
                    graph_decisions.extend(plan_group(methods[method], context, warnings))
            else:
                graph_decisions = plan_group(members, context, warnings)
            if in_force:
                graph_decisions = [apply_hold(d, in_force, held) for d in graph_decisions]
            if overlaps:
                graph_decisions = [apply_overlap(d, overlaps, overlap_warnings) for d in graph_decisions]
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
