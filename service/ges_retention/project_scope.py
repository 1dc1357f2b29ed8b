"""The unit a listing belongs to: one project id at one GES endpoint.

A project id names a project only at an endpoint: the same id at two endpoints (two URLs of a region, an emulator
beside production, a policy's own `endpoint:` beside another's) is two sets of backups. So a run lists each
`ProjectScope` once, resolves overlap, marks orphans and reads the quota per scope, and a policy is planned over the
listing of the scope its deletions go to. (The journal's `state.Scope` adds the policy's name to these two.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ges_retention.policy import Policy

__all__ = ["ProjectScope"]


class ProjectScope(NamedTuple):
    """(effective endpoint, project_id): hashable and ordered, so listings are keyed and listed in a stable order."""

    endpoint: str
    project_id: str

    @classmethod
    def of(cls, policy: Policy, endpoint_of: Callable[[Policy], str]) -> ProjectScope:
        """The scope a policy acts in: `endpoint_of` gives the endpoint its requests go to (settings applied)."""
        return cls(endpoint_of(policy), policy.project_id)
