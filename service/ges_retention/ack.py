"""Acknowledging a definition held by the change gate: `ges-retention ack` and `POST /v1/policies/{name}/ack`.

An ack names a gate digest: this definition, in this overlap context, against this baseline (`change_gate.py`). The
command line and HTTP record it in the state (`put_ack`) only when it is the file's current gate digest for that
policy; otherwise exit 2 / 409 `digest_mismatch`. Acking a definition that is not held is recorded too, with a note.
An ack starts no run: the next run of that definition proceeds and, once completed, becomes the baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import structlog

from ges_retention.change_gate import current_gate_digest, gate_budget, gate_context, is_baseline, peers_of
from ges_retention.change_held import recorded_hold
from ges_retention.errors import GesRetentionError
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyFile
from ges_retention.state import Baseline, RunRecord, Scope, Store

if TYPE_CHECKING:
    import argparse

    from ges_retention.settings import Settings

__all__ = [
    "AckRecorded",
    "DigestMismatch",
    "UnknownPolicy",
    "ack_command",
    "ack_definition",
    "normalise_digest",
]

log = structlog.get_logger("ges_retention.ack")

AckedBy = Literal["cli", "http"]


class UnknownPolicy(GesRetentionError):
    """The file has no policy of that name (exit 2; HTTP 404)."""


class DigestMismatch(GesRetentionError):
    """The digest is not the policy's current gate digest (exit 2; HTTP 409 `digest_mismatch`)."""


@dataclass(frozen=True, slots=True)
class AckRecorded:
    policy: str
    digest: str
    location: str
    note: str | None
    """Why the ack changes nothing now (the definition is its own baseline, or is not held), or None."""
    endpoint: str = ""
    project_id: str = ""
    """The scope the ack is recorded in: a run or daemon resolving another endpoint never reads it."""
    scope_seen: bool = True
    """Whether the journal has a run or a baseline of the policy in that scope (False: say so, it may be the wrong
    one)."""


def normalise_digest(text: str) -> str:
    """A sha256 in hex (64 digits, any case), lowercased; else `DigestMismatch`."""
    value = text.strip().lower() if isinstance(text, str) else ""
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise DigestMismatch(f"a gate digest is 64 hex digits (sha256), got {text[:80]!r}")
    return value


async def ack_definition(
    store: Store,
    policy_file: PolicyFile,
    name: str,
    digest: str,
    *,
    endpoint_of: Callable[[Policy], str],
    by: AckedBy,
) -> AckRecorded:
    """Record the ack of `name`'s current gate digest, which `digest` must be; logs `policy_change_acked`."""
    policy = next((p for p in policy_file.policies if p.name == name), None)
    if policy is None:
        raise UnknownPolicy(f"policy {name!r} is not in {policy_file.source}")
    wanted = normalise_digest(digest)
    scope = Scope(policy.name, endpoint_of(policy), policy.project_id)
    baseline = await store.get_baseline(scope)
    peers = peers_of(policy, policy_file.policies, endpoint_of)
    current = current_gate_digest(policy, peers, baseline)
    if wanted != current:
        raise DigestMismatch(
            f"digest {wanted} is not the current gate digest of policy {name!r} in {policy_file.source} (its "
            "definition, its overlap context or its baseline changed since): plan again and acknowledge the digest "
            "it shows"
        )
    await store.put_ack(scope, wanted, by=by)
    log.info("policy_change_acked", policy=policy.name, digest=wanted, by=by)
    runs = await store.list_runs(policy=policy.name, limit=_RUNS_LOOKED_AT)
    note = _not_held_note(policy, peers, baseline, wanted, runs)
    seen = baseline is not None or _ran_in(runs, scope)
    return AckRecorded(policy.name, wanted, store.info.location, note, scope.endpoint, scope.project_id, seen)


# How many of a policy's newest runs `ack` reads: for the hold its last finished run recorded, and for the scopes runs
# of it were made in.
_RUNS_LOOKED_AT = 50


def _not_held_note(
    policy: Policy, peers: list[Policy], baseline: Baseline | None, digest: str, runs: list[RunRecord]
) -> str | None:
    """Why acknowledging this definition changes nothing now, or None when the policy is held for it."""
    if baseline is not None and is_baseline(gate_context(policy, peers), baseline):
        return "this definition is already the policy's baseline: nothing is held; the ack is recorded anyway"
    if gate_budget(policy, baseline) is None:
        return "safety.change_budget is unlimited: the gate never holds this policy; the ack is recorded anyway"
    last = next((run for run in runs if run.ended_at is not None), None)
    recorded = recorded_hold(last, policy.name)
    if recorded is not None and recorded.get("digest") == digest:
        return None  # its last run was held for exactly this: the ack releases it
    return (
        "no run has been held for this definition (its last run was not held for it): the ack is recorded and lets "
        "its next run proceed should the change gate hold it"
    )


def _ran_in(runs: list[RunRecord], scope: Scope) -> bool:
    """Whether a recorded run of the policy ran in `scope` (a run recorded before runs kept their scopes: assumed)."""
    for run in runs:
        scopes = run.counts.get("scopes")
        if not isinstance(scopes, dict):
            return True  # an older record: its scope is not known, so no warning
        if scopes.get(scope.policy) == {"endpoint": scope.endpoint, "project_id": scope.project_id}:
            return True
    return False


def ack_command(args: argparse.Namespace, settings: Settings) -> int:
    """`ges-retention ack POLICY_FILE --policy NAME --digest SHA256`: 0 recorded, 2 not the current digest (or a bad
    file, settings or state). Needs an existing state; `:memory:` is refused (an ack there would vanish)."""
    import asyncio

    from ges_retention.policy_loading import load_policy_file
    from ges_retention.service import policy_endpoint
    from ges_retention.state_access import existing_store, state_location

    policy_file = load_policy_file(args.policy_file)
    location = state_location(settings)

    async def main() -> AckRecorded:
        async with existing_store(location, durable_for="ack") as store:
            return await ack_definition(
                store,
                policy_file,
                args.policy,
                args.digest,
                endpoint_of=lambda p: policy_endpoint(p, settings),
                by="cli",
            )

    done = asyncio.run(main())
    print(f"acknowledged policy {done.policy}: digest {done.digest} recorded in {done.location}")
    print(f"scope: endpoint {done.endpoint}, project {done.project_id}")
    if done.note:
        print(f"note: {done.note}")
    if not done.scope_seen:
        log.warning(
            "ack_scope_unseen",
            policy=done.policy,
            endpoint=done.endpoint,
            project_id=done.project_id,
            detail=(
                "the state has no run or baseline of this policy at this endpoint and project: a run or daemon that "
                "resolves another endpoint (GES_RETENTION_ENDPOINT) never reads this ack"
            ),
        )
    return 0
