"""Whether the change gate holds each policy, as the journal knows it: the same after a restart, a reload or a
one-shot `run` as in the process that ran the held run.

A policy is **held** while its last finished run (in the journal, whoever ran it) recorded it held by the change gate
(the run's `counts.change_held[policy]` = `{"extra", "budget", "digest"}`) and nothing has released it since:
- an ack of its current gate digest (`ges-retention ack`, `POST /v1/policies/{name}/ack`, or `safety.ack` in the
  file): its next run proceeds;
- its definition and overlap context are its baseline again (a reverted change): the gate has nothing to judge.
A definition changed in any other way stays held until its next run judges it: when in doubt, a person looks.

`GET /v1/policies` (`change_held`) reads `journal_change_held`; `ChangeHeldGauge` sets
`ges_retention_policy_change_held{policy}` from it at the daemon's start, once the state connects, after each
reload, after an ack over HTTP and at each scrape of `/metrics` (so that what another process did, a one-shot `run`,
`ges-retention ack` or another replica, shows at once on every replica); a run sets the gauge itself
(`events.MetricsEvents`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from ges_retention.change_gate import current_gate_digest, gate_context, is_baseline, peers_of
from ges_retention.state import RunRecord, Scope, StateError, Store

if TYPE_CHECKING:
    from ges_retention.metrics import Metrics
    from ges_retention.policy import Policy
    from ges_retention.policy_loading import PolicyFile

__all__ = ["ChangeHeldGauge", "journal_change_held", "last_finished_run", "recorded_hold"]

log = structlog.get_logger("ges_retention.daemon")

HeldView = dict[str, Any]
"""`{"extra", "budget", "digest"}`: what the held run recorded."""

# How many of a policy's newest runs are looked through for the last one that ended (a crashed run has no end).
_RUNS_LOOKED_AT = 5


def recorded_hold(run: RunRecord | None, policy: str) -> HeldView | None:
    """The change gate's hold of `policy` that a finished run recorded, or None (not held in it, or no such run)."""
    if run is None or run.ended_at is None:
        return None
    held = run.counts.get("change_held")
    if not isinstance(held, Mapping):
        return None
    view = held.get(policy)
    return dict(view) if isinstance(view, Mapping) else None


async def last_finished_run(store: Store, policy: str) -> RunRecord | None:
    runs = await store.list_runs(policy=policy, limit=_RUNS_LOOKED_AT)
    return next((run for run in runs if run.ended_at is not None), None)


async def _released(
    store: Store, policy: Policy, policy_file: PolicyFile, endpoint_of: Callable[[Policy], str]
) -> bool:
    """Whether the next run of `policy` as loaded now would not be held for the change it was held for: its current
    gate digest is acknowledged, or it is its baseline again."""
    scope = Scope(policy.name, endpoint_of(policy), policy.project_id)
    baseline = await store.get_baseline(scope)
    peers = peers_of(policy, policy_file.policies, endpoint_of)
    if baseline is not None and is_baseline(gate_context(policy, peers), baseline):
        return True
    digest = current_gate_digest(policy, peers, baseline)
    if policy.safety.ack == digest:
        return True
    return await store.find_ack(scope, digest) is not None


async def journal_change_held(
    store: Store,
    policy_file: PolicyFile,
    endpoint_of: Callable[[Policy], str],
    last_runs: Mapping[str, RunRecord | None] | None = None,
) -> dict[str, HeldView | None]:
    """Per policy of the file, what its last finished run recorded of the change gate's hold while nothing has
    released it (see the module), else None. `last_runs`: each policy's last finished run, when already read. A
    state error propagates."""
    held: dict[str, HeldView | None] = {}
    for policy in policy_file.policies:
        if last_runs is not None and policy.name in last_runs:
            last = last_runs[policy.name]
        else:
            last = await last_finished_run(store, policy.name)
        recorded = recorded_hold(last, policy.name)
        released = recorded is None or await _released(store, policy, policy_file, endpoint_of)
        held[policy.name] = None if released else recorded
    return held


class ChangeHeldGauge:
    """`ges_retention_policy_change_held{policy}` from the journal, for the policies no run of this process has
    judged meanwhile (a run's own verdict is newer than the journal read it raced with)."""

    __slots__ = ("_endpoint_of", "_last_seen", "_loaded", "_metrics", "_running", "_spawn", "_store")

    def __init__(
        self,
        metrics: Metrics,
        *,
        store: Callable[[], Store | None],
        loaded: Callable[[], PolicyFile | None],
        endpoint_of: Callable[[Policy], str],
        running: Callable[[], set[str]],
        last_seen: Callable[[str], object],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._loaded = loaded
        self._endpoint_of = endpoint_of
        self._running = running
        self._last_seen = last_seen
        self._spawn = spawn

    def refresh(self) -> None:
        """Read the journal in the background and set the gauge (no state connected: nothing to read)."""
        if self._store() is not None and self._loaded() is not None:
            self._spawn(self.update())

    async def update(self) -> None:
        """Read the journal now and set the gauge; a state error is logged (`state_unavailable`), never raised."""
        store, policy_file = self._store(), self._loaded()
        if store is None or policy_file is None:
            return
        before = self.snapshot(policy_file)
        try:
            held = await journal_change_held(store, policy_file, self._endpoint_of)
        except StateError as exc:
            log.error("state_unavailable", error=str(exc), operation="change_held")
            return
        self.set(held, policy_file, before)

    def snapshot(self, policy_file: PolicyFile) -> dict[str, object]:
        """Each policy's last run as this process saw it, taken before a journal read (for `set`'s `before`)."""
        return {p.name: self._last_seen(p.name) for p in policy_file.policies}

    def set(
        self,
        held: Mapping[str, HeldView | None],
        policy_file: PolicyFile,
        before: Mapping[str, object] | None = None,
    ) -> None:
        """Set the gauge from `held` (read for `policy_file`), skipping what is stale: a newer load, a policy running
        now, or one whose run ended since the read began (`before`: each policy's last run as this process saw it)."""
        if self._loaded() is not policy_file:
            return  # a newer load: its own refresh decides
        running = self._running()
        for name, view in held.items():
            if name in running or (before is not None and self._last_seen(name) is not before.get(name)):
                continue
            self._metrics.policy_change_held.labels(name).set(0 if view is None else 1)
