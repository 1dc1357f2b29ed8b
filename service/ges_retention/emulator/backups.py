"""The emulated routes about backups: the project-wide and per-graph listings, creating and deleting one.

    GET    /v2/{project_id}/graphs/backups                          list_backups        {"backup_count", "backup_list"}
    GET    /v2/{project_id}/graphs/{graph_id}/backups               list_graph_backups  {"backup_count", "backup_list"}
    POST   /v2/{project_id}/graphs/{graph_id}/backups               create_backup       {"job_id"}
    DELETE /v2/{project_id}/graphs/{graph_id}/backups/{backup_id}   delete_backup       {}

Deleting a backup that does not exist (whatever the graph id, or under a graph it does not belong to) is 400
GES.7024; a `backing_up` one is 400 GES.7002; listing a graph of which neither the graph nor a backup is known is 400
GES.7000. A backup made through the API is `backing_up` for `backup_duration_s` of the injected clock, then `success`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ges_retention.emulator.config import EmulatorConfig
from ges_retention.emulator.errors import (
    MSG_BACKUP_NOT_FOUND,
    MSG_GRAPH_BACKING_UP,
    MSG_GRAPH_NOT_FOUND,
    MSG_GRAPH_NOT_RUNNING,
    ApiError,
)
from ges_retention.emulator.gates import Gates
from ges_retention.emulator.graphs import check_backup_quota
from ges_retention.emulator.params import REQUEST_ID, paging
from ges_retention.emulator.stats import Stats, client_of
from ges_retention.emulator.store import DeleteResult, Store, format_api_time, random_uuid

__all__ = ["BackupRoutes"]


def _json(body: Any) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), content_type="application/json")


class BackupRoutes:
    """The handlers; the emulator's gates (auth, rate, holds, faults) have run before them."""

    __slots__ = ("clock", "config", "gates", "pending", "rng", "stats", "store")

    def __init__(
        self,
        store: Store,
        config: EmulatorConfig,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        stats: Stats,
        gates: Gates,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.rng = rng
        self.stats = stats
        self.gates = gates
        # Backups made through the API, still `backing_up`: backup id -> (project id, start ms, clock s when done).
        # They finish when a request finds the clock past their time, so tests drive them with the injected clock.
        self.pending: dict[str, tuple[str, int, float]] = {}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        # The project-wide listing first: /graphs/backups is never read as the graph "backups".
        router.add_get("/v2/{project_id}/graphs/backups", self.list_backups, name="list_backups", allow_head=False)
        graph_backups = "/v2/{project_id}/graphs/{graph_id}/backups"
        router.add_get(graph_backups, self.list_graph_backups, name="list_graph_backups", allow_head=False)
        router.add_post(graph_backups, self.create_backup, name="create_backup")
        router.add_delete(graph_backups + "/{backup_id}", self.delete_backup, name="delete_backup")

    async def list_backups(self, request: web.Request) -> web.Response:
        offset, limit = paging(request, from_start=self.gates.repeats("list_backups"))
        total, page = self.store.page_backups(request.match_info["project_id"], offset, limit)
        return _json({"backup_count": total, "backup_list": page})

    async def list_graph_backups(self, request: web.Request) -> web.Response:
        project_id, graph_id = request.match_info["project_id"], request.match_info["graph_id"]
        offset, limit = paging(request, from_start=self.gates.repeats("list_graph_backups"))
        if not self.store.graph_known(project_id, graph_id):
            raise ApiError(400, "GES.7000", MSG_GRAPH_NOT_FOUND)
        total, page = self.store.page_backups(project_id, offset, limit, graph_id=graph_id)
        return _json({"backup_count": total, "backup_list": page})

    async def delete_backup(self, request: web.Request) -> web.Response:
        info = request.match_info
        result = self.store.delete_backup(info["project_id"], info["graph_id"], info["backup_id"])
        if result is DeleteResult.NOT_FOUND:
            raise ApiError(400, "GES.7024", MSG_BACKUP_NOT_FOUND)
        if result is DeleteResult.BACKING_UP:
            raise ApiError(400, "GES.7002", MSG_GRAPH_BACKING_UP)
        self.stats.deleted(info["backup_id"], client_of(request.headers.get("User-Agent")))
        self.stats.delete_request_ids[info["backup_id"]] = request[REQUEST_ID]
        return _json({})

    async def create_backup(self, request: web.Request) -> web.Response:
        project_id, graph_id = request.match_info["project_id"], request.match_info["graph_id"]
        graph = self.store.graph(project_id, graph_id)
        if graph is None:
            raise ApiError(400, "GES.7000", MSG_GRAPH_NOT_FOUND)
        if graph["status"] != "200":
            raise ApiError(400, "GES.7001", MSG_GRAPH_NOT_RUNNING)
        if self.store.graph_busy(project_id, graph_id):
            raise ApiError(400, "GES.7002", MSG_GRAPH_BACKING_UP)
        check_backup_quota(self.store, self.config, project_id)
        now_ms = int(self.clock()) * 1000  # whole seconds, like the cloud's timestamps
        duration_s = self.config.backup_duration_s
        backup_id = random_uuid(self.rng)
        status = "backing_up" if duration_s > 0 else "success"
        record = {"id": backup_id, "graph_id": graph_id, "start_timestamp": now_ms, "status": status, "duration": 0}
        self.store.add_backup(project_id, record)
        if duration_s > 0:
            self.pending[backup_id] = (project_id, now_ms, now_ms / 1000 + duration_s)
        return _json({"job_id": random_uuid(self.rng)})

    def finish_due_backups(self) -> None:
        now = self.clock()
        for backup_id, (project_id, start_ms, done_at) in list(self.pending.items()):
            if now >= done_at:
                del self.pending[backup_id]
                self._finish_backup(project_id, backup_id, start_ms, int(done_at * 1000))

    def _finish_backup(self, project_id: str, backup_id: str, start_ms: int, end_ms: int) -> None:
        if self.store.backup(project_id, backup_id) is None:
            return  # the data was reset meanwhile
        self.store.update_backup(
            project_id,
            backup_id,
            {
                "status": "success",
                "end_timestamp": end_ms,
                "end_time": format_api_time(end_ms),
                "duration": (end_ms - start_ms) // 1000,
                "size": 1,
            },
        )
