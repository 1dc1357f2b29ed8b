"""Two-phase deletion (`safety.confirm_after`) needs the journal; until it exists, real runs refuse such policies.

With `confirm_after: D` a backup may be deleted only once it has been planned for deletion continuously for D, which
only a durable record of when each deletion was first planned (the state's `pending` rows) can tell. Without it, a
real run would have to either delete at once (what the operator asked it not to do) or never delete (silently), so
`run` and the daemon's load refuse the policy instead (exit 2 / `policy_rejected`). `plan` and `simulate` still
accept it: `plan` shows such a deletion as an ordinary one, `simulate` keeps its own pending clocks.

Pure: no I/O. Called once by `run` and by the daemon's start and reload.
"""

from __future__ import annotations

from collections.abc import Iterable

from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyError, PolicyFile, Problem

__all__ = ["refuse_two_phase"]


def refuse_two_phase(policy_file: PolicyFile, policies: Iterable[Policy] | None = None) -> None:
    """Raise `PolicyError` naming every policy (of `policies`, default all) with `safety.confirm_after` > 0."""
    wanted = {p.name for p in (policy_file.policies if policies is None else policies)}
    problems = []
    for index, policy in enumerate(policy_file.policies):
        confirm_after = policy.safety.confirm_after
        if confirm_after is None or policy.name not in wanted:
            continue
        problems.append(
            Problem(
                ("policies", index, "safety", "confirm_after"),
                f"policy {policy.name!r} asks for two-phase deletion (confirm_after {confirm_after}), which needs the "
                "state (a journal of pending deletions) that this version does not have; refusing the policy rather "
                "than deleting at once: set confirm_after to 0 to run it (plan and simulate accept it)",
            )
        )
    if problems:
        raise PolicyError(policy_file.source, problems)
