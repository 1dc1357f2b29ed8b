"""The control API under /_emulator/: knobs at run time, seeding, explicit fixtures, stats and reset."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from emulator_helpers import NOW_MS, OTHER_PROJECT, PROJECT, TOKEN_HEADERS, call, ges_url, signed_headers

from ges_retention.emulator.app import EmulatorConfig, FaultRates, RunningEmulator, running_emulator
from ges_retention.emulator.store import Store


def _control(emulator: RunningEmulator, path: str) -> str:
    return f"{emulator.url}/_emulator/{path}"


async def test_config_round_trip_and_runtime_change(emulator: RunningEmulator, session: aiohttp.ClientSession) -> None:
    status, body, headers = await call(session, "GET", _control(emulator, "config"))
    assert status == 200
    assert "X-Request-Id" in headers
    assert body == EmulatorConfig().to_json()
    patch = {
        "latency_ms": 1.5,
        "rate_limit_per_s": 50,
        "faults": {"delete_backup": {"error_503": 0.25, "drop": 0.25}},
        "access_keys": [{"ak": "NEWAK", "sk": "new-sk", "project_id": PROJECT}],
        "seed": 9,
    }
    status, body, _ = await call(session, "PUT", _control(emulator, "config"), json=patch)
    assert status == 200
    assert body["latency_ms"] == 1.5
    assert emulator.config.rate_limit_per_s == 50
    assert emulator.config.faults == {"delete_backup": FaultRates(error_503=0.25, drop=0.25)}
    # New credentials work at once; the replaced ones no longer do.
    url = ges_url(emulator, "/graphs")
    assert (await call(session, "GET", url, headers=signed_headers("GET", url, ak="NEWAK", sk="new-sk")))[0] == 200
    assert (await call(session, "GET", url, headers=signed_headers("GET", url)))[0] == 401


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{oops", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"nope": 1}', "unknown configuration keys: nope"),
        (b'{"latency_ms": "5"}', "latency_ms must be a number"),
        (b'{"latency_ms": -1}', "latency_ms must be a number >= 0"),
        (b'{"latency_ms": 1, "hang_s": -2}', "hang_s"),
        (b'{"rate_limit_per_s": 1.5}', "rate_limit_per_s must be an integer"),
        (b'{"seed": true}', "seed must be an integer"),
        (b'{"faults": {"delete_backup": {"error_500": 0.7, "drop": 0.5}}}', "add up to more than 1"),
        (b'{"faults": {"delete_backup": {"error_500": 2}}}', "between 0 and 1"),
        (b'{"faults": {"delete_everything": {}}}', "unknown operation"),
        (b'{"faults": {"delete_backup": {"fire": 1}}}', "unknown fault kinds"),
        (b'{"project_ids": ["not-valid"]}', "letters and digits"),
        (b'{"project_ids": []}', "non-empty list"),
        (b'{"access_keys": [{"ak": "x"}]}', "access_keys entries need"),
        (b'{"tokens": {"t": "bad project"}}', "letters and digits"),
        (b'{"iam_users": [{"domain": "d", "name": "n", "password": ""}]}', "password must be a non-empty string"),
    ],
)
async def test_bad_config_is_refused_whole(
    emulator: RunningEmulator, session: aiohttp.ClientSession, payload: bytes, message: str
) -> None:
    before = emulator.config.to_json()
    status, body, _ = await call(session, "PUT", _control(emulator, "config"), data=payload)
    assert status == 400
    assert body["error_code"] == "EMULATOR.0001"
    assert message in body["error_msg"]
    assert emulator.config.to_json() == before


async def _seed(session: aiohttp.ClientSession, emulator: RunningEmulator, **body: Any) -> tuple[int, Any]:
    status, answer, _ = await call(session, "POST", _control(emulator, "seed"), json=body)
    return status, answer


async def test_seeding_through_the_control_api_is_deterministic(session: aiohttp.ClientSession) -> None:
    listings = []
    for _ in range(2):
        async with running_emulator() as emulator:
            status, answer = await _seed(session, emulator, graphs=4, backups_per_graph=6, now_ms=NOW_MS, seed=3)
            assert status == 200
            assert (answer["project_id"], answer["backups"], len(answer["graph_ids"])) == (PROJECT, 24, 4)
            status, listing, _ = await call(session, "GET", _control(emulator, f"backups?project_id={PROJECT}"))
            assert (status, listing["backup_count"]) == (200, 24)
            listings.append(listing)
    assert listings[0] == listings[1]


@pytest.mark.parametrize(
    "body",
    [
        {"graphs": -1, "backups_per_graph": 1},
        {"graphs": 1},
        {"graphs": "2", "backups_per_graph": 1},
        {"graphs": 1, "backups_per_graph": 1, "project_id": "a/b"},
        {"graphs": 1, "backups_per_graph": 1, "seed": "x"},
        {"graphs": 1, "backups_per_graph": 1, "extra": 1},
        {"graphs": 100_000, "backups_per_graph": 1000},
        {"graphs": 2000, "backups_per_graph": 1000},  # 2,000,000 backups: over the 1,000,000 bound
        {"graphs": 10**15, "backups_per_graph": 10**15},
    ],
)
async def test_bad_seed_requests(emulator: RunningEmulator, session: aiohttp.ClientSession, body: Any) -> None:
    status, answer = await _seed(session, emulator, **body)
    assert (status, answer["error_code"]) == (400, "EMULATOR.0001")
    assert emulator.store.backup_count(PROJECT) == 36


async def test_an_explicit_fixture_is_loaded_all_or_nothing(session: aiohttp.ClientSession) -> None:
    async with running_emulator(Store()) as emulator:
        fixture = {
            "project_id": OTHER_PROJECT,
            "graphs": [{"name": "prod-orders", "id": "g1", "created_ms": NOW_MS - 10}],
            "backups": [
                {"id": "b1", "graph_id": "g1", "start_timestamp": NOW_MS - 2000},
                {"id": "b2", "graph_id": "g1", "start_timestamp": NOW_MS - 1000, "status": "failed"},
            ],
        }
        status, answer, _ = await call(session, "POST", _control(emulator, "backups"), json=fixture)
        assert (status, answer) == (200, {"project_id": OTHER_PROJECT, "graphs": 1, "backups": 2})
        status, listing, _ = await call(session, "GET", _control(emulator, f"backups?project_id={OTHER_PROJECT}"))
        assert [b["id"] for b in listing["backup_list"]] == ["b2", "b1"]
        assert listing["backup_list"][1]["graph_name"] == "prod-orders"
        broken = {
            "project_id": OTHER_PROJECT,
            "graphs": [{"name": "g2", "id": "g2"}],
            "backups": [{"id": "b3", "graph_id": "g2", "start_timestamp": 1}, {"id": "b4", "graph_id": "g2"}],
        }
        status, answer, _ = await call(session, "POST", _control(emulator, "backups"), json=broken)
        assert status == 400
        assert answer["error_msg"].startswith("backups[1]:")
        assert [b["id"] for b in emulator.store.backups(OTHER_PROJECT)] == ["b2", "b1"]
        assert [g["id"] for g in emulator.store.graphs(OTHER_PROJECT)] == ["g1"]
        raw = {"project_id": OTHER_PROJECT, "complete": False, "backups": [{"id": "raw", "graph_id": "g1"}]}
        status, _, _ = await call(session, "POST", _control(emulator, "backups"), json=raw)
        assert status == 200
        assert emulator.store.backup(OTHER_PROJECT, "raw") == {"id": "raw", "graph_id": "g1"}


async def test_deleting_a_graph_keeps_its_backups(emulator: RunningEmulator, session: aiohttp.ClientSession) -> None:
    graph_id = emulator.store.graphs(PROJECT)[0]["id"]
    status, _, _ = await call(session, "DELETE", _control(emulator, f"graphs/{graph_id}"))
    assert status == 200
    status, _, _ = await call(session, "DELETE", _control(emulator, f"graphs/{graph_id}"))
    assert status == 404
    status, graphs, _ = await call(session, "GET", _control(emulator, "graphs"))
    assert graph_id not in {g["id"] for g in graphs["graphs"]}
    assert graphs["graph_count"] == 2
    status, listing, _ = await call(
        session, "GET", ges_url(emulator, "/graphs/backups?limit=100"), headers=TOKEN_HEADERS
    )
    assert listing["backup_count"] == 36


async def test_reset_clears_stats_and_optionally_data(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    await call(session, "GET", ges_url(emulator, "/graphs"), headers=TOKEN_HEADERS)
    status, answer, _ = await call(session, "POST", _control(emulator, "reset"))
    assert (status, answer) == (200, {"reset": ["stats"]})
    status, stats, _ = await call(session, "GET", _control(emulator, "stats"))
    assert (stats["total_requests"], stats["peak_rps"], stats["deleted_ids"]) == (0, 0, [])
    assert emulator.store.backup_count(PROJECT) == 36
    status, answer, _ = await call(session, "POST", _control(emulator, "reset"), json={"data": True})
    assert (status, answer) == (200, {"reset": ["stats", "data"]})
    assert emulator.store.backup_count(PROJECT) == 0
    status, body, _ = await call(session, "GET", ges_url(emulator, "/graphs"), headers=TOKEN_HEADERS)
    assert (status, body) == (200, {"graph_count": 0, "graphs": []})
    for bad in (b"{nope", b'{"data": "yes"}', b'{"everything": true}'):
        status, answer, _ = await call(session, "POST", _control(emulator, "reset"), data=bad)
        assert (status, answer["error_code"]) == (400, "EMULATOR.0001")
