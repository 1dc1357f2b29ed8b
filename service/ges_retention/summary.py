"""What a run did: `PolicyResult` per policy, `RunSummary` per run, the outcome rules and the run's exit code.

Pure data and rules: no I/O, no logging. The runner fills these in; `report` renders them; the run events carry
them to their subscribers. The exit code of `run` and of `plan` is decided here and nowhere else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ges_retention.exit_codes import ExitCode, combine
from ges_retention.retention_decisions import Decision, Plan
from ges_retention.retention_holds import HoldLike

if TYPE_CHECKING:  # (the gate imports the state's digests: not needed to read a summary)
    from ges_retention.change_gate import GateDecision
    from ges_retention.two_phase import TwoPhase

__all__ = [
    "COUNTS",
    "DeletionOutcome",
    "Outcome",
    "PolicyResult",
    "RunSummary",
    "Trigger",
    "exit_code",
    "megabytes",
    "new_run_id",
    "policy_outcome",
    "run_outcome",
]

Outcome = Literal["ok", "partial", "failed", "safety_stop", "change_held", "dry_run", "interrupted"]
Trigger = Literal["cli", "schedule", "file", "signal", "http", "takeover"]
DeletionOutcome = Literal["deleted", "already_deleted", "failed", "not_started"]
# What a policy's run counts: `planned` = deleted + already_deleted + failed + not_started + pending (when it acts:
# neither dry, held by the change gate nor safety-stopped). `pending`: kept in this run, waiting out confirm_after.
COUNTS = ("planned", "deleted", "already_deleted", "failed", "not_started", "pending")
# The outcomes whose backup ids `run --format json` lists per policy.
ID_LISTS = ("deleted", "already_deleted", "failed", "pending", "not_started")


def new_run_id() -> str:
    """The id bound to every log line of a run (and returned by `POST /v1/runs`)."""
    return uuid.uuid4().hex[:16]


@dataclass(slots=True)
class PolicyResult:
    """One policy's part of a run: its plan (or why there is none) and what became of each planned deletion."""

    name: str
    project_id: str
    endpoint: str = ""
    plan: Plan | None = None
    listing_error: str | None = None
    dry_run: bool = False
    enabled: bool = True  # `enabled: false` (paused): `run` never plans it, `plan` still shows it
    outcome: Outcome = "ok"
    ids: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in ID_LISTS})
    two_phase: TwoPhase | None = None  # the planned deletions' clocks (None: not computed, every deletion due)
    gate: GateDecision | None = None  # the change gate's verdict (None: not computed)
    acked_by: str | None = None  # `file`, `cli` or `http`: who acknowledged a held definition
    hold_details: Mapping[str, HoldLike] = field(default_factory=dict)  # the holds that kept this plan's backups
    holds_in_force: int = 0  # holds in force in the whole state when this plan was made
    # Planned deletions a hold placed during the run kept (the intent batch found it): backup id -> `held: ...`.
    held: dict[str, str] = field(default_factory=dict)
    # MB of the backups deleted by this run (not those found already gone; backups without a size not counted).
    freed_mb: float = 0.0

    def record(
        self, outcome: DeletionOutcome | Literal["pending"], backup_id: str, size_mb: float | None = None
    ) -> None:
        self.ids[outcome].append(backup_id)
        if outcome == "deleted" and size_mb is not None:
            self.freed_mb += size_mb

    @property
    def would_free_mb(self) -> float:
        """MB of what the plan would delete now (the due deletions; nothing under a safety stop); sizes not known
        are left out."""
        if self.plan is None or self.safety_stop:
            return 0.0
        return float(sum(d.backup.size_mb for d in self.due if d.backup.size_mb is not None))

    def sizes(self) -> dict[str, float]:
        """`freed_mb` for a real run, `would_free_mb` for a dry one (a policy held by the change gate runs dry)."""
        if self.dry_run or self.change_held:
            return {"would_free_mb": megabytes(self.would_free_mb)}
        return {"freed_mb": megabytes(self.freed_mb)}

    @property
    def change_held(self) -> bool:
        """Held by the change gate and not acknowledged: the policy runs as a dry run."""
        return self.gate is not None and self.gate.held and self.acked_by is None

    @property
    def acts(self) -> bool:
        """Whether this policy deletes (and starts or cancels pending clocks) in this run."""
        return self.plan is not None and not (self.dry_run or self.safety_stop or self.change_held)

    @property
    def due(self) -> list[Decision]:
        """The planned deletions whose two-phase clock is up (all of them without two-phase), safety stop ignored."""
        if self.plan is None:
            return []
        return list(self.two_phase.due) if self.two_phase is not None else self.plan.planned

    @property
    def waiting(self) -> list[Decision]:
        """The planned deletions still waiting out `confirm_after`."""
        return list(self.two_phase.waiting) if self.two_phase is not None else []

    @property
    def holds(self) -> int:
        """Backups of this policy a hold kept."""
        return len(self.plan.held) if self.plan is not None else 0

    @property
    def planned(self) -> int:
        """Every deletion the plan decided, whether or not a safety stop holds them back, less those a hold placed
        during the run kept."""
        return len(self.plan.planned) - len(self.held) if self.plan is not None else 0

    @property
    def kept(self) -> int:
        return len(self.plan.decisions) - self.planned if self.plan is not None else 0

    @property
    def safety_stop(self) -> bool:
        return self.plan is not None and self.plan.safety_stop

    @property
    def deleted(self) -> int:
        return len(self.ids["deleted"])

    @property
    def already_deleted(self) -> int:
        return len(self.ids["already_deleted"])

    @property
    def failed(self) -> int:
        return len(self.ids["failed"])

    @property
    def not_started(self) -> int:
        return len(self.ids["not_started"])

    @property
    def pending(self) -> int:
        return len(self.ids["pending"])

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in COUNTS}

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "project_id": self.project_id,
            **self.counts(),
            **self.sizes(),
            "dry_run": self.dry_run,
            "safety_stop": self.safety_stop,
            "change_held": self.gate.to_json() if self.change_held and self.gate is not None else None,
            "listing_error": self.listing_error,
            "outcome": self.outcome,
            "ids": {name: list(ids) for name, ids in self.ids.items()},
            "held": dict(self.held),
        }


