"""What a plan says: each backup's `Decision` (keep or delete, and why), the `PlanWarning`s, and the `Plan`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ges_retention.backup import Backup

__all__ = ["Action", "Decision", "Plan", "PlanWarning"]

Action = Literal["keep", "delete"]


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
