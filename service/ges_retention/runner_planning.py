"""A run's planning over its listings: `plan_listings` (every selected policy planned over its scope's listing,
overlap resolved per scope, then the gates applied) and `Planned`, what "list and plan" gives the run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from ges_retention.backup import Backup
from ges_retention.gates import PlanningMemory, apply_gates
from ges_retention.listing_trust import ProjectListing
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyFile
from ges_retention.project_scope import ProjectScope
from ges_retention.retention import plan_file
from ges_retention.summary import PolicyResult

# The runner's logger: `policy_ack_ignored` is a run's event.
log = structlog.get_logger("ges_retention.runner")

__all__ = ["Planned", "plan_listings"]


@dataclass(frozen=True, slots=True)
class Planned:
    """The plans of one "list and plan": one result per selected policy, in the order selected."""

    results: list[PolicyResult]
    listed: int
    skipped_projects: list[str]
    """The project ids of the scopes whose listing failed (which endpoint: in the `listing_failed` events)."""
    now: datetime
    state_error: str | None = None
    """The journal could not be written while planning (`state_unavailable`): nothing of this plan may be deleted."""


def plan_listings(
    policy_file: PolicyFile,
    selected: Sequence[Policy],
    listings: Mapping[ProjectScope, ProjectListing],
    now: datetime,
    *,
    dry_run: bool,
    endpoint_of: Callable[[Policy], str] = lambda _policy: "",
    memory: PlanningMemory | None = None,
) -> list[PolicyResult]:
    """Pure: a result per selected policy, planned over its scope's listing (`ProjectScope.of(policy, endpoint_of)`;
    or failed with the listing's reason), with the holds in force, then gated (`gates.apply_gates`: two-phase clocks,
    the change gate) with what the journal remembers (`memory`; None: nothing, as with no state). Overlap is resolved
    over every policy of the file in the same (endpoint, project_id)."""
    memory = memory if memory is not None else PlanningMemory()

    def scope_of(policy: Policy) -> ProjectScope:
        return ProjectScope.of(policy, endpoint_of)

    plannable = [p for p in selected if listings[scope_of(p)].backups is not None]
    empty: list[Backup] = []
    plans = plan_file(
        policy_file.policies,
        plannable,
        lambda scope: listings[scope].backups or empty,
        now,
        memory.holds,
        scope_of=scope_of,
    )
    by_name = {p.policy: p for p in plans}
    results = []
    for policy in selected:
        scope = scope_of(policy)
        listing = listings[scope]
        results.append(
            PolicyResult(
                policy.name,
                policy.project_id,
                scope.endpoint,
                plan=by_name.get(policy.name),
                listing_error=listing.error if listing.backups is None else None,
                dry_run=dry_run or policy.dry_run,
                enabled=policy.enabled,
            )
        )
    ignored = apply_gates(
        policy_file,
        results,
        lambda scope: listings[scope].backups,
        now,
        holds=memory.holds,
        memory=memory.policies,
        endpoint_of=endpoint_of,
    )
    for stale in ignored:  # (a pure function that logs: the one warning the planner's caller cannot miss)
        log.warning(
            "policy_ack_ignored", policy=stale.policy, digest=stale.written, reason="not the held definition's digest"
        )
    return results
