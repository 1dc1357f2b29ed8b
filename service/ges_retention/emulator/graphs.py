"""The emulated routes about graphs as a whole: listing them, deleting one (with or without `keep_backup`), quotas.

    GET    /v2/{project_id}/graphs                                     list_graphs    {"graph_count", "graphs"}
    DELETE /v2/{project_id}/graphs/{graph_id}?keep_backup=true|false   delete_graph   {"job_id"}
    GET    /v2/{project_id}/graphs/quotas                              list_quotas    {"quotas": {"resources": [...]}}

Deleting is done at once (the cloud runs a job); `keep_backup` defaults to false, as in the official SDK, and keeps
what GES keeps (`store.KEPT_ON_GRAPH_DELETE`). An unknown graph is 400 GES.7000.

Quotas: the `backup` entry's `available` is `backup_quota` minus the backups the project holds (never below 0), or
-1 when `backup_quota` is -1 (unlimited); `quota_without_backup` leaves that entry out. Creating a backup when none is
available is 400 GES.7019 (`check_backup_quota`). The `graph` and `metadata` entries are fixed, plausible values.
"""

from __future__ import annotations

import json
import random
from typing import Any

from aiohttp import web

from ges_retention.emulator.config import EmulatorConfig
from ges_retention.emulator.errors import MSG_GRAPH_NOT_FOUND, ApiError, bad_parameter
from ges_retention.emulator.gates import Gates
from ges_retention.emulator.params import paging
from ges_retention.emulator.store import Store, random_uuid

__all__ = ["MSG_BACKUP_QUOTA", "GraphRoutes", "backup_quota_available", "check_backup_quota"]

MSG_BACKUP_QUOTA = "The number of backups has reached the upper limit."


def backup_quota_available(store: Store, config: EmulatorConfig, project_id: str) -> int:
    if config.backup_quota < 0:
        return -1
    return max(0, config.backup_quota - store.backup_count(project_id))


def check_backup_quota(store: Store, config: EmulatorConfig, project_id: str) -> None:
    """400 GES.7019 when the project holds as many backups as its quota allows."""
    if backup_quota_available(store, config, project_id) == 0:
        raise ApiError(400, "GES.7019", MSG_BACKUP_QUOTA)


def _json(body: Any) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), content_type="application/json")


class GraphRoutes:
    """The handlers; the emulator's gates (auth, rate, holds, faults) have run before them."""

    __slots__ = ("config", "gates", "rng", "store")

    def __init__(self, store: Store, config: EmulatorConfig, rng: random.Random, gates: Gates) -> None:
        self.store = store
        self.config = config
        self.rng = rng
        self.gates = gates

    async def list_graphs(self, request: web.Request) -> web.Response:
        offset, limit = paging(request, from_start=self.gates.repeats("list_graphs"))
        total, page = self.store.page_graphs(request.match_info["project_id"], offset, limit)
        return _json({"graph_count": total + self.config.graph_count_extra, "graphs": page})

    async def delete_graph(self, request: web.Request) -> web.Response:
        values = request.query.getall("keep_backup", [])
        if len(values) > 1 or (values and values[0] not in ("true", "false")):
            raise bad_parameter("keep_backup must be true or false.")
        keep_backup = bool(values) and values[0] == "true"
        project_id, graph_id = request.match_info["project_id"], request.match_info["graph_id"]
        if not self.store.delete_graph(project_id, graph_id, keep_backup=keep_backup):
            raise ApiError(400, "GES.7000", MSG_GRAPH_NOT_FOUND)
        return _json({"job_id": random_uuid(self.rng)})

    async def list_quotas(self, request: web.Request) -> web.Response:
        project_id = request.match_info["project_id"]
        resources: list[dict[str, Any]] = [{"type": "graph", "available": 10, "edge_volume": 1_000_000_000}]
        if not self.config.quota_without_backup:
            resources.append(
                {"type": "backup", "available": backup_quota_available(self.store, self.config, project_id)}
            )
        resources.append({"type": "metadata", "available": 10})
        return _json({"quotas": {"resources": resources}})

    def add_routes(self, router: web.UrlDispatcher) -> None:
        # Before `/graphs/{graph_id}/...` routes are matched, `/graphs/quotas` is the quota, never a graph "quotas".
        router.add_get("/v2/{project_id}/graphs/quotas", self.list_quotas, name="list_quotas", allow_head=False)
        router.add_get("/v2/{project_id}/graphs", self.list_graphs, name="list_graphs", allow_head=False)
        router.add_delete("/v2/{project_id}/graphs/{graph_id}", self.delete_graph, name="delete_graph")
