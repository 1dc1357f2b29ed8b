"""Whether the change gate holds a policy, from the journal (`change_held.py`): what the last finished run recorded,
until an ack of the current gate digest or a return to the baseline releases it; and the gauge set from it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from ges_retention.change_gate import current_gate_digest, gate_context
from ges_retention.change_held import ChangeHeldGauge, journal_change_held, recorded_hold
from ges_retention.metrics import Metrics
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyFile, parse_policy_text
from ges_retention.state import RunRecord, Scope, Store

ENDPOINT = "https://ges.example"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = """\
version: 1
policies:
  - name: nightly
    project_id: p1
    keep: {daily: DAILY}
  - name: other
    project_id: p1
    select: {graphs: [other]}
    keep: {last: 1}
"""


def loaded(daily: int = 3, ack: str | None = None) -> PolicyFile:
    text = POLICY.replace("DAILY", str(daily))
    if ack is not None:
        text = text.replace("keep: {daily:", f"safety: {{ack: {ack}}}\n    keep: {{daily:")
    return parse_policy_text(text)


def endpoint_of(_policy: Policy) -> str:
    return ENDPOINT


def digest(policy_file: PolicyFile, name: str = "nightly", baseline: Any = None) -> str:
    policy = next(p for p in policy_file.policies if p.name == name)
    return current_gate_digest(policy, [p for p in policy_file.policies if p.name != name], baseline)


async def record_run(store: Store, run_id: str, held: dict[str, Any] | None, *, at: timedelta = timedelta()) -> None:
    """A finished run of both policies; `held`: what the change gate held of `nightly` in it (None: not held)."""
    await store.start_run(RunRecord(run_id, "cli", ("nightly", "other"), "host", started_at=T0 + at))
    counts: dict[str, Any] = {"planned": 0}
    if held is not None:
        counts["change_held"] = {"nightly": held}
    outcome = "change_held" if held is not None else "ok"
    await store.end_run(run_id, ended_at=T0 + at + timedelta(seconds=5), outcome=outcome, counts=counts)


def held_view(policy_file: PolicyFile) -> dict[str, Any]:
    return {"extra": 40, "budget": 10, "digest": digest(policy_file)}


def test_recorded_hold_reads_only_a_finished_runs_own_entry() -> None:
    view = {"extra": 1, "budget": 0, "digest": "d"}
    run = RunRecord("r", "cli", ("a",), "h", T0, T0, "change_held", {"change_held": {"a": view}})
    assert recorded_hold(run, "a") == view
    assert recorded_hold(run, "b") is None
    assert recorded_hold(RunRecord("r", "cli", ("a",), "h", T0, None, None, {"change_held": {"a": view}}), "a") is None
    assert recorded_hold(RunRecord("r", "cli", ("a",), "h", T0, T0, "change_held", {}), "a") is None  # an old record
    assert recorded_hold(None, "a") is None


async def test_a_held_run_stays_held_until_its_current_digest_is_acknowledged(store: Store) -> None:
    policy_file = loaded()
    await record_run(store, "r1", held_view(policy_file))
    assert await journal_change_held(store, policy_file, endpoint_of) == {
        "nightly": held_view(policy_file),
        "other": None,
    }
    await store.put_ack(Scope("nightly", ENDPOINT, "p1"), digest(loaded(daily=2)), by="cli")  # another definition's
    assert (await journal_change_held(store, policy_file, endpoint_of))["nightly"] is not None
    await store.put_ack(Scope("nightly", "http://127.0.0.1:1", "p1"), digest(policy_file), by="cli")  # another scope
    assert (await journal_change_held(store, policy_file, endpoint_of))["nightly"] is not None
    await store.put_ack(Scope("nightly", ENDPOINT, "p1"), digest(policy_file), by="http")
    assert (await journal_change_held(store, policy_file, endpoint_of))["nightly"] is None


async def test_an_ack_in_the_file_or_a_return_to_the_baseline_releases_it(store: Store) -> None:
    policy_file = loaded()
    await record_run(store, "r1", held_view(policy_file))
    acked_in_file = loaded(ack=digest(policy_file))
    assert (await journal_change_held(store, acked_in_file, endpoint_of))["nightly"] is None

    # A baseline of daily 7, then held at daily 3; changed again (daily 2): still held until a run judges it.
    before = loaded(daily=7)
    context = gate_context(before.policies[0], before.policies[1:])
    scope = Scope("nightly", ENDPOINT, "p1")
    await store.put_baseline(
        scope, definition=context.definition, overlap=context.overlap, gate_digest="g0", run_id="r0"
    )
    assert (await journal_change_held(store, loaded(daily=2), endpoint_of))["nightly"] is not None
    assert (await journal_change_held(store, before, endpoint_of))["nightly"] is None  # reverted: nothing to judge


async def test_a_later_run_that_was_not_held_clears_it(store: Store) -> None:
    policy_file = loaded()
    await record_run(store, "r1", held_view(policy_file))
    await record_run(store, "r2", None, at=timedelta(minutes=5))
    assert await journal_change_held(store, policy_file, endpoint_of) == {"nightly": None, "other": None}


class Spawned:
    def __init__(self) -> None:
        self.work: list[Coroutine[Any, Any, None]] = []

    def __call__(self, work: Coroutine[Any, Any, None]) -> None:
        self.work.append(work)

    async def run(self) -> None:
        await asyncio.gather(*self.work)
        self.work.clear()


def gauge(metrics: Metrics, policy: str) -> float | None:
    return metrics.registry.get_sample_value("ges_retention_policy_change_held", {"policy": policy})


async def test_the_gauge_is_set_from_the_journal_except_for_what_a_run_judged_meanwhile(store: Store) -> None:
    policy_file = loaded()
    await record_run(store, "r1", held_view(policy_file))
    metrics, spawned = Metrics(), Spawned()
    running: set[str] = set()
    last_seen: dict[str, object] = {}
    held = ChangeHeldGauge(
        metrics,
        store=lambda: store,
        loaded=lambda: policy_file,
        endpoint_of=endpoint_of,
        running=lambda: running,
        last_seen=last_seen.get,
        spawn=spawned,
    )
    held.refresh()
    await spawned.run()
    assert (gauge(metrics, "nightly"), gauge(metrics, "other")) == (1, 0)

    await store.put_ack(Scope("nightly", ENDPOINT, "p1"), digest(policy_file), by="cli")
    running.add("nightly")  # a run of it sets the gauge itself
    await held.update()
    assert gauge(metrics, "nightly") == 1
    running.clear()
    before = held.snapshot(policy_file)
    last_seen["nightly"] = {"run_id": "r9"}  # a run ended while the journal was read: its verdict is newer
    held.set({"nightly": None}, policy_file, before)
    assert gauge(metrics, "nightly") == 1
    held.set({"nightly": None}, loaded(daily=5))  # read for a file no longer loaded: ignored
    assert gauge(metrics, "nightly") == 1
    await held.update()
    assert gauge(metrics, "nightly") == 0
