"""The GES v2 routes over HTTP: paging, deletes and their errors, creating backups, bad input of every kind."""

from __future__ import annotations

import aiohttp
import pytest
from emulator_helpers import NOW_MS, PROJECT, TOKEN_HEADERS, FakeClock, call, ges_url, raw_url

from ges_retention.emulator.app import EmulatorConfig, RunningEmulator
from ges_retention.emulator.store import Store

MSG_7024 = "The graph backup does not exist or has been deleted."


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    status, body, _ = await call(session, "GET", url, headers=TOKEN_HEADERS)
    return status, body


async def test_paging_covers_every_backup_once_newest_first(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    seen: list[dict] = []  # type: ignore[type-arg]
    offset = 0
    while True:
        status, body = await _get(session, ges_url(emulator, f"/graphs/backups?offset={offset}&limit=7"))
        assert status == 200
        assert body["backup_count"] == 36
        if not body["backup_list"]:
            break
        assert len(body["backup_list"]) <= 7
        seen.extend(body["backup_list"])
        offset += len(body["backup_list"])
    assert seen == emulator.store.backups(PROJECT)
    keys = [(-b["start_timestamp"], b["id"]) for b in seen]
    assert keys == sorted(keys)


async def test_default_page_is_ten_and_a_page_past_the_end_is_empty(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    status, body = await _get(session, ges_url(emulator, "/graphs/backups"))
    assert (status, body["backup_count"], len(body["backup_list"])) == (200, 36, 10)
    status, body = await _get(session, ges_url(emulator, "/graphs/backups?offset=1000000&limit=1000"))
    assert (status, body) == (200, {"backup_count": 36, "backup_list": []})


async def test_one_graphs_backups_and_the_graph_list(emulator: RunningEmulator, session: aiohttp.ClientSession) -> None:
    status, body = await _get(session, ges_url(emulator, "/graphs?limit=2"))
    assert status == 200
    assert body["graph_count"] == 3
    assert len(body["graphs"]) == 2
    graph = body["graphs"][0]
    assert {"id", "name", "status", "created", "data_store_version"} <= set(graph)
    status, body = await _get(session, ges_url(emulator, f"/graphs/{graph['id']}/backups?limit=5&offset=10"))
    assert status == 200
    assert body["backup_count"] == 12
    assert len(body["backup_list"]) == 2
    assert {b["graph_id"] for b in body["backup_list"]} == {graph["id"]}


async def test_a_graph_named_backups_is_not_the_project_listing(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.store.add_graph(PROJECT, name="tricky", graph_id="backups")
    emulator.store.add_backup(PROJECT, {"id": "tb1", "graph_id": "backups", "start_timestamp": NOW_MS - 5})
    status, body = await _get(session, ges_url(emulator, "/graphs/backups/backups"))
    assert (status, body["backup_count"], body["backup_list"][0]["id"]) == (200, 1, "tb1")
    status, body = await _get(session, ges_url(emulator, "/graphs/backups?limit=1000"))
    assert (status, body["backup_count"]) == (200, 37)
    status, body, _ = await call(
        session, "DELETE", ges_url(emulator, "/graphs/backups/backups/tb1"), headers=TOKEN_HEADERS
    )
    assert (status, body) == (200, {})


async def test_delete_then_delete_again(emulator: RunningEmulator, session: aiohttp.ClientSession) -> None:
    victim = next(b for b in emulator.store.backups(PROJECT) if b["status"] == "success")
    url = ges_url(emulator, f"/graphs/{victim['graph_id']}/backups/{victim['id']}")
    status, body, headers = await call(session, "DELETE", url, headers=TOKEN_HEADERS)
    assert (status, body) == (200, {})
    assert headers["Content-Type"].startswith("application/json")
    assert emulator.store.backup(PROJECT, victim["id"]) is None
    assert emulator.stats.deleted_ids == [victim["id"]]
    assert emulator.stats.delete_request_ids == {victim["id"]: headers["X-Request-Id"]}
    status, body, headers = await call(session, "DELETE", url, headers=TOKEN_HEADERS)
    assert status == 400
    assert list(emulator.stats.delete_request_ids) == [victim["id"]]  # a 7024 removed nothing
    assert body == {"error_code": "GES.7024", "error_msg": MSG_7024}
    assert len(headers["X-Request-Id"]) == 32


async def test_delete_of_an_unknown_backup_is_7024_whatever_the_graph(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    existing = emulator.store.backups(PROJECT)[-1]
    for graph_id, backup_id in [("no-such-graph", "no-such-backup"), ("no-such-graph", existing["id"])]:
        url = ges_url(emulator, f"/graphs/{graph_id}/backups/{backup_id}")
        status, body, _ = await call(session, "DELETE", url, headers=TOKEN_HEADERS)
        assert (status, body["error_code"]) == (400, "GES.7024")
    # Addressed under the wrong graph, the backup is not touched.
    assert emulator.store.backup(PROJECT, existing["id"]) is not None
    assert emulator.stats.deleted_ids == []


async def test_a_backing_up_backup_is_7002_and_only_that_one(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    store = emulator.store
    store.add_graph(PROJECT, name="busy", graph_id="gb")
    store.add_backup(PROJECT, {"id": "running", "graph_id": "gb", "start_timestamp": NOW_MS, "status": "backing_up"})
    store.add_backup(PROJECT, {"id": "older", "graph_id": "gb", "start_timestamp": NOW_MS - 86_400_000})
    status, body, _ = await call(
        session, "DELETE", ges_url(emulator, "/graphs/gb/backups/running"), headers=TOKEN_HEADERS
    )
    assert (status, body) == (400, {"error_code": "GES.7002", "error_msg": "The graph is being backed up."})
    assert store.backup(PROJECT, "running") is not None
    status, _, _ = await call(session, "DELETE", ges_url(emulator, "/graphs/gb/backups/older"), headers=TOKEN_HEADERS)
    assert status == 200


async def test_an_unknown_graph_is_7000_but_a_deleted_one_with_backups_is_listed(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    status, body = await _get(session, ges_url(emulator, "/graphs/nope/backups"))
    assert (status, body) == (
        400,
        {"error_code": "GES.7000", "error_msg": "The graph does not exist or has been deleted."},
    )
    graph_id = emulator.store.graphs(PROJECT)[0]["id"]
    assert emulator.store.delete_graph(PROJECT, graph_id)
    status, body = await _get(session, ges_url(emulator, f"/graphs/{graph_id}/backups?limit=100"))
    assert (status, body["backup_count"]) == (200, 12)
    status, body = await _get(session, ges_url(emulator, "/graphs?limit=100"))
    assert body["graph_count"] == 2
    status, body = await _get(session, ges_url(emulator, "/graphs/backups?limit=1000"))
    assert sum(b["graph_id"] == graph_id for b in body["backup_list"]) == 12
    orphan = next(b for b in body["backup_list"] if b["graph_id"] == graph_id and b["status"] != "backing_up")
    url = ges_url(emulator, f"/graphs/{graph_id}/backups/{orphan['id']}")
    assert (await call(session, "DELETE", url, headers=TOKEN_HEADERS))[0] == 200


async def test_create_backup_grows_the_data(emulator: RunningEmulator, session: aiohttp.ClientSession) -> None:
    graph_id = emulator.store.graphs(PROJECT)[0]["id"]
    before = emulator.store.backup_count(PROJECT)
    # A graph whose seeded newest backup is still running cannot be backed up: make sure it is not.
    for b in emulator.store.backups(PROJECT):
        if b["status"] == "backing_up":
            emulator.store.update_backup(PROJECT, b["id"], {"status": "success"})
    status, body, _ = await call(
        session, "POST", ges_url(emulator, f"/graphs/{graph_id}/backups"), headers=TOKEN_HEADERS
    )
    assert status == 200
    assert isinstance(body["job_id"], str)
    assert emulator.store.backup_count(PROJECT) == before + 1
    newest = emulator.store.backups(PROJECT)[0]
    assert (newest["graph_id"], newest["status"], newest["start_timestamp"]) == (graph_id, "success", NOW_MS)


@pytest.mark.parametrize("graph_status", ["900"])
async def test_create_backup_errors(
    store: Store, config: EmulatorConfig, clock: FakeClock, graph_status: str, session: aiohttp.ClientSession
) -> None:
    from ges_retention.emulator.app import running_emulator

    config.backup_duration_s = 60
    store.add_graph(PROJECT, name="stopped", graph_id="stopped", status=graph_status)
    store.add_graph(PROJECT, name="live", graph_id="live")
    async with running_emulator(store, config, clock=clock) as emulator:
        status, body, _ = await call(session, "POST", ges_url(emulator, "/graphs/nope/backups"), headers=TOKEN_HEADERS)
        assert (status, body["error_code"]) == (400, "GES.7000")
        url = ges_url(emulator, "/graphs/stopped/backups")
        status, body, _ = await call(session, "POST", url, headers=TOKEN_HEADERS)
        assert (status, body) == (400, {"error_code": "GES.7001", "error_msg": "The graph is not running."})
        url = ges_url(emulator, "/graphs/live/backups")
        assert (await call(session, "POST", url, headers=TOKEN_HEADERS))[0] == 200
        status, body, _ = await call(session, "POST", url, headers=TOKEN_HEADERS)
        assert (status, body["error_code"]) == (400, "GES.7002")
        running = emulator.store.backups(PROJECT)[0]
        assert (running["graph_id"], running["status"], running["end_timestamp"]) == ("live", "backing_up", None)
        # The backup finishes when the emulator's clock has moved on by backup_duration_s.
        clock.advance(61)
        status, body = await _get(session, ges_url(emulator, "/graphs/live/backups"))
        finished = body["backup_list"][0]
        assert (finished["id"], finished["status"], finished["duration"]) == (running["id"], "success", 60)
        assert finished["end_timestamp"] == NOW_MS + 60_000
        assert (await call(session, "POST", url, headers=TOKEN_HEADERS))[0] == 200


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=abc",
        "limit=1e3",
        "limit=",
        "limit=10&limit=20",
        "offset=-1",
        "offset=x",
        "offset=" + "9" * 40,
        "offset=1.5",
    ],
)
async def test_absurd_paging_is_ges_0001(emulator: RunningEmulator, session: aiohttp.ClientSession, query: str) -> None:
    for path in ("/graphs/backups", "/graphs", f"/graphs/{emulator.store.graphs(PROJECT)[0]['id']}/backups"):
        status, body = await _get(session, ges_url(emulator, f"{path}?{query}"))
        assert status == 400
        assert body["error_code"] == "GES.0001"
        assert body["error_msg"].startswith("Incorrect parameter.")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v2/{PROJECT}/graphs/x/../backups"),
        ("GET", f"/v2/{PROJECT}/graphs/x/%2E%2E/backups"),
        ("GET", f"/v2/{PROJECT}/graphs/a%2Fb/backups"),
        ("GET", f"/v2/{PROJECT}/graphs/g%3Fx/backups"),
        ("GET", f"/v2/{PROJECT}/graphs/g%23x/backups"),
        ("GET", f"/v2/{PROJECT}/graphs/%20/backups"),
        ("GET", f"/v2/{PROJECT}/graphs/./backups"),
        ("GET", "/v2/abc-def/graphs/backups"),
        ("GET", f"/v2/{'a' * 65}/graphs/backups"),
        ("GET", f"/v2/{PROJECT}/../{PROJECT}/graphs"),
        ("DELETE", f"/v2/{PROJECT}/graphs/g/backups/.."),
        ("DELETE", f"/v2/{PROJECT}/graphs/g/backups/a%2F..%2F..%2Fgraphs"),
        ("DELETE", f"/v2/{PROJECT}/graphs/g/backups/%2e%2e"),
        ("DELETE", f"/v2/{PROJECT}/graphs/..%2Fbackups/backups/b"),
        ("DELETE", "/v2/proj%2Fect/graphs/g/backups/b"),
    ],
)
async def test_path_tricks_never_reach_a_resource(
    emulator: RunningEmulator, session: aiohttp.ClientSession, method: str, path: str
) -> None:
    before = emulator.store.backup_count(PROJECT)
    status, body, _ = await call(session, method, raw_url(emulator, path), headers=TOKEN_HEADERS)
    assert status == 400, body
    assert body["error_code"] == "GES.0001"
    assert body["error_msg"].startswith("Incorrect parameter.")
    assert emulator.store.backup_count(PROJECT) == before
    assert emulator.stats.deleted_ids == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/v2"),
        ("GET", f"/v2/{PROJECT}/graphs/"),
        ("GET", f"/v2/{PROJECT}/nodes"),
        ("PUT", f"/v2/{PROJECT}/graphs/backups"),
        ("HEAD", f"/v2/{PROJECT}/graphs/backups"),
        ("GET", f"/v2/{PROJECT}/graphs/g/backups/b"),
        ("GET", "/_emulator/nothing"),
        ("GET", "/v3/auth/tokens"),
    ],
)
async def test_unknown_apis_are_404_with_the_gateways_body(
    emulator: RunningEmulator, session: aiohttp.ClientSession, method: str, path: str
) -> None:
    async with session.request(method, raw_url(emulator, path), headers=TOKEN_HEADERS) as resp:
        assert resp.status == 404
        request_id = resp.headers["X-Request-Id"]
        if method != "HEAD":
            body = await resp.json()
            assert body == {
                "error_code": "APIGW.0101",
                "error_msg": "The API does not exist or has not been published in the environment.",
                "request_id": request_id,
            }
