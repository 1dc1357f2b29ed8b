"""Two-phase deletion (`safety.confirm_after`), the pure part: which planned deletions are due, which pending clocks
to start, which to cancel.

With `confirm_after: D` > 0 a real run deletes a backup only when its policy has a `pending` row for it whose
`pending_since` is at least D before now; otherwise it keeps the backup in this run and starts its clock. The clocks
live in the journal (`pending` rows); this module only decides, given them:

- `due`: planned deletions whose clock is old enough (every planned deletion when two-phase is off);
- `waiting`: planned deletions not due yet, with `pending_since` (None: no row yet, one is started) and `due_at`
  (`pending_since + D`, or `now + D` without a row);
- `cancel`: pending rows whose backup is still listed but no longer planned for deletion (kept, held, no longer
  selected), with the reasons the plan kept it;
- `gone`: pending rows whose backup is absent from the (trusted) listing.

Which of these a run acts on is the runner's business (`gate_state.settle_pending` writes the rows): only a real
run that is neither held by the change gate nor safety-stopped starts or cancels clocks, and `max_deletes` counts
the whole plan, due or not (the planner's `safety_stop`). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from ges_retention.durations import Duration
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyError, PolicyFile, Problem
from ges_retention.retention_decisions import Decision, Plan

__all__ = ["NOT_SELECTED", "Clock", "TwoPhase", "refuse_without_durable_state", "two_phase"]

NOT_SELECTED = "no longer selected"


@dataclass(frozen=True, slots=True)
class Clock:
    """A planned deletion's two-phase clock. Without two-phase: `pending_since` and `due_at` None, `due` True."""

    pending_since: datetime | None
    due_at: datetime | None
    due: bool


_NOW = Clock(None, None, True)


@dataclass(frozen=True, slots=True)
class TwoPhase:
    """A plan's planned deletions split by their clocks, and what becomes of the policy's pending rows."""

    confirm_after: Duration | None
    clocks: Mapping[str, Clock]  # backup id -> clock, for every planned deletion
    due: tuple[Decision, ...]
    waiting: tuple[Decision, ...]
    cancel: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # backup id -> why it is not deleted now
    gone: tuple[str, ...] = ()

    def clock(self, backup_id: str) -> Clock:
        return self.clocks.get(backup_id, _NOW)

    @property
    def pending_ids(self) -> list[str]:
        return [d.backup.id for d in self.waiting]


def two_phase(
    plan: Plan,
    pending_since: Mapping[str, datetime],
    confirm_after: Duration | None,
    now: datetime,
    tz: tzinfo,
    *,
    listed_ids: Collection[str] | None = None,
) -> TwoPhase:
    """Split `plan`'s planned deletions (safety stop ignored) by their clocks.

    `pending_since`: the policy's `pending` rows (backup id -> when first planned). `listed_ids`: every id of the
    project's trusted listing, to tell a pending backup that is gone from one that is kept; None = not known (no
    row is cancelled or marked gone).
    """
    planned = plan.planned
    cancel, gone = _rows_to_close(plan, pending_since, listed_ids)
    if confirm_after is None:
        return TwoPhase(None, {}, tuple(planned), (), cancel, gone)
    due_by = confirm_after.before(now, tz)
    clocks: dict[str, Clock] = {}
    due: list[Decision] = []
    waiting: list[Decision] = []
    for decision in planned:
        since = pending_since.get(decision.backup.id)
        if since is not None and since <= due_by:
            clocks[decision.backup.id] = Clock(since, confirm_after.after(since, tz), True)
            due.append(decision)
        else:
            clocks[decision.backup.id] = Clock(since, confirm_after.after(since or now, tz), False)
            waiting.append(decision)
    return TwoPhase(confirm_after, clocks, tuple(due), tuple(waiting), cancel, gone)


def _rows_to_close(
    plan: Plan, pending_since: Mapping[str, datetime], listed_ids: Collection[str] | None
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    if listed_ids is None or not pending_since:
        return {}, ()
    decided: dict[str, Decision] = {d.backup.id: d for d in plan.decisions}
    cancel: dict[str, tuple[str, ...]] = {}
    gone: list[str] = []
    for backup_id in sorted(pending_since):
        decision = decided.get(backup_id)
        if decision is not None and decision.is_delete:
            continue
        if backup_id not in listed_ids:
            gone.append(backup_id)
        else:
            cancel[backup_id] = decision.reasons if decision is not None else (NOT_SELECTED,)
    return cancel, tuple(gone)


def refuse_without_durable_state(policy_file: PolicyFile, policies: Iterable[Policy], *, state_display: str) -> None:
    """`run` on a state that keeps nothing (`:memory:`): raise `PolicyError` naming every selected policy with
    `safety.confirm_after` > 0. Its pending clocks would die with the process, so it could never delete (silently),
    and deleting at once would ignore what the operator asked."""
    wanted = {p.name for p in policies}
    problems = []
    for index, policy in enumerate(policy_file.policies):
        confirm_after = policy.safety.confirm_after
        if confirm_after is None or policy.name not in wanted:
            continue
        problems.append(
            Problem(
                ("policies", index, "safety", "confirm_after"),
                f"policy {policy.name!r} asks for two-phase deletion (confirm_after {confirm_after}), whose pending "
                f"clocks need a durable state, and GES_RETENTION_STATE is {state_display}: point it at a file or a "
                "postgresql:// URL, or set confirm_after to 0",
            )
        )
    if problems:
        raise PolicyError(policy_file.source, problems)
