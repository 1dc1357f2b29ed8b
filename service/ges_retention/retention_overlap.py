"""Overlap: a backup selected by two or more policies acting on the same listing is never deleted
(`overlap: a, b`, and a `policy_overlap` warning). Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from ges_retention.backup import Backup
from ges_retention.policy import Policy
from ges_retention.retention_decisions import Decision, PlanWarning
from ges_retention.retention_selection import select_backups

__all__ = ["apply_overlap", "find_overlaps"]


def find_overlaps(backups: Sequence[Backup], policies: Iterable[Policy]) -> dict[str, tuple[str, ...]]:
    """backup id -> the names (sorted) of every policy that selects it, for backups selected by two or more."""
    selectors: dict[str, list[str]] = defaultdict(list)
    for policy in policies:
        for backup in select_backups(backups, policy):
            selectors[backup.id].append(policy.name)
    return {bid: tuple(sorted(names)) for bid, names in selectors.items() if len(names) > 1}


def apply_overlap(decision: Decision, overlaps: Mapping[str, tuple[str, ...]], warnings: list[PlanWarning]) -> Decision:
    """An overlapping backup is kept: a deletion's reason goes, a keep's reasons gain the overlap's."""
    names = overlaps.get(decision.backup.id)
    if not names:
        return decision
    reason = f"overlap: {', '.join(names)}"
    warnings.append(PlanWarning("policy_overlap", decision.backup.id, ", ".join(names)))
    if decision.action == "delete":
        return Decision(decision.backup, "keep", (reason,))
    return Decision(decision.backup, "keep", (*decision.reasons, reason))
