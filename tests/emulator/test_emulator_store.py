"""The emulated data: seeding is realistic, complete and deterministic; listing order; graphs outlived by backups."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

import pytest
from emulator_helpers import NOW_MS, PROJECT

from ges_retention.backup import Backup
from ges_retention.emulator.seeding import MAX_SEED_BACKUPS_PER_GRAPH, MAX_SEED_GRAPHS
from ges_retention.emulator.store import DAY_MS, DeleteResult, Store

BACKUP_FIELDS = {
    "id",
    "name",
    "backup_method",
    "graph_id",
    "graph_name",
    "graph_status",
    "graph_size_type_index",
    "data_store_version",
    "arch",
    "status",
    "start_timestamp",
    "start_time",
    "end_timestamp",
    "end_time",
    "size",
    "duration",
    "encrypted",
}


def _api_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _seeded(seed: int = 7, graphs: int = 20, per_graph: int = 40) -> Store:
    store = Store()
    store.seed(PROJECT, graphs=graphs, backups_per_graph=per_graph, now_ms=NOW_MS, seed=seed)
    return store


def test_seeding_is_deterministic_given_the_seed() -> None:
    assert _seeded(7).backups(PROJECT) == _seeded(7).backups(PROJECT)
    assert _seeded(7).graphs(PROJECT) == _seeded(7).graphs(PROJECT)
    assert _seeded(7).backups(PROJECT) != _seeded(8).backups(PROJECT)


def test_seeded_backups_are_complete_and_consistent() -> None:
    store = _seeded()
    backups = store.backups(PROJECT)
    assert len(backups) == 20 * 40
    graphs = {g["id"]: g["name"] for g in store.graphs(PROJECT)}
    for b in backups:
        assert set(b) == BACKUP_FIELDS
        Backup.from_api(b)  # the service's own parser accepts it
        assert b["graph_name"] == graphs[b["graph_id"]]
        assert re.fullmatch(rf"{re.escape(b['graph_name'])}-\d{{14}}", b["name"])
        assert b["name"][-14:] == re.sub(r"\D", "", b["start_time"])
        assert b["start_time"] == _api_time(b["start_timestamp"])
        assert b["start_timestamp"] <= NOW_MS
        assert isinstance(b["graph_status"], str) and isinstance(b["graph_size_type_index"], str)
        if b["status"] == "backing_up":
            assert b["end_timestamp"] is None and b["end_time"] is None
        else:
            assert b["end_time"] == _api_time(b["end_timestamp"])
            assert b["end_timestamp"] == b["start_timestamp"] + b["duration"] * 1000


def test_seeded_history_is_realistic() -> None:
    store = _seeded(graphs=100, per_graph=30)
    backups = store.backups(PROJECT)
    per_graph = Counter(b["graph_id"] for b in backups)
    assert set(per_graph.values()) == {30}
    kinds = Counter((b["backup_method"], b["status"]) for b in backups)
    assert kinds[("auto", "success")] > len(backups) * 0.7
    assert kinds[("manual", "success")] > 0
    assert kinds[("auto", "failed")] + kinds[("manual", "failed")] > 0
    running = [b for b in backups if b["status"] == "backing_up"]
    assert 0 < len(running) < 30
    for b in running:  # a running backup is its graph's newest
        newest = max(x["start_timestamp"] for x in backups if x["graph_id"] == b["graph_id"])
        assert b["start_timestamp"] == newest
    # Daily automatic backups go back about as many days as backups per graph.
    oldest = min(b["start_timestamp"] for b in backups)
    assert NOW_MS - 32 * DAY_MS < oldest < NOW_MS - 25 * DAY_MS
    names = [g["name"] for g in store.graphs(PROJECT)]
    assert len(set(names)) == 100
    assert "prod-orders" in names
    assert all(re.fullmatch(r"[a-z]+-[a-z-]+(-\d\d)?", n) for n in names)


def test_seeding_twice_adds_new_distinct_graphs() -> None:
    store = _seeded(graphs=5, per_graph=3)
    store.seed(PROJECT, graphs=5, backups_per_graph=3, now_ms=NOW_MS, seed=7)
    graphs = store.graphs(PROJECT)
    assert len(graphs) == 10
    assert len({g["name"] for g in graphs}) == 10
    assert len({b["id"] for b in store.backups(PROJECT)}) == 30


def test_seeding_many_graphs_stores_every_backup() -> None:
    # How fast is `make bench`'s business (scenario emulator_seeding), not a unit test's.
    store = Store()
    result = store.seed(PROJECT, graphs=200, backups_per_graph=50, now_ms=NOW_MS, seed=1)
    assert result.backups == store.backup_count(PROJECT) == 10_000
    assert len(result.graph_ids) == len(set(result.graph_ids)) == 200
    assert len({b["id"] for b in store.backups(PROJECT)}) == 10_000


@pytest.mark.parametrize(
    ("graphs", "per_graph", "message"),
    [
        (MAX_SEED_GRAPHS + 1, 0, "graphs"),
        (1, MAX_SEED_BACKUPS_PER_GRAPH + 1, "per graph"),
        (MAX_SEED_GRAPHS, MAX_SEED_BACKUPS_PER_GRAPH, "at most 1000000 backups"),
        (10**12, 10**12, "graphs"),
        (-1, 1, ">= 0"),
    ],
)
def test_huge_seed_sizes_are_refused_before_anything_is_made(graphs: int, per_graph: int, message: str) -> None:
    store = Store()
    with pytest.raises(ValueError, match=message):
        store.seed(PROJECT, graphs=graphs, backups_per_graph=per_graph, now_ms=NOW_MS, seed=1)
    assert store.graphs(PROJECT) == [] and store.backup_count(PROJECT) == 0


def test_listing_order_is_newest_first_then_by_id() -> None:
    store = Store()
    for backup_id, start in [("b", 1000), ("a", 1000), ("c", 5000), ("d", 0)]:
        store.add_backup(PROJECT, {"id": backup_id, "graph_id": "g", "start_timestamp": start})
    assert [b["id"] for b in store.backups(PROJECT)] == ["c", "a", "b", "d"]
    total, page = store.page_backups(PROJECT, 1, 2)
    assert total == 4
    assert [b["id"] for b in page] == ["a", "b"]


def test_a_fixture_backup_is_completed_from_its_graph() -> None:
    store = Store()
    graph = store.add_graph(PROJECT, name="prod-orders", graph_id="g1", created_ms=NOW_MS - DAY_MS)
    start = NOW_MS - 3600_000
    record = store.add_backup(PROJECT, {"graph_id": "g1", "start_timestamp": start, "custom": 1})
    assert set(record) == BACKUP_FIELDS | {"custom"}
    assert record["graph_name"] == graph["name"] == "prod-orders"
    assert record["name"] == f"prod-orders-{_api_time(start).replace('-', '').replace(':', '').replace('T', '')}"
    assert (record["status"], record["backup_method"]) == ("success", "manual")
    assert store.backup(PROJECT, record["id"]) == record


def test_fixture_errors_and_raw_records() -> None:
    store = Store()
    with pytest.raises(ValueError, match="graph_id"):
        store.add_backup(PROJECT, {"start_timestamp": 1})
    with pytest.raises(ValueError, match="start_timestamp"):
        store.add_backup(PROJECT, {"graph_id": "g", "start_timestamp": "yesterday"})
    store.add_backup(PROJECT, {"id": "x", "graph_id": "g", "start_timestamp": 1})
    with pytest.raises(ValueError, match="already exists"):
        store.add_backup(PROJECT, {"id": "x", "graph_id": "g", "start_timestamp": 2})
    # A raw record is kept exactly as given, even a broken one: tests of invalid listings need it.
    raw = {"id": "broken", "graph_id": "g", "status": None}
    assert store.add_backup(PROJECT, raw, complete=False) == raw
    assert store.backup(PROJECT, "broken") == raw


def test_a_deleted_graphs_backups_survive_and_stay_deletable() -> None:
    store = Store()
    store.add_graph(PROJECT, name="old", graph_id="g1")
    for i in range(2):
        store.add_backup(PROJECT, {"id": f"b{i}", "graph_id": "g1", "start_timestamp": i})
    assert store.delete_graph(PROJECT, "g1")
    assert not store.delete_graph(PROJECT, "g1")
    assert store.graph(PROJECT, "g1") is None
    assert store.graph_known(PROJECT, "g1")
    assert [b["id"] for b in store.backups(PROJECT)] == ["b1", "b0"]
    assert store.delete_backup(PROJECT, "g1", "b0") is DeleteResult.DELETED
    assert store.delete_backup(PROJECT, "g1", "b1") is DeleteResult.DELETED
    assert not store.graph_known(PROJECT, "g1")


def test_delete_outcomes() -> None:
    store = Store()
    store.add_backup(PROJECT, {"id": "run", "graph_id": "g", "start_timestamp": 2, "status": "backing_up"})
    store.add_backup(PROJECT, {"id": "done", "graph_id": "g", "start_timestamp": 1})
    assert store.delete_backup(PROJECT, "g", "run") is DeleteResult.BACKING_UP
    assert store.delete_backup(PROJECT, "other-graph", "done") is DeleteResult.NOT_FOUND
    assert store.delete_backup("nosuchproject", "g", "done") is DeleteResult.NOT_FOUND
    assert store.delete_backup(PROJECT, "g", "done") is DeleteResult.DELETED
    assert store.delete_backup(PROJECT, "g", "done") is DeleteResult.NOT_FOUND
    assert [b["id"] for b in store.backups(PROJECT)] == ["run"]


def test_returned_records_are_copies() -> None:
    store = _seeded(graphs=1, per_graph=2)
    first = store.backups(PROJECT)[0]
    first["start_timestamp"] = 0
    assert store.backups(PROJECT)[0]["start_timestamp"] != 0