@dataclass(slots=True)
class RunSummary:
    run_id: str
    trigger: Trigger
    dry_run: bool
    policies: list[PolicyResult] = field(default_factory=list)
    listed: int = 0
    skipped_projects: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    interrupted: bool = False
    outcome: Outcome = "ok"
    # Why the journal could not be written during the run (`state_unavailable`): the run exits 1.
    state_error: str | None = None
    # Policies left out because another process held their run lock: name -> holder (`running_elsewhere`).
    skipped_policies: dict[str, str | None] = field(default_factory=dict)

    def total(self, name: str) -> int:
        return sum(int(getattr(p, name)) for p in self.policies)

    def counts(self) -> dict[str, int]:
        """The run's totals, as `run_finished` and the JSON summary give them."""
        return {"listed": self.listed, "kept": self.kept, **{name: self.total(name) for name in COUNTS}}

    @property
    def kept(self) -> int:
        return self.total("kept")

    def sizes(self) -> dict[str, float]:
        """The run's `freed_mb` (over its real policies) and, when some policy was dry, `would_free_mb`."""
        real = [p for p in self.policies if not (p.dry_run or p.change_held)]
        dry = [p for p in self.policies if p.dry_run or p.change_held]
        sizes: dict[str, float] = {}
        if real or not dry:
            sizes["freed_mb"] = megabytes(sum(p.freed_mb for p in real))
        if dry:
            sizes["would_free_mb"] = megabytes(sum(p.would_free_mb for p in dry))
        return sizes

    def exit_code(self, interrupted_code: ExitCode = ExitCode.INTERRUPTED_SIGTERM) -> ExitCode:
        code = exit_code(self.policies, interrupted_code if self.interrupted else None)
        return combine([code, ExitCode.FAILED]) if self.state_error is not None else code

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "outcome": self.outcome,
            "dry_run": self.dry_run,
            **self.counts(),
            **self.sizes(),
            "skipped_projects": self.skipped_projects,
            "duration_s": round(self.duration_s, 3),
            **({"state_error": self.state_error} if self.state_error is not None else {}),
            **({"skipped_policies": dict(self.skipped_policies)} if self.skipped_policies else {}),
            "policies": [p.to_json() for p in self.policies],
        }


def megabytes(value: float) -> float:
    """A sum of sizes as shown: MB to three decimals."""
    return float(round(value, 3))


def exit_code(results: Iterable[PolicyResult], interrupted: ExitCode | None = None) -> ExitCode:
    """The exit code of `run` and `plan`: 1 when a listing or a deletion failed or did not start, 3 for a safety
    stop or a policy held by the change gate, the signal's code when interrupted; combined by the contract's
    precedence."""
    codes = [ExitCode.OK]
    if interrupted is not None:
        codes.append(interrupted)
    for result in results:
        if result.listing_error is not None or result.failed or result.not_started:
            codes.append(ExitCode.FAILED)
        if result.safety_stop or result.change_held:
            codes.append(ExitCode.SAFETY_STOP)
    return combine(codes)


def policy_outcome(result: PolicyResult, interrupted: bool) -> Outcome:
    if result.listing_error is not None:
        return "failed"
    if result.change_held:
        return "change_held"
    if result.safety_stop:
        return "safety_stop"
    if result.dry_run:
        return "dry_run"
    if result.not_started and interrupted:
        return "interrupted"
    if result.failed or result.not_started:
        done = result.deleted + result.already_deleted
        return "failed" if done == 0 else "partial"
    return "ok"


def run_outcome(policies: Sequence[PolicyResult], interrupted: bool) -> Outcome:
    outcomes = {p.outcome for p in policies}
    if interrupted:
        return "interrupted"
    if outcomes & {"failed", "partial"}:
        return "failed" if outcomes <= {"failed"} else "partial"
    if "safety_stop" in outcomes:
        return "safety_stop"
    if "change_held" in outcomes:
        return "change_held"
    if outcomes and outcomes <= {"dry_run"}:
        return "dry_run"
    return "ok"
