"""The listener's journal endpoints over a real SQLite state: `/v1/holds`, `/v1/backups/{id}`, the token rules on
each, 400 for malformed input, 404 for what is not there, 503 without a usable state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from ges_retention.change_held import ChangeHeldGauge
from ges_retention.daemon import Daemon
from ges_retention.http_api import HttpApi
from ges_retention.metrics import Metrics
from ges_retention.service import policy_endpoint
from ges_retention.settings import Settings
from ges_retention.state import StateUnavailable, Store, open_store, resolve_state_location
from support.journal import seed_journal


@dataclass
class FakeDaemon:
    """What the journal routes and the token rules read of a daemon."""

    settings: Settings
    store: Store | None
    policy_file: Any = None
    tasks: set[Any] = field(default_factory=set)
    metrics: Metrics = field(default_factory=Metrics)
    change_held: ChangeHeldGauge = field(init=False)

    def __post_init__(self) -> None:
        self.change_held = ChangeHeldGauge(
            self.metrics,
            store=lambda: self.store,
            loaded=lambda: self.policy_file,
            endpoint_of=lambda p: policy_endpoint(p, self.settings),
            running=set,
            last_seen=lambda _name: None,
            spawn=lambda work: self.tasks.add(asyncio.ensure_future(work)),
        )


def settings(http: str = "127.0.0.1:0", token: str | None = None) -> Settings:
    return Settings(_env_file=None, http=http, http_token=token)


@dataclass
class Listener:
    daemon: FakeDaemon
    base: str
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, f"{self.base}{path}", **kwargs) as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body


async def _serve(daemon: FakeDaemon) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(HttpApi(cast(Daemon, daemon)).build_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    location = resolve_state_location(str(tmp_path / "state.db"))
    await seed_journal(location)
    opened = await open_store(location, mode="existing")
    assert opened is not None
    yield opened
    await opened.close()


@pytest.fixture
async def listener(store: Store) -> AsyncIterator[Listener]:
    daemon = FakeDaemon(settings(), store)
    runner, base = await _serve(daemon)
    try:
        async with aiohttp.ClientSession() as session:
            yield Listener(daemon, base, session)
    finally:
        await runner.cleanup()


async def test_post_get_and_delete_a_hold(listener: Listener, store: Store) -> None:
    status, body = await listener.call(
        "POST", "/v1/holds", json={"backup_id": "b-new", "reason": "ticket 7", "until": "2999-01-01T00:00:00"}
    )
    assert status == 201
    assert body["backup_id"] == "b-new" and body["reason"] == "ticket 7" and body["until"] == "2999-01-01T00:00:00Z"
    assert body["known"] is False and "no record" in body["note"]
    assert body["placed_by"] == "http:127.0.0.1" and body["in_force"] is True
    hold = await store.get_hold("b-new")
    assert hold is not None and hold.until == datetime(2999, 1, 1, tzinfo=UTC)

    status, body = await listener.call("POST", "/v1/holds", json={"backup_id": "b-del", "reason": "why gone?"})
    assert status == 201 and body["until"] is None and body["known"] is True and "note" not in body

    status, body = await listener.call("GET", "/v1/holds")
    assert status == 200
    assert [h["backup_id"] for h in body["holds"]] == ["b-del", "b-held", "b-new"]

    status, _ = await listener.call("DELETE", "/v1/holds/b-new")
    assert status == 204
    assert await store.get_hold("b-new") is None
    status, body = await listener.call("DELETE", "/v1/holds/b-new")
    assert status == 404 and body == {"error": "b-new is not held"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"backup_id": "b/1", "reason": "r"}, "malformed"),
        ({"backup_id": "b-1", "reason": ""}, "needs a reason"),
        ({"backup_id": "b-1", "reason": "x" * 201}, "at most 200"),
        ({"backup_id": "b-1"}, "reason"),
        ({"reason": "r"}, "backup_id"),
        ({"backup_id": 7, "reason": "r"}, "backup_id"),
        ({"backup_id": "b-1", "reason": "r", "until": "soon"}, "ISO 8601"),
        ({"backup_id": "b-1", "reason": "r", "until": "2001-01-01T00:00:00Z"}, "not in the future"),
        ({"backup_id": "b-1", "reason": "r", "until": 1234}, "until"),
        ({"backup_id": "b-1", "reason": "r", "untill": "2999-01-01"}, "unknown keys untill"),
        (["b-1", "r"], "JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
async def test_a_malformed_hold_is_400_and_writes_nothing(
    listener: Listener, store: Store, body: Any, message: str
) -> None:
    before = await store.list_holds()
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    status, answer = await listener.call("POST", "/v1/holds", **kwargs)
    assert status == 400 and message in answer["error"]
    assert await store.list_holds() == before


async def test_a_huge_body_is_400(listener: Listener) -> None:
    status, answer = await listener.call("POST", "/v1/holds", data="x" * 100_000)
    assert status == 400 and "larger than" in answer["error"]


async def test_get_backup_is_the_why_document(listener: Listener) -> None:
    status, body = await listener.call("GET", "/v1/backups/b-del")
    assert status == 200
    assert body["backup_id"] == "b-del" and body["hold"] is None
    [record] = body["records"]
    assert (record["policy"], record["run_id"], record["reasons"], record["state"], record["request_id"]) == (
        "nightly",
        "r1",
        ["expired"],
        "deleted",
        "req-1",
    )
    status, body = await listener.call("GET", "/v1/backups/b-held")
    assert status == 200 and body["hold"]["reason"] == "legal: case 42"
    assert (body["records"][0]["reasons"], body["records"][0]["closed_reasons"]) == (
        ["expired"],
        ["held: legal: case 42"],
    )

    status, body = await listener.call("GET", "/v1/backups/b-unknown")
    assert status == 404 and body == {"error": "no record of b-unknown"}
    status, body = await listener.call("GET", "/v1/backups/b%24x")
    assert status == 400 and "malformed" in body["error"]
    status, body = await listener.call("DELETE", "/v1/holds/a%20b")
    assert status == 400 and "malformed" in body["error"]


ROUTES = [
    ("GET", "/v1/holds", None, 200),
    ("POST", "/v1/holds", {"backup_id": "b-tok", "reason": "r"}, 201),
    ("DELETE", "/v1/holds/b-held", None, 204),
    ("GET", "/v1/backups/b-del", None, 200),
]


@pytest.mark.parametrize(
    ("listen", "token", "header", "allowed"),
    [
        ("127.0.0.1:9464", None, None, True),
        ("0.0.0.0:9464", None, None, False),  # 403: beyond loopback without a token
        ("0.0.0.0:9464", "t0ken-for-tests", None, False),
        ("0.0.0.0:9464", "t0ken-for-tests", "Bearer wrong", False),
        ("0.0.0.0:9464", "t0ken-for-tests", "Bearer t0ken-for-tests", True),
        ("127.0.0.1:9464", "t0ken-for-tests", "t0ken-for-tests", False),
    ],
)
@pytest.mark.parametrize(("method", "path", "body", "ok"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
async def test_token_rules_of_the_journal_endpoints(
    store: Store,
    listen: str,
    token: str | None,
    header: str | None,
    allowed: bool,
    method: str,
    path: str,
    body: Any,
    ok: int,
) -> None:
    daemon = FakeDaemon(settings(listen, token), store)
    runner, base = await _serve(daemon)
    before = await store.list_holds()
    try:
        headers = {"Authorization": header} if header else {}
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.request(method, f"{base}{path}", json=body) as response,
        ):
            expected = ok if allowed else (403 if token is None else 401)
            assert response.status == expected
    finally:
        await runner.cleanup()
    if not allowed:
        assert await store.list_holds() == before  # a refused write wrote nothing


class _DownStore:
    """A store whose every call fails as an unreachable PostgreSQL does."""

    def __getattr__(self, name: str) -> Any:
        async def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise StateUnavailable("connection refused", location="postgresql://db.example/state", operation=name)

        return fail


@pytest.mark.parametrize(("method", "path", "body", "ok"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
async def test_without_a_usable_state_every_journal_endpoint_is_503(method: str, path: str, body: Any, ok: int) -> None:
    for store in (None, cast(Store, _DownStore())):
        runner, base = await _serve(FakeDaemon(settings(), store))
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.request(method, f"{base}{path}", json=body) as response,
            ):
                assert response.status == 503
                assert "state is not available" in (await response.json())["error"]
        finally:
            await runner.cleanup()


async def test_a_hold_that_ended_is_not_listed_and_cannot_be_deleted(listener: Listener, store: Store) -> None:
    past = datetime.now(UTC) - timedelta(days=2)
    await store.put_hold("b-old", "ended", until=past + timedelta(days=1), now=past)
    status, body = await listener.call("GET", "/v1/holds")
    assert "b-old" not in [h["backup_id"] for h in body["holds"]]
    status, _ = await listener.call("DELETE", "/v1/holds/b-old")
    assert status == 404
