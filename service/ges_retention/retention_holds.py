"""Holds in the planner: which holds are in force, how a hold and a backup id match, and how a hold keeps a backup.

A backup with a hold in force is kept by every policy (`held: REASON`, plus ` until ISO` when it ends), right after
the status and pin reasons; like a pin it still takes part in the bucket rules. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from ges_retention.retention_decisions import Decision

__all__ = ["HoldLike", "apply_hold", "held_reason", "hold_key", "holds_in_force"]


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


# Reasons that come before `held: ...` in the contract's order.
_BEFORE_HELD = ("future", "backing_up", "unknown status ", "pinned id", "pinned name")


def apply_hold(decision: Decision, in_force: Mapping[str, str], held: list[str]) -> Decision:
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
