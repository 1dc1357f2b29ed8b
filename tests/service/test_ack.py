"""`ack_definition` over a real SQLite state: the note when the acknowledged definition is not held (its own baseline,
an unlimited budget, or no run held for it), and whether the journal knows the scope the ack is recorded in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ges_retention.ack import ack_definition
from ges_retention.change_gate import current_gate_digest, gate_context
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyFile, parse_policy_text
from ges_retention.state import RunRecord, Scope, Store

ENDPOINT = "https://ges.example"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def loaded(budget: str = "10") -> PolicyFile:
    return parse_policy_text(
        f"version: 1\npolicies:\n  - name: nightly\n    project_id: p1\n    keep: {{daily: 3}}\n"
        f"    safety: {{change_budget: {budget}}}\n"
    )


def endpoint_of(_policy: Policy) -> str:
    return ENDPOINT


def digest(policy_file: PolicyFile, baseline: Any = None) -> str:
    return current_gate_digest(policy_file.policies[0], [], baseline)


async def record_run(store: Store, run_id: str, counts: dict[str, Any]) -> None:
    await store.start_run(RunRecord(run_id, "cli", ("nightly",), "host", started_at=T0))
    await store.end_run(run_id, ended_at=T0 + timedelta(seconds=1), outcome="ok", counts=counts)


def scopes(endpoint: str) -> dict[str, Any]:
    return {"scopes": {"nightly": {"endpoint": endpoint, "project_id": "p1"}}}


async def test_an_ack_of_the_digest_its_last_run_was_held_for_has_no_note(store: Store) -> None:
    policy_file = loaded()
    held = {"extra": 40, "budget": 10, "digest": digest(policy_file)}
    await record_run(store, "r1", {**scopes(ENDPOINT), "change_held": {"nightly": held}})
    done = await ack_definition(store, policy_file, "nightly", digest(policy_file), endpoint_of=endpoint_of, by="cli")
    assert (done.note, done.endpoint, done.project_id, done.scope_seen) == (None, ENDPOINT, "p1", True)


async def test_an_ack_of_a_definition_no_run_was_held_for_is_recorded_with_a_note(store: Store) -> None:
    policy_file = loaded()
    await record_run(store, "r1", scopes(ENDPOINT))  # ran, not held
    done = await ack_definition(store, policy_file, "nightly", digest(policy_file), endpoint_of=endpoint_of, by="cli")
    assert done.note is not None and done.note.startswith("no run has been held for this definition")
    assert await store.find_ack(Scope("nightly", ENDPOINT, "p1"), digest(policy_file)) is not None

    unlimited = loaded("unlimited")
    done = await ack_definition(store, unlimited, "nightly", digest(unlimited), endpoint_of=endpoint_of, by="http")
    assert done.note is not None and "change_budget is unlimited" in done.note


async def test_an_ack_of_the_baseline_itself_says_so(store: Store) -> None:
    policy_file = loaded()
    context = gate_context(policy_file.policies[0], [])
    scope = Scope("nightly", ENDPOINT, "p1")
    await store.put_baseline(scope, definition=context.definition, overlap=context.overlap, gate_digest="g", run_id="r")
    baseline = await store.get_baseline(scope)
    done = await ack_definition(
        store, policy_file, "nightly", digest(policy_file, baseline), endpoint_of=endpoint_of, by="cli"
    )
    assert done.note is not None and "already the policy's baseline" in done.note
    assert done.scope_seen  # a baseline in this scope


async def test_an_ack_in_a_scope_no_run_was_made_in_is_flagged(store: Store) -> None:
    policy_file = loaded()
    name, wanted = "nightly", digest(policy_file)
    done = await ack_definition(store, policy_file, name, wanted, endpoint_of=endpoint_of, by="cli")
    assert done.scope_seen is False  # nothing at all in the journal
    await record_run(store, "r1", scopes("http://127.0.0.1:8765"))  # a rehearsal against an emulator
    done = await ack_definition(store, policy_file, name, wanted, endpoint_of=endpoint_of, by="cli")
    assert done.scope_seen is False
    await record_run(store, "r2", scopes(ENDPOINT))
    done = await ack_definition(store, policy_file, name, wanted, endpoint_of=endpoint_of, by="cli")
    assert done.scope_seen is True
