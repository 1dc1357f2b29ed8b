"""The gates before planning ends (pure): each planned policy's two-phase clocks and its change gate.

The runner reads what the journal knows (holds in force, each policy's pending clocks and baseline) before planning
ends, plans with the holds, then calls `apply_gates` to fill each `PolicyResult`'s `two_phase` and `gate` (and
`acked_by` when the file's own `safety.ack` names the gate digest). Acknowledgements kept in the state are looked up
by the runner afterwards (they need the digest computed here). `plan` comes through here too, so it shows what a run
would do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ges_retention.backup import Backup
from ges_retention.change_gate import BaselineLike, change_gate, peers_of
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyFile
from ges_retention.project_scope import ProjectScope
from ges_retention.retention_holds import HoldLike, hold_key
from ges_retention.summary import PolicyResult
from ges_retention.two_phase import two_phase

__all__ = ["FileAck", "PlanningMemory", "PolicyMemory", "apply_gates"]


@dataclass(frozen=True, slots=True)
class PolicyMemory:
    """What the journal knows of one policy (its scope), read before planning ends."""

    pending_since: Mapping[str, datetime] = field(default_factory=dict)
    baseline: BaselineLike | None = None


@dataclass(frozen=True, slots=True)
class PlanningMemory:
    """What the journal knows before planning: the holds in force, and per selected policy its memory."""

    holds: Mapping[str, HoldLike] = field(default_factory=dict)
    policies: Mapping[str, PolicyMemory] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FileAck:
    """A `safety.ack` in the file that does not name the held definition's gate digest: ignored, with a warning."""

    policy: str
    written: str
    digest: str


_NOTHING = PolicyMemory()


def apply_gates(
    policy_file: PolicyFile,
    results: Sequence[PolicyResult],
    backups_of: Callable[[ProjectScope], Sequence[Backup] | None],
    now: datetime,
    *,
    holds: Mapping[str, HoldLike] | None = None,
    memory: Mapping[str, PolicyMemory] | None = None,
    endpoint_of: Callable[[Policy], str] = lambda _policy: "",
) -> list[FileAck]:
    """Fill `two_phase`, `gate` and (for a matching `safety.ack`) `acked_by` of every planned result.

    `backups_of(scope)`: the listing of a result's (endpoint, project_id), None when it failed. The gate judges the
    policy as written in the file (a command-line `--max-deletes` is not part of it). Returns
    the file acks that were ignored because they do not match, for the caller to warn about."""
    by_name = {p.name: p for p in policy_file.policies}
    ignored: list[FileAck] = []
    for result in results:
        policy = by_name.get(result.name)
        backups = backups_of(ProjectScope(result.endpoint, result.project_id))
        if result.plan is None or policy is None or backups is None:
            continue
        known = (memory or {}).get(result.name, _NOTHING)
        result.two_phase = two_phase(
            result.plan,
            known.pending_since,
            policy.safety.confirm_after,
            now,
            policy.tz,
            listed_ids={b.id for b in backups},
        )
        peers = peers_of(policy, policy_file.policies, endpoint_of)
        gate = change_gate(policy, peers, result.plan, backups, now, holds, known.baseline)
        result.gate = gate
        result.hold_details = _hold_details(result.plan.held, holds) if holds else {}
        result.holds_in_force = len(holds or {})
        written = policy.safety.ack
        if gate.held and written is not None:
            if written == gate.digest:
                result.acked_by = "file"
            else:
                ignored.append(FileAck(policy.name, written, gate.digest))
    return ignored


def _hold_details(held: Sequence[str], holds: Mapping[str, HoldLike]) -> dict[str, HoldLike]:
    """The hold of each backup a plan kept, matched as the planner matched it (`hold_key`: any case)."""
    by_key = {hold_key(bid): hold for bid, hold in sorted(holds.items())}
    return {bid: by_key[hold_key(bid)] for bid in held}
