"""The emulator's control API under `/_emulator/`: knobs, data fixtures, statistics, reset and the hold gate.

JSON in and out, no authentication: a test tool, which is why `ges-retention emulator` refuses to listen beyond
loopback without `--allow-remote`. The routes are listed on `Control`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ges_retention.emulator.config import OPERATIONS, PROJECT_ID_RE, ConfigError
from ges_retention.emulator.errors import ApiError
from ges_retention.emulator.seeding import check_seed_sizes
from ges_retention.emulator.store import Store

if TYPE_CHECKING:
    from ges_retention.emulator.app import Emulator

__all__ = ["CONTROL_PREFIX", "Control", "add_control_routes"]

CONTROL_PREFIX = "/_emulator/"

Clock = Callable[[], float]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status, content_type="application/json")


_CONTROL_CODE = "EMULATOR.0001"


def _control_error(message: str, status: int = 400) -> ApiError:
    return ApiError(status, _CONTROL_CODE, message)


async def _read_json(request: web.Request, *, empty: Any = None) -> Any:
    raw = await request.read()
    if not raw.strip() and empty is not None:
        return empty
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _control_error(f"The request body is not valid JSON: {exc}") from None


def _object(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _control_error("The request body must be a JSON object.")
    return value


def _body_int(body: Mapping[str, Any], key: str, default: int | None = None, *, low: int = 0) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _control_error(f"{key} must be an integer >= {low}.")
    return value


class Control:
    """The control API: JSON in and out, no auth (a test tool on loopback). Errors: 400 (404 for an unknown graph)
    `{"error_code": "EMULATOR.0001", "error_msg": <what is wrong>}`.

        GET    /_emulator/config          the knobs (shape in config.py)
        PUT    /_emulator/config          change any subset of the knobs, all or nothing; answers the whole config
        POST   /_emulator/seed            {"project_id"?, "graphs": N, "backups_per_graph": M, "now_ms"?, "seed"?}
                                          -> {"project_id", "graph_ids", "backups"}; adds to what is there
        POST   /_emulator/backups         {"project_id"?, "graphs"?: [{"name", "id"?, "status"?, "created_ms"?, ...}],
                                           "backups": [<record>, ...], "complete"?: true}
                                          -> {"project_id", "graphs", "backups"}; all or nothing (see Store.add_backup)
        GET    /_emulator/backups?project_id=   {"project_id", "backup_count", "backup_list"}: all, newest first
        GET    /_emulator/graphs?project_id=    {"project_id", "graph_count", "graphs"}
        DELETE /_emulator/graphs/{graph_id}?project_id=&keep_backup=   delete a graph: keep_backup true/false as
                                          the GES route (graphs.py); absent, every backup of it stays (a fixture)
        GET    /_emulator/stats           the statistics (shape in stats.py)
        POST   /_emulator/reset           {"data"?: false}: statistics and rate-limit windows start over; with
                                          "data": true every graph, backup and issued token goes too. Knobs and
                                          holds stay.
        POST   /_emulator/security_tokens/expire   every agency credential issued so far expires now -> {"expired": N}
        GET    /_emulator/holds           {operation: {"holding", "waiting", "released"}} for every operation held
        PUT    /_emulator/holds/{op}      hold: requests of `op` wait at the gate from now on -> its state
        POST   /_emulator/holds/{op}/release   {"count": N}: let N waiting (or future) requests go; the hold stays
        DELETE /_emulator/holds/{op}      stop holding: every waiting request goes on -> its state
        GET    /_emulator/holds/{op}?waiting=N&timeout_s=T   answer once N requests wait (T: 0..60, default 10);
                                          408 if they do not within T seconds: wait on this, never poll

    `project_id` defaults to the first configured project; `now_ms` to the emulator's clock; `seed` to the
    config's seed.
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def _project(self, value: Any) -> str:
        if value is None:
            return self.emulator.config.default_project_id
        if not isinstance(value, str) or not PROJECT_ID_RE.fullmatch(value):
            raise _control_error("project_id must be 1 to 64 letters and digits.")
        return value

    async def get_config(self, request: web.Request) -> web.Response:
        return _json(self.emulator.config.to_json())

    async def put_config(self, request: web.Request) -> web.Response:
        try:
            changed = self.emulator.config.apply(await _read_json(request))
        except ConfigError as exc:
            raise _control_error(str(exc)) from None
        if "seed" in changed:
            self.emulator.rng.seed(self.emulator.config.seed)
        for project_id in self.emulator.config.project_ids:
            self.emulator.store.add_project(project_id)
        return _json(self.emulator.config.to_json())

    async def seed(self, request: web.Request) -> web.Response:
        body = _object(await _read_json(request))
        unknown = set(body) - {"project_id", "graphs", "backups_per_graph", "now_ms", "seed"}
        if unknown:
            raise _control_error(f"Unknown keys: {', '.join(sorted(unknown))}.")
        project_id = self._project(body.get("project_id"))
        graphs = _body_int(body, "graphs")
        per_graph = _body_int(body, "backups_per_graph")
        try:
            check_seed_sizes(graphs, per_graph)
        except ValueError as exc:
            raise _control_error(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None
        now_ms = _body_int(body, "now_ms", int(self.emulator.clock() * 1000))
        seed = body.get("seed", self.emulator.config.seed)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise _control_error("seed must be an integer.")
        result = self.emulator.store.seed(
            project_id, graphs=graphs, backups_per_graph=per_graph, now_ms=now_ms, seed=seed
        )
        return _json({"project_id": project_id, "graph_ids": result.graph_ids, "backups": result.backups})

    async def add_backups(self, request: web.Request) -> web.Response:
        body = _object(await _read_json(request))
        unknown = set(body) - {"project_id", "graphs", "backups", "complete"}
        if unknown:
            raise _control_error(f"Unknown keys: {', '.join(sorted(unknown))}.")
        project_id = self._project(body.get("project_id"))
        graphs, backups = body.get("graphs", []), body.get("backups", [])
        complete = body.get("complete", True)
        if not isinstance(graphs, list) or not isinstance(backups, list) or not isinstance(complete, bool):
            raise _control_error("graphs and backups must be lists, complete a boolean.")
        store = self.emulator.store
        added_graphs: list[str] = []
        added_backups: list[str] = []
        try:
            for i, graph in enumerate(graphs):
                added_graphs.append(_add_fixture_graph(store, project_id, i, graph, self.emulator.clock))
            for i, record in enumerate(backups):
                if not isinstance(record, Mapping):
                    raise ValueError(f"backups[{i}] must be an object")
                try:
                    added_backups.append(store.add_backup(project_id, record, complete=complete)["id"])
                except ValueError as exc:
                    raise ValueError(f"backups[{i}]: {exc}") from None
        except ValueError as exc:
            # All or nothing: a fixture half loaded would make the test that sent it lie.
            for backup_id in added_backups:
                store.discard_backup(project_id, backup_id)
            for graph_id in added_graphs:
                store.delete_graph(project_id, graph_id)
            raise _control_error(str(exc)) from None
        return _json({"project_id": project_id, "graphs": len(added_graphs), "backups": len(added_backups)})

    async def get_backups(self, request: web.Request) -> web.Response:
        project_id = self._project(request.query.get("project_id"))
        self.emulator.backups.finish_due_backups()
        backups = self.emulator.store.backups(project_id)
        return _json({"project_id": project_id, "backup_count": len(backups), "backup_list": backups})

    async def get_graphs(self, request: web.Request) -> web.Response:
        project_id = self._project(request.query.get("project_id"))
        graphs = self.emulator.store.graphs(project_id)
        return _json({"project_id": project_id, "graph_count": len(graphs), "graphs": graphs})

    async def delete_graph(self, request: web.Request) -> web.Response:
        project_id = self._project(request.query.get("project_id"))
        keep = request.query.get("keep_backup")
        if keep not in (None, "true", "false"):
            raise _control_error("keep_backup must be true or false (or absent: keep every backup).")
        keep_backup = None if keep is None else keep == "true"
        if not self.emulator.store.delete_graph(project_id, request.match_info["graph_id"], keep_backup=keep_backup):
            raise _control_error("No such graph.", 404)
        return _json({})

    async def get_stats(self, request: web.Request) -> web.Response:
        return _json(self.emulator.stats.to_json())

    async def reset(self, request: web.Request) -> web.Response:
        body = _object(await _read_json(request, empty={}))
        data = body.get("data", False)
        if not isinstance(data, bool) or set(body) - {"data"}:
            raise _control_error('The body must be {"data": true|false} or empty.')
        self.emulator.reset(data=data)
        return _json({"reset": ["stats", "data"] if data else ["stats"]})

    async def expire_security_tokens(self, request: web.Request) -> web.Response:
        emulator = self.emulator
        return _json({"expired": emulator.tokens.expire_temporary(emulator.clock())})

    # -- holds --------------------------------------------------------------------------------------------------

    def _operation(self, request: web.Request) -> str:
        operation = request.match_info["operation"]
        if operation not in OPERATIONS:
            raise _control_error(f"Unknown operation {operation[:64]!r}; known: {', '.join(OPERATIONS)}.", 404)
        return operation

    async def get_holds(self, request: web.Request) -> web.Response:
        return _json(self.emulator.gates.holds.to_json())

    async def hold(self, request: web.Request) -> web.Response:
        operation = self._operation(request)
        holds = self.emulator.gates.holds
        await holds.hold(operation)
        return _json(holds.state(operation).to_json())

    async def release(self, request: web.Request) -> web.Response:
        operation = self._operation(request)
        body = _object(await _read_json(request, empty={}))
        if set(body) - {"count"}:
            raise _control_error('The body must be {"count": N} or empty (N = 1).')
        count = _body_int(body, "count", 1, low=1)
        holds = self.emulator.gates.holds
        await holds.release(operation, count)
        return _json(holds.state(operation).to_json())

    async def unhold(self, request: web.Request) -> web.Response:
        operation = self._operation(request)
        holds = self.emulator.gates.holds
        await holds.unhold(operation)
        return _json(holds.state(operation).to_json())

    async def wait_held(self, request: web.Request) -> web.Response:
        operation = self._operation(request)
        waiting = _query_number(request, "waiting", 0, 1_000_000)
        timeout_s = _query_number(request, "timeout_s", 10, 60)
        holds = self.emulator.gates.holds
        try:
            async with asyncio.timeout(timeout_s):
                await holds.wait_until_waiting(operation, int(waiting))
        except TimeoutError:
            state = holds.state(operation)
            raise _control_error(
                f"{state.waiting} {operation} requests wait, not {int(waiting)}, after {timeout_s:g} s.", 408
            ) from None
        return _json(holds.state(operation).to_json())


def _add_fixture_graph(store: Store, project_id: str, index: int, graph: Any, clock: Clock) -> str:
    if not isinstance(graph, Mapping) or not isinstance(graph.get("name"), str):
        raise ValueError(f"graphs[{index}] must be an object with a string name")
    fields = dict(graph)
    name = fields.pop("name")
    graph_id = fields.pop("id", None)
    status = fields.pop("status", "200")
    created_ms = fields.pop("created_ms", int(clock() * 1000))
    if not (graph_id is None or isinstance(graph_id, str)) or not isinstance(status, str):
        raise ValueError(f"graphs[{index}]: id and status must be strings")
    if isinstance(created_ms, bool) or not isinstance(created_ms, int):
        raise ValueError(f"graphs[{index}]: created_ms must be an integer")
    try:
        record = store.add_graph(
            project_id, name=name, graph_id=graph_id, status=status, created_ms=created_ms, **fields
        )
    except ValueError as exc:
        raise ValueError(f"graphs[{index}]: {exc}") from None
    return str(record["id"])


def _query_number(request: web.Request, name: str, default: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= high:
        raise _control_error(f"{name} must be a number from 0 to {high:g}.")
    return value


def add_control_routes(router: web.UrlDispatcher, control: Control) -> None:
    prefix = CONTROL_PREFIX
    router.add_get(prefix + "config", control.get_config, allow_head=False)
    router.add_put(prefix + "config", control.put_config)
    router.add_post(prefix + "seed", control.seed)
    router.add_post(prefix + "backups", control.add_backups)
    router.add_get(prefix + "backups", control.get_backups, allow_head=False)
    router.add_get(prefix + "graphs", control.get_graphs, allow_head=False)
    router.add_delete(prefix + "graphs/{graph_id}", control.delete_graph)
    router.add_get(prefix + "stats", control.get_stats, allow_head=False)
    router.add_post(prefix + "reset", control.reset)
    router.add_post(prefix + "security_tokens/expire", control.expire_security_tokens)
    router.add_get(prefix + "holds", control.get_holds, allow_head=False)
    router.add_put(prefix + "holds/{operation}", control.hold)
    router.add_post(prefix + "holds/{operation}/release", control.release)
    router.add_delete(prefix + "holds/{operation}", control.unhold)
    router.add_get(prefix + "holds/{operation}", control.wait_held, allow_head=False)
