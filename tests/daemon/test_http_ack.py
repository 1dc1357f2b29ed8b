"""`POST /v1/policies/{name}/ack` over a real SQLite state: 200 and recorded for the current gate digest, 409
`digest_mismatch` for another, 404 for an unknown policy, 400 for a malformed body, the token rules first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from test_http_journal import FakeDaemon, Listener, _serve, settings

from ges_retention.change_gate import current_gate_digest
from ges_retention.policy_loading import parse_policy_text
from ges_retention.state import RunRecord, Scope, Store, open_store, resolve_state_location
from support.logs import capture_events

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = """\
version: 1
policies:
  - name: nightly
    project_id: p1
    endpoint: https://ges.example
    keep: {daily: 3}
  - name: other
    project_id: p1
    endpoint: https://ges.example
    select: {graphs: [other]}
    keep: {last: 1}
"""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(resolve_state_location(str(tmp_path / "state.db")), mode="create")
    assert opened is not None
    yield opened
    await opened.close()


@pytest.fixture
async def listener(store: Store) -> AsyncIterator[Listener]:
    daemon = FakeDaemon(settings(token="t" * 32), store, policy_file=parse_policy_text(POLICY))
    runner, base = await _serve(daemon)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer " + "t" * 32}) as session:
            yield Listener(daemon, base, session)
    finally:
        await runner.cleanup()


def _digest(name: str = "nightly") -> str:
    policies = parse_policy_text(POLICY).policies
    policy = next(p for p in policies if p.name == name)
    return current_gate_digest(policy, [p for p in policies if p.name != name], None)


async def test_the_current_digest_is_recorded_and_logged(listener: Listener, store: Store) -> None:
    with capture_events() as logs:
        status, body = await listener.call("POST", "/v1/policies/nightly/ack", json={"digest": _digest().upper()})
    assert status == 200 and (body["policy"], body["digest"]) == ("nightly", _digest())
    assert body["note"].startswith("no run has been held for this definition")  # (no run at all yet)
    ack = await store.find_ack(Scope("nightly", "https://ges.example", "p1"), _digest())
    assert ack is not None and ack.by == "http"
    (event,) = logs.named("policy_change_acked")
    assert (event["policy"], event["by"]) == ("nightly", "http")


async def test_an_ack_of_a_held_policy_clears_its_gauge_at_once(listener: Listener, store: Store) -> None:
    """A run held `nightly` (recorded in the journal); the ack over HTTP releases it: the gauge says so before the
    answer, and `GET /v1/policies` no longer shows it held."""
    held = {"extra": 40, "budget": 10, "digest": _digest()}
    await store.start_run(RunRecord("r1", "cli", ("nightly", "other"), "host", started_at=T0))
    await store.end_run("r1", ended_at=T0, outcome="change_held", counts={"change_held": {"nightly": held}})
    await listener.daemon.change_held.update()
    gauge = listener.daemon.metrics.registry.get_sample_value
    assert gauge("ges_retention_policy_change_held", {"policy": "nightly"}) == 1
    status, body = await listener.call("POST", "/v1/policies/nightly/ack", json={"digest": _digest()})
    assert status == 200 and body["note"] is None
    assert gauge("ges_retention_policy_change_held", {"policy": "nightly"}) == 0


async def test_another_digest_is_409_digest_mismatch_and_records_nothing(listener: Listener, store: Store) -> None:
    status, body = await listener.call("POST", "/v1/policies/nightly/ack", json={"digest": _digest("other")})
    assert status == 409 and body["reason"] == "digest_mismatch" and body["error"]
    assert await store.find_ack(Scope("nightly", "https://ges.example", "p1"), _digest("other")) is None


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/policies/nope/ack", {"digest": "a" * 64}, 404),
        ("/v1/policies/nightly/ack", {"digest": 42}, 400),
        ("/v1/policies/nightly/ack", {"digest": "a" * 64, "more": 1}, 400),
        ("/v1/policies/nightly/ack", ["a" * 64], 400),
    ],
)
async def test_unknown_policy_and_malformed_bodies(listener: Listener, path: str, body: object, status: int) -> None:
    assert (await listener.call("POST", path, json=body))[0] == status


async def test_the_token_rules_come_first(listener: Listener) -> None:
    async with aiohttp.ClientSession() as anonymous:
        url = f"{listener.base}/v1/policies/nightly/ack"
        async with anonymous.post(url, json={"digest": _digest()}) as response:
            assert response.status == 401
