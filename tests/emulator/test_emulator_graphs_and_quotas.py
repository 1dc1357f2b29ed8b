"""The emulator's graph-wide routes: deleting a graph with and without `keep_backup`, the quotas and GES.7019, and
the knobs that spoil them for tests (a quota without a `backup` entry, a graph listing that is incomplete)."""

from __future__ import annotations

import random

import aiohttp
import pytest
from emulator_helpers import NOW_MS, PROJECT, TOKEN_HEADERS, call, ges_url

from ges_retention.emulator.app import RunningEmulator
from ges_retention.emulator.config import ConfigError, EmulatorConfig
from ges_retention.emulator.seeding import seeded_backups, seeded_graph
from ges_retention.emulator.store import Store

DAY_MS = 86_400_000


def mixed_graph(store: Store) -> list[str]:
    """Graph `mixed`: newest first, auto, manual, failed manual, import, auto, manual, manual; their ids."""
    store.add_graph(PROJECT, name="mixed", graph_id="mixed")
    plan = [("auto", "success"), ("manual", "success"), ("manual", "failed"), ("import", "success")]
    plan += [("auto", "success"), ("manual", "success"), ("manual", "success")]
    ids = []
    for i, (method, status) in enumerate(plan):
        record = {
            "id": f"m{i}",
            "graph_id": "mixed",
            "start_timestamp": NOW_MS - (i + 1) * DAY_MS,
            "backup_method": method,
            "status": status,
        }
        ids.append(store.add_backup(PROJECT, record)["id"])
    return ids


async def delete_graph(session: aiohttp.ClientSession, emulator: RunningEmulator, query: str) -> tuple[int, object]:
    status, body, _ = await call(session, "DELETE", ges_url(emulator, f"/graphs/mixed{query}"), headers=TOKEN_HEADERS)
    return status, body


