"""The change gate (`safety.change_budget`), the pure part: would this definition delete much more than the one the
policy last completed a real run with?

A policy's **baseline** is its effective definition at its last completed real run, with the effective definitions
of the other policies of the file in the same (endpoint, project_id) (the overlap context). When the current
definition or context differs from it, the same listing, `now` and holds are planned under both; **extra** = the
backups the new plan deletes (due or not, safety stop ignored) that the baseline's plan does not. No baseline (a
first real run, a renamed policy, a new state): the baseline keeps everything, so every planned deletion is extra.
The policy is **held** when extra > the smaller of the baseline's and the new `change_budget`.

The **gate digest** is what an acknowledgement approves: this definition, in this overlap context, against this
baseline (`state/gate_digest.py`). Pure: no I/O; the runner reads the baseline and the acks around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from ges_retention.backup import Backup
from ges_retention.policy import Policy
from ges_retention.policy_definition import definition_document
from ges_retention.policy_fields import UNLIMITED
from ges_retention.retention import plan
from ges_retention.retention_decisions import Plan
from ges_retention.retention_holds import HoldLike
from ges_retention.retention_overlap import find_overlaps
from ges_retention.state.gate_digest import canonical_json, definition_digest, gate_digest

__all__ = [
    "SAMPLE_IDS",
    "BaselineLike",
    "GateContext",
    "GateDecision",
    "change_gate",
    "current_gate_digest",
    "gate_budget",
    "gate_context",
    "is_baseline",
    "peers_of",
]

SAMPLE_IDS = 20


class BaselineLike(Protocol):
    """What the gate needs of a baseline (the journal's `Baseline` is one)."""

    @property
    def definition(self) -> Any: ...

    @property
    def overlap(self) -> Any: ...

    @property
    def gate_digest(self) -> str: ...


@dataclass(frozen=True, slots=True)
class GateContext:
    """A definition in its overlap context, as JSON values: what a baseline records after a completed real run."""

    definition: dict[str, Any]
    overlap: list[dict[str, Any]]  # the peers' effective definitions, ordered by their digests
    overlap_digests: list[str]  # sorted

    @property
    def digest(self) -> str:
        """The definition digest (what `run_on_change` compares)."""
        return definition_digest(self.definition)


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's verdict on one policy's plan."""

    digest: str  # the gate digest an ack must name
    context: GateContext
    changed: bool  # the definition or its overlap context differs from the baseline's (or there is none)
    extra: tuple[str, ...]  # ids, sorted
    budget: int | None  # None = unlimited
    has_baseline: bool

    @property
    def held(self) -> bool:
        return self.changed and self.budget is not None and len(self.extra) > self.budget

    @property
    def sample_ids(self) -> list[str]:
        return list(self.extra[:SAMPLE_IDS])

    def to_json(self) -> dict[str, Any]:
        """`plan`'s `change_held` object."""
        return {
            "extra": len(self.extra),
            "budget": UNLIMITED if self.budget is None else self.budget,
            "digest": self.digest,
        }


def peers_of(policy: Policy, policies: Iterable[Policy], endpoint_of: Callable[[Policy], str]) -> list[Policy]:
    """The other policies of the file in the same (endpoint, project_id): the overlap context."""
    endpoint = endpoint_of(policy)
    return [
        p
        for p in policies
        if p.name != policy.name and p.project_id == policy.project_id and endpoint_of(p) == endpoint
    ]


def gate_context(policy: Policy, peers: Iterable[Policy]) -> GateContext:
    documents = sorted(((definition_document(p) for p in peers)), key=definition_digest)
    return GateContext(definition_document(policy), documents, sorted(definition_digest(d) for d in documents))


def current_gate_digest(policy: Policy, peers: Iterable[Policy], baseline: BaselineLike | None) -> str:
    """The digest an ack of `policy` (as written) must name now."""
    context = gate_context(policy, peers)
    return gate_digest(context.definition, context.overlap_digests, baseline.gate_digest if baseline else None)


def change_gate(
    policy: Policy,
    peers: Sequence[Policy],
    new_plan: Plan,
    backups: Sequence[Backup],
    now: datetime,
    holds: Mapping[str, HoldLike] | None,
    baseline: BaselineLike | None,
) -> GateDecision:
    """The gate for `policy` (as written in the file: no command-line override) whose plan over `backups` is
    `new_plan`, against `baseline` (None: none recorded)."""
    context = gate_context(policy, peers)
    digest = gate_digest(context.definition, context.overlap_digests, baseline.gate_digest if baseline else None)
    budget = _budget(policy)
    planned = sorted(d.backup.id for d in new_plan.planned)
    if baseline is None:
        return GateDecision(digest, context, True, tuple(planned), budget, has_baseline=False)
    if is_baseline(context, baseline):
        return GateDecision(digest, context, False, (), budget, has_baseline=True)
    before = _baseline_policies(policy.name, baseline)
    if before is None:  # a baseline this version cannot read: it keeps everything, as if there were none
        return GateDecision(digest, context, True, tuple(planned), budget, has_baseline=True)
    old, old_peers = before
    budget = _smaller(budget, _budget(old))
    overlaps = find_overlaps(backups, [old, *old_peers]) if old_peers else None
    old_deleted = {d.backup.id for d in plan(backups, old, now, holds, overlaps=overlaps).planned}
    extra = tuple(bid for bid in planned if bid not in old_deleted)
    return GateDecision(digest, context, True, extra, budget, has_baseline=True)


def gate_budget(policy: Policy, baseline: BaselineLike | None) -> int | None:
    """The budget the gate judges `policy` by against `baseline` (None: unlimited, never held): the smaller of its
    own `change_budget` and the baseline's."""
    budget = _budget(policy)
    before = _baseline_policies(policy.name, baseline) if baseline is not None else None
    return budget if before is None else _smaller(budget, _budget(before[0]))


def _budget(policy: Policy) -> int | None:
    budget = policy.safety.change_budget
    return None if budget == UNLIMITED else int(budget)


def _smaller(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def is_baseline(context: GateContext, baseline: BaselineLike) -> bool:
    """Whether a definition in its overlap context is exactly the baseline: the gate then has nothing to judge."""
    if canonical_json(context.definition) != canonical_json(baseline.definition):
        return False
    overlap = baseline.overlap if isinstance(baseline.overlap, list) else []
    return sorted(definition_digest(d) for d in overlap) == context.overlap_digests


def _baseline_policies(name: str, baseline: BaselineLike) -> tuple[Policy, list[Policy]] | None:
    """The baseline's definition and overlap context as policies, or None when they no longer validate."""
    overlap = baseline.overlap if isinstance(baseline.overlap, list) else None
    if not isinstance(baseline.definition, dict) or overlap is None:
        return None
    try:
        old = Policy.model_validate({**baseline.definition, "name": name})
        peers = [Policy.model_validate({**d, "name": f"{name}~peer{i}"}) for i, d in enumerate(overlap)]
    except (ValidationError, TypeError):
        return None
    return old, peers
