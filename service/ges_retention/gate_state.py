"""What the gates read from and write to the state, around the pure `gates.py` (the journal's seam calls these).

- `read_memory`: before planning, the holds in force and each selected policy's pending clocks and baseline;
- `find_acks`: once the gate digests are known, acknowledgements recorded by `ack` or `POST .../ack`;
- `settle_pending`: for a policy that acts in this run, start the clocks of its waiting deletions and close the
  pending rows its plan no longer deletes (`cancelled`) or that vanished from the listing (`gone`);
- `record_baselines`: after a completed real run, its definition in its overlap context becomes the baseline.

Every store error propagates (the journal turns it into `JournalUnavailable`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from ges_retention.gates import PlanningMemory, PolicyMemory
from ges_retention.policy import Policy
from ges_retention.state import PlannedDeletion, Scope, Store
from ges_retention.summary import PolicyResult, RunSummary

__all__ = ["GONE", "find_acks", "read_memory", "record_baselines", "settle_pending"]

GONE = "gone"
# A real run whose policy reached one of these outcomes completed: its definition becomes the baseline.
_COMPLETED = ("ok", "partial")


def _scope(policy: Policy, endpoint_of: Callable[[Policy], str]) -> Scope:
    return Scope(policy.name, endpoint_of(policy), policy.project_id)


def result_scope(result: PolicyResult) -> Scope:
    return Scope(result.name, result.endpoint, result.project_id)


async def read_memory(
    store: Store, selected: Sequence[Policy], endpoint_of: Callable[[Policy], str], now: datetime
) -> PlanningMemory:
    holds = await store.holds_in_force(at=now)
    policies: dict[str, PolicyMemory] = {}
    for policy in selected:
        scope = _scope(policy, endpoint_of)
        rows = await store.active_deletions(scope)
        pending = {r.backup.backup_id: r.pending_since for r in rows if r.state == "pending" and r.pending_since}
        policies[policy.name] = PolicyMemory(pending, await store.get_baseline(scope))
    return PlanningMemory(holds, policies)


async def find_acks(store: Store, results: Sequence[PolicyResult]) -> None:
    """A held definition acknowledged in the state proceeds (`acked_by` = who acknowledged it)."""
    for result in results:
        gate = result.gate
        if gate is None or not gate.held or result.acked_by is not None:
            continue
        ack = await store.find_ack(result_scope(result), gate.digest)
        if ack is not None:
            result.acked_by = ack.by


async def settle_pending(store: Store, run_id: str, result: PolicyResult, now: datetime) -> None:
    """Two-phase writes of a policy that acts in this run: pending rows for its waiting deletions (recorded as
    `pending` in the result), `cancelled` and `gone` rows for what it no longer deletes."""
    two_phase = result.two_phase
    if two_phase is None or not result.acts:
        return
    from ges_retention.journal import backup_facts  # (the journal calls this module: imported when first used)

    scope = result_scope(result)
    if two_phase.waiting:
        items = [PlannedDeletion(backup_facts(d.backup), tuple(d.reasons)) for d in two_phase.waiting]
        await store.mark_pending(run_id, scope, items, now=now)
        for decision in two_phase.waiting:
            result.record("pending", decision.backup.id)
    if two_phase.cancel:
        await store.cancel_pending(run_id, scope, two_phase.cancel, state="cancelled", now=now)
    if two_phase.gone:
        await store.cancel_pending(run_id, scope, {bid: (GONE,) for bid in two_phase.gone}, state="gone", now=now)


async def record_baselines(store: Store, summary: RunSummary) -> None:
    """A real run that completed under a changed (or first) definition: that definition is the baseline now."""
    if summary.interrupted or summary.state_error is not None:
        return
    for result in summary.policies:
        gate = result.gate
        if gate is None or not gate.changed or not result.acts or result.outcome not in _COMPLETED:
            continue
        await store.put_baseline(
            result_scope(result),
            definition=gate.context.definition,
            overlap=gate.context.overlap,
            gate_digest=gate.digest,
            run_id=summary.run_id,
        )