async def test_keep_backup_keeps_the_newest_automatic_and_two_newest_manual_successes(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    mixed_graph(emulator.store)
    status, body = await delete_graph(session, emulator, "?keep_backup=true")
    assert status == 200 and isinstance(body, dict) and body["job_id"]
    left = {b["id"] for b in emulator.store.backups(PROJECT) if b["graph_id"] == "mixed"}
    assert left == {"m0", "m1", "m5"}
    assert "mixed" not in {g["id"] for g in emulator.store.graphs(PROJECT)}
    # What is kept is still listed per graph and can be deleted.
    status, listing, _ = await call(session, "GET", ges_url(emulator, "/graphs/mixed/backups"), headers=TOKEN_HEADERS)
    assert (status, listing["backup_count"]) == (200, 3)
    status, _, _ = await call(session, "DELETE", ges_url(emulator, "/graphs/mixed/backups/m5"), headers=TOKEN_HEADERS)
    assert status == 200


@pytest.mark.parametrize("query", ["", "?keep_backup=false"])
async def test_without_keep_backup_every_backup_of_the_graph_goes(
    emulator: RunningEmulator, session: aiohttp.ClientSession, query: str
) -> None:
    mixed_graph(emulator.store)
    others = {b["id"] for b in emulator.store.backups(PROJECT) if b["graph_id"] != "mixed"}
    status, _ = await delete_graph(session, emulator, query)
    assert status == 200
    assert {b["id"] for b in emulator.store.backups(PROJECT)} == others
    status, body, _ = await call(session, "GET", ges_url(emulator, "/graphs/mixed/backups"), headers=TOKEN_HEADERS)
    assert (status, body["error_code"]) == (400, "GES.7000")


@pytest.mark.parametrize("query", ["?keep_backup=yes", "?keep_backup=true&keep_backup=false"])
async def test_a_bad_keep_backup_is_a_bad_parameter(
    emulator: RunningEmulator, session: aiohttp.ClientSession, query: str
) -> None:
    mixed_graph(emulator.store)
    status, body = await delete_graph(session, emulator, query)
    assert status == 400 and isinstance(body, dict) and body["error_code"] == "GES.0001"
    assert "mixed" in {g["id"] for g in emulator.store.graphs(PROJECT)}


async def test_deleting_an_unknown_graph_is_7000(emulator: RunningEmulator, session: aiohttp.ClientSession) -> None:
    status, body = await delete_graph(session, emulator, "")
    assert status == 400 and isinstance(body, dict) and body["error_code"] == "GES.7000"


async def test_the_control_api_deletes_a_graph_with_keep_backup_too(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    mixed_graph(emulator.store)
    url = f"{emulator.url}/_emulator/graphs/mixed?keep_backup=true"
    status, _, _ = await call(session, "DELETE", url)
    assert status == 200
    assert {b["id"] for b in emulator.store.backups(PROJECT) if b["graph_id"] == "mixed"} == {"m0", "m1", "m5"}
    status, body, _ = await call(session, "DELETE", f"{emulator.url}/_emulator/graphs/x?keep_backup=maybe")
    assert status == 400 and "keep_backup" in body["error_msg"]


async def quotas(session: aiohttp.ClientSession, emulator: RunningEmulator) -> dict[str, int]:
    status, body, _ = await call(session, "GET", ges_url(emulator, "/graphs/quotas"), headers=TOKEN_HEADERS)
    assert status == 200
    return {r["type"]: r["available"] for r in body["quotas"]["resources"]}


async def test_the_quota_says_what_is_left_and_creates_beyond_it_are_7019(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    assert (await quotas(session, emulator))["backup"] == -1  # unlimited by default
    held = emulator.store.backup_count(PROJECT)
    emulator.config.backup_quota = held + 1
    assert (await quotas(session, emulator))["backup"] == 1
    for b in emulator.store.backups(PROJECT):
        if b["status"] == "backing_up":
            emulator.store.update_backup(PROJECT, b["id"], {"status": "success"})
    graph = emulator.store.graphs(PROJECT)[0]["id"]
    create = ges_url(emulator, f"/graphs/{graph}/backups")
    status, _, _ = await call(session, "POST", create, headers=TOKEN_HEADERS)
    assert status == 200
    assert (await quotas(session, emulator))["backup"] == 0
    status, body, _ = await call(session, "POST", create, headers=TOKEN_HEADERS)
    assert (status, body["error_code"]) == (400, "GES.7019")
    assert emulator.store.backup_count(PROJECT) == held + 1
    emulator.config.backup_quota = 0  # a quota below what is held: nothing left, never negative
    assert (await quotas(session, emulator))["backup"] == 0


async def test_the_quota_without_a_backup_entry(emulator: RunningEmulator, session: aiohttp.ClientSession) -> None:
    emulator.config.quota_without_backup = True
    assert set(await quotas(session, emulator)) == {"graph", "metadata"}


async def test_graph_count_extra_makes_the_graph_listing_incomplete(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.config.graph_count_extra = 2
    status, body, _ = await call(session, "GET", ges_url(emulator, "/graphs?limit=100"), headers=TOKEN_HEADERS)
    assert status == 200
    assert (body["graph_count"], len(body["graphs"])) == (5, 3)


def test_the_knobs_are_validated_over_the_control_api_shape() -> None:
    config = EmulatorConfig()
    assert config.apply({"backup_quota": 7, "quota_without_backup": True, "graph_count_extra": 1})
    assert (config.backup_quota, config.quota_without_backup, config.graph_count_extra) == (7, True, 1)
    for bad in ({"backup_quota": -2}, {"backup_quota": "1"}, {"quota_without_backup": 1}, {"graph_count_extra": -1}):
        with pytest.raises(ConfigError):
            config.apply(bad)
    assert config.to_json()["backup_quota"] == 7


def test_seeding_makes_some_import_backups_with_sizes_and_encryption() -> None:
    rng = random.Random(3)
    methods: dict[str, int] = {}
    for index in range(40):
        graph, _ = seeded_graph(rng, index, 400, NOW_MS, lambda _id: False)
        for record in seeded_backups(rng, graph, 400, NOW_MS):
            methods[record["backup_method"]] = methods.get(record["backup_method"], 0) + 1
            assert record["encrypted"] is graph["encrypted"]
            assert isinstance(record["size"], int) and record["size"] >= 0
    assert methods["import"] > 0
    assert methods["import"] < methods["manual"] < methods["auto"]
