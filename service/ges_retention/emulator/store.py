"""The emulated GES data: projects, graphs and backups (realistic records come from `seeding`).

Backups are kept as full API-shaped JSON dicts (every field of the backup object in ges-api.md), so the routes can
serialize them as they are. Each project keeps its backups in one list of sort keys `(-start_timestamp, id)`, which is
the listing order: **newest first, ties by id**; that order is total, so paging with offset/limit is stable as long as
nothing is added or deleted between pages. One such list per graph serves the per-graph listing. Deleting bisects;
seeding sorts once (`make bench` measures it: the `emulator_seeding` scenario).

Graphs are listed newest created first (ties by id), the same rule as backups.

Deleting a graph (`delete_graph`) with `keep_backup` keeps what GES keeps (`KEPT_ON_GRAPH_DELETE`: the newest
automatic and the two newest manual successful backups) and removes the rest of its backups; without it, every backup of
the graph goes; `keep_backup=None` (fixtures only) keeps them all. Kept backups are still listed project-wide and per
graph, and can still be deleted.

The store knows no clock and no randomness of its own: seeding takes `now_ms` and `seed`.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left, insort
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeAlias

from ges_retention.emulator.seeding import (
    DAY_MS,
    check_seed_sizes,
    format_api_time,
    graph_record,
    name_stamp,
    random_uuid,
    seeded_backups,
    seeded_graph,
)

__all__ = [
    "DAY_MS",
    "KEPT_ON_GRAPH_DELETE",
    "DeleteResult",
    "SeedResult",
    "Store",
    "format_api_time",
    "random_uuid",
]


# What GES keeps of a graph deleted with keep_backup (ges-api.md "Limits"): per method, the newest N. That they are
# the newest *successful* ones is the emulator's reading (a failed backup holds nothing to restore); import backups
# are not named by the documentation, so none is kept.
KEPT_ON_GRAPH_DELETE = {"auto": 1, "manual": 2}

# (-start_timestamp, id): ascending order of these keys is newest first, ties by id.
_Key: TypeAlias = tuple[int, str]


class DeleteResult(Enum):
    """What a delete request found."""

    DELETED = "deleted"
    NOT_FOUND = "not_found"  # never existed, already deleted, or not a backup of that graph
    BACKING_UP = "backing_up"  # the backup is still being made: GES.7002


@dataclass(frozen=True, slots=True)
class SeedResult:
    project_id: str
    graph_ids: list[str]
    backups: int


@dataclass(slots=True)
class _Project:
    graphs: dict[str, dict[str, Any]] = field(default_factory=dict)
    graph_keys: list[_Key] = field(default_factory=list)
    # Graphs ever created here, deleted ones included: the next seeded graph's name index.
    graphs_created: int = 0
    backups: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: list[_Key] = field(default_factory=list)
    by_graph: dict[str, list[_Key]] = field(default_factory=dict)


def _backup_key(record: Mapping[str, Any]) -> _Key:
    ts = record.get("start_timestamp")
    # Raw fixtures may carry a broken timestamp on purpose; they sort as the oldest.
    start = ts if isinstance(ts, int) and not isinstance(ts, bool) else 0
    return (-start, str(record["id"]))


class Store:
    """Projects, graphs and backups of the emulated cloud. Single-threaded: use it from the event loop."""

    def __init__(self) -> None:
        self._projects: dict[str, _Project] = {}
        # Ids for fixtures that bring none: deterministic, and apart from any seeding's random stream.
        self._fixture_rng = random.Random("ges-retention-emulator-fixtures")

    # -- projects -----------------------------------------------------------------------------------------------

    def _project(self, project_id: str) -> _Project:
        project = self._projects.get(project_id)
        if project is None:
            project = self._projects[project_id] = _Project()
        return project

    def add_project(self, project_id: str) -> None:
        self._project(project_id)

    def project_ids(self) -> list[str]:
        return list(self._projects)

    def clear(self) -> None:
        """Forget every graph and backup (the projects stay, empty)."""
        for project_id in self._projects:
            self._projects[project_id] = _Project()

    # -- graphs -------------------------------------------------------------------------------------------------

    def add_graph(
        self,
        project_id: str,
        *,
        name: str,
        graph_id: str | None = None,
        status: str = "200",
        created_ms: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Add a graph (status "200" = running) and return a copy of its API record; extra fields are kept."""
        project = self._project(project_id)
        gid = graph_id if graph_id is not None else random_uuid(self._fixture_rng)
        if not gid:
            raise ValueError("a graph id must be a non-empty string")
        if gid in project.graphs:
            raise ValueError(f"graph {gid!r} already exists in project {project_id!r}")
        when = created_ms if created_ms is not None else int(time.time() * 1000)
        record = graph_record(gid, name, status=status, created_ms=when, **extra)
        self._insert_graph(project, record, when)
        return dict(record)

    def _insert_graph(self, project: _Project, record: dict[str, Any], created_ms: int) -> None:
        project.graphs[record["id"]] = record
        insort(project.graph_keys, (-created_ms, record["id"]))
        project.graphs_created += 1

    def graph(self, project_id: str, graph_id: str) -> dict[str, Any] | None:
        project = self._projects.get(project_id)
        record = project.graphs.get(graph_id) if project else None
        return dict(record) if record is not None else None

    def graphs(self, project_id: str) -> list[dict[str, Any]]:
        """Every graph of the project, newest created first."""
        _, page = self.page_graphs(project_id, 0, None)
        return [dict(g) for g in page]

    def graph_known(self, project_id: str, graph_id: str) -> bool:
        """True if the graph exists or a backup of it survives (a deleted graph's backups keep it listable)."""
        project = self._projects.get(project_id)
        return project is not None and (graph_id in project.graphs or graph_id in project.by_graph)

    def delete_graph(self, project_id: str, graph_id: str, *, keep_backup: bool | None = None) -> bool:
        """Delete a graph. `keep_backup` True keeps what GES keeps (`KEPT_ON_GRAPH_DELETE`), False deletes every
        backup of it, None (a test fixture) keeps them all. False if there was no such graph."""
        project = self._projects.get(project_id)
        if project is None or graph_id not in project.graphs:
            return False
        del project.graphs[graph_id]
        project.graph_keys = [k for k in project.graph_keys if k[1] != graph_id]
        if keep_backup is not None:
            records = [project.backups[k[1]] for k in project.by_graph.get(graph_id, ())]  # newest first
            kept = _kept_on_graph_delete(records) if keep_backup else set()
            for record in records:
                if record["id"] not in kept:
                    self.discard_backup(project_id, record["id"])
        return True

    def page_graphs(self, project_id: str, offset: int, limit: int | None) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page of graph records, not copies: serialize them, do not keep them)."""
        project = self._projects.get(project_id)
        if project is None:
            return 0, []
        keys = project.graph_keys
        chosen = keys[offset:] if limit is None else keys[offset : offset + limit]
        return len(keys), [project.graphs[k[1]] for k in chosen]

    # -- backups ------------------------------------------------------------------------------------------------

    def add_backup(self, project_id: str, record: Mapping[str, Any], *, complete: bool = True) -> dict[str, Any]:
        """Add one backup from an explicit fixture and return a copy of what is stored.

        With `complete` (the default) the record needs `graph_id` and `start_timestamp` (epoch ms); every other
        field of the API's backup object is filled in consistently (id, name `<graph>-YYYYMMDDHHMMSS`, status
        `success`, method `manual`, times, size, ...) unless given; extra fields are kept. The graph need not exist:
        the backup then behaves like one whose graph was deleted.

        With `complete=False` the record is stored exactly as given (only a non-empty string `id` is required), so
        tests can serve deliberately broken records.
        """
        project = self._project(project_id)
        if complete:
            stored = self._complete_backup(project, record)
        else:
            stored = dict(record)
            if not isinstance(stored.get("id"), str) or not stored["id"]:
                raise ValueError("a raw backup record needs a non-empty string 'id'")
        if stored["id"] in project.backups:
            raise ValueError(f"backup {stored['id']!r} already exists in project {project_id!r}")
        self._insert_backup(project, stored)
        return dict(stored)

    def _insert_backup(self, project: _Project, record: dict[str, Any]) -> None:
        key = _backup_key(record)
        project.backups[key[1]] = record
        insort(project.keys, key)
        graph_id = record.get("graph_id")
        if isinstance(graph_id, str):
            insort(project.by_graph.setdefault(graph_id, []), key)

    def _complete_backup(self, project: _Project, record: Mapping[str, Any]) -> dict[str, Any]:
        graph_id = record.get("graph_id")
        if not isinstance(graph_id, str) or not graph_id:
            raise ValueError("a backup fixture needs a non-empty string 'graph_id'")
        start = record.get("start_timestamp")
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            raise ValueError("a backup fixture needs 'start_timestamp' as a non-negative integer (epoch ms)")
        graph = project.graphs.get(graph_id)
        graph_name = record.get("graph_name", graph["name"] if graph else graph_id)
        status = record.get("status", "success")
        if not isinstance(status, str):
            raise ValueError("'status' must be a string")
        duration = record.get("duration", 0 if status == "backing_up" else 60)
        if not isinstance(duration, int) or isinstance(duration, bool) or duration < 0:
            raise ValueError("'duration' must be a non-negative integer (seconds)")
        end = None if status == "backing_up" else start + duration * 1000
        stored: dict[str, Any] = {
            "id": random_uuid(self._fixture_rng),
            "name": f"{graph_name}-{name_stamp(start)}",
            "backup_method": "manual",
            "graph_id": graph_id,
            "graph_name": graph_name,
            "graph_status": "200",
            "graph_size_type_index": graph["graph_size_type_index"] if graph else "1",
            "data_store_version": graph["data_store_version"] if graph else "2.3.10",
            "arch": "x86_64",
            "status": status,
            "start_timestamp": start,
            "start_time": format_api_time(start),
            "end_timestamp": end,
            "end_time": format_api_time(end) if end is not None else None,
            "size": 0 if status == "backing_up" else 1,
            "duration": duration,
            "encrypted": False,
        }
        stored.update(record)
        if not isinstance(stored["id"], str) or not stored["id"]:
            raise ValueError("'id' must be a non-empty string")
        return stored

    def backup(self, project_id: str, backup_id: str) -> dict[str, Any] | None:
        project = self._projects.get(project_id)
        record = project.backups.get(backup_id) if project else None
        return dict(record) if record is not None else None

    def backups(self, project_id: str) -> list[dict[str, Any]]:
        """Every current backup of the project (copies), newest first."""
        project = self._projects.get(project_id)
        if project is None:
            return []
        return [dict(project.backups[k[1]]) for k in project.keys]

    def backup_count(self, project_id: str) -> int:
        project = self._projects.get(project_id)
        return len(project.keys) if project else 0

    def page_backups(
        self, project_id: str, offset: int, limit: int, *, graph_id: str | None = None
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page newest first) of the project, or of one graph. Records are not copies."""
        project = self._projects.get(project_id)
        if project is None:
            return 0, []
        keys = project.keys if graph_id is None else project.by_graph.get(graph_id, [])
        backups = project.backups
        return len(keys), [backups[k[1]] for k in keys[offset : offset + limit]]

    def delete_backup(self, project_id: str, graph_id: str, backup_id: str) -> DeleteResult:
        """Delete a backup addressed by graph and id.

        A backup addressed with a graph id it does not belong to is NOT_FOUND (it does not exist under that graph):
        the emulator never deletes something other than what the path names.
        """
        project = self._projects.get(project_id)
        record = project.backups.get(backup_id) if project else None
        if record is None or record.get("graph_id") != graph_id:
            return DeleteResult.NOT_FOUND
        if record.get("status") == "backing_up":
            return DeleteResult.BACKING_UP
        # The graph's last backup gone, a deleted graph becomes unknown to the per-graph listing (GES.7000).
        self.discard_backup(project_id, backup_id)
        return DeleteResult.DELETED

    def discard_backup(self, project_id: str, backup_id: str) -> bool:
        """Remove a backup whatever its state (fixture rollback, tests); the API's delete is `delete_backup`."""
        project = self._projects.get(project_id)
        record = project.backups.pop(backup_id, None) if project else None
        if project is None or record is None:
            return False
        key = _backup_key(record)
        _remove_key(project.keys, key)
        graph_id = record.get("graph_id")
        if isinstance(graph_id, str) and graph_id in project.by_graph:
            _remove_key(project.by_graph[graph_id], key)
            if not project.by_graph[graph_id]:
                del project.by_graph[graph_id]
        return True

    def graph_busy(self, project_id: str, graph_id: str) -> bool:
        """True while a backup of the graph is `backing_up`."""
        project = self._projects.get(project_id)
        if project is None:
            return False
        backups = project.backups
        return any(backups[k[1]].get("status") == "backing_up" for k in project.by_graph.get(graph_id, ()))

    def update_backup(self, project_id: str, backup_id: str, changes: Mapping[str, Any]) -> None:
        """Change fields of a stored backup that do not move it in the listing order (e.g. a finished backup)."""
        record = self._project(project_id).backups[backup_id]
        if any(k in changes for k in ("id", "graph_id", "start_timestamp")):
            raise ValueError("id, graph_id and start_timestamp cannot be changed")
        record.update(changes)

    # -- seeding ------------------------------------------------------------------------------------------------

    def seed(self, project_id: str, *, graphs: int, backups_per_graph: int, now_ms: int, seed: int) -> SeedResult:
        """Add `graphs` graphs with `backups_per_graph` backups each, as a real project would hold them.

        Per graph: one automatic backup a day at a fixed time of day, going back about `backups_per_graph` days,
        about one in ten days a manual backup instead (one in twenty of those an `import` one), about one in thirty
        failed, and for about one graph in ten the newest backup still `backing_up`. Nothing starts after `now_ms`.

        Deterministic: the same calls on a fresh store give identical data. The random stream is derived from
        (seed, project, graphs already created there), so seeding twice adds new, distinct graphs.
        """
        check_seed_sizes(graphs, backups_per_graph)
        project = self._project(project_id)
        rng = random.Random(f"{seed}:{project_id}:{project.graphs_created}")
        graph_ids: list[str] = []
        new_keys: list[_Key] = []
        for _ in range(graphs):
            graph = self._seed_graph(project, rng, backups_per_graph, now_ms)
            graph_ids.append(graph["id"])
            records = seeded_backups(rng, graph, backups_per_graph, now_ms)
            graph_keys: list[_Key] = []
            for record in records:
                while record["id"] in project.backups:  # 128 random bits: only a paranoid check
                    record["id"] = random_uuid(rng)
                key = (-record["start_timestamp"], record["id"])
                project.backups[record["id"]] = record
                graph_keys.append(key)
            graph_keys.sort()
            project.by_graph.setdefault(graph["id"], []).extend(graph_keys)
            project.by_graph[graph["id"]].sort()
            new_keys.extend(graph_keys)
        project.keys.extend(new_keys)
        project.keys.sort()
        return SeedResult(project_id=project_id, graph_ids=graph_ids, backups=len(new_keys))

    def _seed_graph(self, project: _Project, rng: random.Random, days: int, now_ms: int) -> dict[str, Any]:
        def taken(graph_id: str) -> bool:
            return graph_id in project.graphs or graph_id in project.by_graph

        record, created_ms = seeded_graph(rng, project.graphs_created, days, now_ms, taken)
        self._insert_graph(project, record, created_ms)
        return record


def _kept_on_graph_delete(records_newest_first: list[dict[str, Any]]) -> set[str]:
    left = dict(KEPT_ON_GRAPH_DELETE)
    kept = set()
    for record in records_newest_first:
        method = record.get("backup_method")
        if record.get("status") == "success" and isinstance(method, str) and left.get(method, 0) > 0:
            left[method] -= 1
            kept.add(record["id"])
    return kept


def _remove_key(keys: list[_Key], key: _Key) -> None:
    i = bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        del keys[i]
