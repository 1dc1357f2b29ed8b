"""The emulated GES v2 + IAM endpoint: an aiohttp application, and a way to run it in-process on a free port.

Routes (ges-api.md, to the letter):

    GET    /v2/{project_id}/graphs                                  list_graphs         {"graph_count", "graphs"}
    GET    /v2/{project_id}/graphs/backups                          list_backups        {"backup_count", "backup_list"}
    GET    /v2/{project_id}/graphs/{graph_id}/backups               list_graph_backups  {"backup_count", "backup_list"}
    POST   /v2/{project_id}/graphs/{graph_id}/backups               create_backup       {"job_id"}
    DELETE /v2/{project_id}/graphs/{graph_id}/backups/{backup_id}   delete_backup       {}
    POST   /v3/auth/tokens                                          iam_token           201, X-Subject-Token

`/v2/{p}/graphs/backups` is the project-wide listing, never the backups of a graph whose id is "backups" (that one is
`/v2/{p}/graphs/backups/backups`). Listings are newest first (ties by id), stable under paging; `offset` defaults to 0
and `limit` to 10, `limit` must be 1..1000 and `offset` >= 0.

A GES request goes through, in this order: path checks (a raw segment that is `.`/`..`, percent-encoded or holds
anything but letters, digits and `-_.~` is refused with 400 GES.0001, so an id can never reach another resource),
latency, authentication (see `auth.py`), the per-project rate limit (429 APIGW.0308), fault injection, and the
operation. An IAM request gets latency and faults only.

Where the cloud is undocumented (the emulator's choices): deleting a backup that does not exist (whatever the graph
id, or under a graph it does not belong to) is 400 GES.7024; a `backing_up` one is 400 GES.7002; listing a graph of
which neither the graph nor a backup is known is 400 GES.7000; a backup whose graph was deleted is still listed and
deletable. Injected faults answer 500 `GES.0500` and 503 `GES.0503` (codes made up by the emulator, messages saying
so), close the connection before the operation happens (`drop`), or answer only after `hang_s` (`hang`).

The control API under `/_emulator/` (JSON, no auth: a test tool on loopback) is described on `_Control`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import parse_qsl

from aiohttp import web

from ges_retention.emulator.auth import TokenRegistry, authenticate, iso_z
from ges_retention.emulator.config import (
    DEFAULT_AK,
    DEFAULT_IAM_DOMAIN,
    DEFAULT_IAM_PASSWORD,
    DEFAULT_IAM_USER,
    DEFAULT_PROJECT_ID,
    DEFAULT_SK,
    DEFAULT_TOKEN,
    GES_OPERATIONS,
    OPERATIONS,
    PROJECT_ID_RE,
    AccessKey,
    ConfigError,
    EmulatorConfig,
    FaultRates,
    IamUser,
)
from ges_retention.emulator.errors import (
    MSG_BACKUP_NOT_FOUND,
    MSG_GRAPH_BACKING_UP,
    MSG_GRAPH_NOT_FOUND,
    MSG_GRAPH_NOT_RUNNING,
    ApiError,
    bad_parameter,
    iam_error,
    throttled,
    unknown_api,
)
from ges_retention.emulator.stats import Stats
from ges_retention.emulator.store import DeleteResult, Store, format_api_time, random_uuid
from ges_retention.ges.signing import SignedRequest

__all__ = [
    "DEFAULT_AK",
    "DEFAULT_IAM_DOMAIN",
    "DEFAULT_IAM_PASSWORD",
    "DEFAULT_IAM_USER",
    "DEFAULT_PROJECT_ID",
    "DEFAULT_SK",
    "DEFAULT_TOKEN",
    "OPERATIONS",
    "AccessKey",
    "EmulatorConfig",
    "FaultRates",
    "IamUser",
    "RunningEmulator",
    "create_app",
    "running_emulator",
]

log = logging.getLogger(__name__)

Clock: TypeAlias = Callable[[], float]
Handler: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
# Letters, digits and the unreserved marks; no '%', so the decoded path is the raw path. Not starting with '.'.
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")
_DIGITS_RE = re.compile(r"[0-9]{1,18}")
_CONTROL_PREFIX = "/_emulator/"
_JSON = "application/json"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(text=_dumps(body), status=status, content_type=_JSON, headers=headers)


class _Dropped(Exception):
    """The connection must be closed without an answer."""


class _Emulator:
    """The state behind one application: data, knobs, statistics, issued tokens, random stream."""

    def __init__(self, store: Store, config: EmulatorConfig, clock: Clock) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.stats = Stats()
        self.tokens = TokenRegistry()
        self.rng = random.Random(config.seed)
        self.windows: dict[str, deque[float]] = {}
        self.shutting_down = asyncio.Event()
        # Backups made through the API, still `backing_up`: backup id -> (project id, start ms, clock s when done).
        # They finish when a request finds the clock past their time, so tests drive them with the injected clock.
        self.pending: dict[str, tuple[str, int, float]] = {}

    # -- the middleware: request ids, error bodies, statistics, and the gates before each operation ----------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = os.urandom(16).hex()
        if request.path.startswith(_CONTROL_PREFIX):
            response = await self._answer(request, handler, request_id, None)
        else:
            operation = request.match_info.route.name or "unknown"
            self.stats.arrived(time.monotonic())
            status = "cancelled"  # unless an answer or a drop says otherwise
            try:
                response = await self._answer(request, handler, request_id, operation)
                status = str(response.status)
            except _Dropped:
                status = "drop"
                if request.transport is not None:
                    request.transport.close()
                # aiohttp finds the transport closed when it writes this, and lets it go quietly.
                response = web.Response(status=500)
            finally:
                self.stats.finished(operation, status)
        response.headers["X-Request-Id"] = request_id
        return response

    async def _answer(
        self, request: web.Request, handler: Handler, request_id: str, operation: str | None
    ) -> web.StreamResponse:
        try:
            if operation == "unknown":
                # A trick that the router normalized away or could not match is still a bad parameter, not a 404.
                _check_segments(request)
            elif operation is not None:
                await self._gates(request, operation)
            return await handler(request)
        except ApiError as error:
            return _json(error.to_json(request_id), error.status)
        except web.HTTPException as exc:
            return _http_exception(exc, request_id)
        except _Dropped:
            raise
        except Exception:
            # A bug of the emulator still answers like the cloud would, without a traceback on the wire.
            log.exception("emulator: unexpected error on %s %s", request.method, request.path)
            return _json({"error_code": "GES.0500", "error_msg": "Internal server error."}, 500)

    async def _gates(self, request: web.Request, operation: str) -> None:
        project_id = _checked_path(request) if operation in GES_OPERATIONS else None
        await self._latency()
        if project_id is not None:
            if self.pending:
                self.finish_due_backups()
            raw_path, _, raw_query = request.raw_path.partition("?")
            signed = SignedRequest.of(
                request.method,
                raw_path,
                parse_qsl(raw_query, keep_blank_values=True),
                request.headers,
                await request.read(),
                host=request.host,
            )
            authenticate(
                config=self.config, tokens=self.tokens, project_id=project_id, request=signed, now=self.clock()
            )
            self._rate_limit(project_id)
        await self._fault(operation)

    async def _latency(self) -> None:
        delay_ms = self.config.latency_ms
        if self.config.latency_jitter_ms > 0:
            delay_ms += self.rng.uniform(0, self.config.latency_jitter_ms)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)

    def _rate_limit(self, project_id: str) -> None:
        limit = self.config.rate_limit_per_s
        if limit <= 0:
            return
        now = time.monotonic()
        window = self.windows.setdefault(project_id, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= limit:
            raise throttled(limit)
        window.append(now)

    async def _fault(self, operation: str) -> None:
        rates = self.config.fault_rates(operation)
        if rates is None or rates.total <= 0:
            return
        draw = self.rng.random()
        for kind, rate in (("error_500", rates.error_500), ("error_503", rates.error_503), ("drop", rates.drop)):
            if draw < rate:
                self.stats.fault(operation, kind)
                _raise_fault(kind)
            draw -= rate
        if draw < rates.hang:
            self.stats.fault(operation, "hang")
            await self._hang()

    def reset(self, *, data: bool) -> None:
        self.stats.reset()
        self.windows.clear()
        if data:
            self.store.clear()
            self.tokens.clear()
            self.pending.clear()

    async def on_shutdown(self, app: web.Application) -> None:
        self.shutting_down.set()

    async def _hang(self) -> None:
        try:
            async with asyncio.timeout(self.config.hang_s):
                await self.shutting_down.wait()
        except TimeoutError:
            return  # hung long enough: now the normal answer
        raise _Dropped  # the emulator is stopping: let the hung request go without an answer

    # -- GES --------------------------------------------------------------------------------------------------

    async def list_graphs(self, request: web.Request) -> web.Response:
        offset, limit = _paging(request)
        total, page = self.store.page_graphs(request.match_info["project_id"], offset, limit)
        return _json({"graph_count": total, "graphs": page})

    async def list_backups(self, request: web.Request) -> web.Response:
        offset, limit = _paging(request)
        total, page = self.store.page_backups(request.match_info["project_id"], offset, limit)
        return _json({"backup_count": total, "backup_list": page})

    async def list_graph_backups(self, request: web.Request) -> web.Response:
        project_id, graph_id = request.match_info["project_id"], request.match_info["graph_id"]
        offset, limit = _paging(request)
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
        self.stats.deleted_ids.append(info["backup_id"])
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

    # -- IAM ----------------------------------------------------------------------------------------------------

    async def iam_token(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise iam_error(400, "Bad Request", "The request body is not valid JSON.") from None
        domain, name, password, project_id = _password_auth(body)
        user = next(
            (u for u in self.config.iam_users if (u.domain, u.name, u.password) == (domain, name, password)), None
        )
        if user is None:
            raise iam_error(401, "Unauthorized", "The username or password is wrong.")
        if project_id not in self.config.project_ids:
            raise iam_error(401, "Unauthorized", "The request you have made requires authentication.")
        token, issued = self.tokens.issue(user, project_id, now=self.clock(), lifetime_s=self.config.token_lifetime_s)
        domain_ref = {"id": _opaque_id("domain", domain), "name": domain}
        document = {
            "token": {
                "expires_at": iso_z(issued.expires_at),
                "issued_at": iso_z(issued.issued_at),
                "methods": ["password"],
                "catalog": [],
                "roles": [{"id": "0", "name": "op_service"}],
                "project": {"id": project_id, "name": "cn-north-4", "domain": domain_ref},
                "user": {"id": _opaque_id("user", f"{domain}/{name}"), "name": name, "domain": domain_ref},
            }
        }
        return _json(document, 201, headers={"X-Subject-Token": token})


def _raise_fault(kind: str) -> None:
    if kind == "error_500":
        raise ApiError(500, "GES.0500", "Internal server error (fault injected by the emulator).")
    if kind == "error_503":
        raise ApiError(503, "GES.0503", "Service unavailable (fault injected by the emulator).")
    raise _Dropped


def _http_exception(exc: web.HTTPException, request_id: str) -> web.Response:
    if exc.status in (404, 405):
        # The gateway routes on method and path together: either wrong, the API does not exist.
        error = unknown_api()
    elif exc.status == 413:
        error = bad_parameter("The request body is too large.")
    else:
        error = ApiError(exc.status, "GES.0001", f"Incorrect parameter. {exc.reason}")
    return _json(error.to_json(request_id), error.status)


def _check_segments(request: web.Request) -> None:
    """Refuse a raw path with a segment that is not plain (see the module docstring)."""
    raw_path = request.raw_path.partition("?")[0]
    for segment in raw_path.split("/"):
        # Empty segments cannot fill a route variable: they only make a path unknown (404).
        if segment and not _SEGMENT_RE.fullmatch(segment):
            raise bad_parameter(f"The path segment {segment[:100]!r} is not allowed.")


def _checked_path(request: web.Request) -> str:
    """The project id, once every raw path segment is known to be plain."""
    _check_segments(request)
    project_id = request.match_info["project_id"]
    if not PROJECT_ID_RE.fullmatch(project_id):
        raise bad_parameter("project_id must be 1 to 64 letters and digits.")
    return project_id


def _paging(request: web.Request) -> tuple[int, int]:
    offset = _int_param(request, "offset", 0, 0, None)
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    return offset, limit


def _int_param(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    values = request.query.getall(name, [])
    if not values:
        return default
    bounds = f"from {low} to {high}" if high is not None else f">= {low}"
    if len(values) > 1 or not _DIGITS_RE.fullmatch(values[0]):
        raise bad_parameter(f"{name} must be one integer {bounds}.")
    value = int(values[0])
    if value < low or (high is not None and value > high):
        raise bad_parameter(f"{name} must be an integer {bounds}, got {value}.")
    return value


def _password_auth(body: Any) -> tuple[str, str, str, str]:
    """(domain, user, password, project id) of a Keystone password request, or a 400 naming what is wrong."""
    try:
        identity = body["auth"]["identity"]
        if "password" not in identity["methods"]:
            raise iam_error(400, "Bad Request", "Only the password method is supported by the emulator.")
        user = identity["password"]["user"]
        values = (user["domain"]["name"], user["name"], user["password"], body["auth"]["scope"]["project"]["id"])
    except (KeyError, TypeError):
        raise iam_error(
            400,
            "Bad Request",
            "Expected auth.identity.password.user.{domain.name,name,password} and auth.scope.project.id.",
        ) from None
    if not all(isinstance(v, str) for v in values):
        raise iam_error(400, "Bad Request", "The user's domain, name, password and the project id must be strings.")
    return values


def _opaque_id(kind: str, name: str) -> str:
    return random.Random(f"{kind}:{name}").getrandbits(128).to_bytes(16, "big").hex()


# -- the control API ----------------------------------------------------------------------------------------------

_CONTROL_CODE = "EMULATOR.0001"
_MAX_SEEDED_BACKUPS = 10_000_000


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


class _Control:
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
        DELETE /_emulator/graphs/{graph_id}?project_id=   delete a graph, keeping its backups
        GET    /_emulator/stats           the statistics (shape in stats.py)
        POST   /_emulator/reset           {"data"?: false}: statistics and rate-limit windows start over; with
                                          "data": true every graph, backup and issued token goes too. Knobs stay.

    `project_id` defaults to the first configured project; `now_ms` to the emulator's clock; `seed` to the
    config's seed.
    """

    def __init__(self, emulator: _Emulator) -> None:
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
        if graphs * per_graph > _MAX_SEEDED_BACKUPS:
            raise _control_error(f"At most {_MAX_SEEDED_BACKUPS} backups can be seeded at once.")
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
        self.emulator.finish_due_backups()
        backups = self.emulator.store.backups(project_id)
        return _json({"project_id": project_id, "backup_count": len(backups), "backup_list": backups})

    async def get_graphs(self, request: web.Request) -> web.Response:
        project_id = self._project(request.query.get("project_id"))
        graphs = self.emulator.store.graphs(project_id)
        return _json({"project_id": project_id, "graph_count": len(graphs), "graphs": graphs})

    async def delete_graph(self, request: web.Request) -> web.Response:
        project_id = self._project(request.query.get("project_id"))
        if not self.emulator.store.delete_graph(project_id, request.match_info["graph_id"]):
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


# -- assembly -------------------------------------------------------------------------------------------------------

EMULATOR_KEY = web.AppKey("ges_retention_emulator", _Emulator)


def create_app(store: Store, config: EmulatorConfig, *, clock: Clock = time.time) -> web.Application:
    """The emulator as an aiohttp application over `store`, reading `config` on every request.

    `clock` (epoch seconds) decides token expiry, `X-Sdk-Date` skew, IAM timestamps and the times of backups made
    through the API; rates and statistics use the monotonic clock.
    """
    config.validate()
    emulator = _Emulator(store, config, clock)
    for project_id in config.project_ids:
        store.add_project(project_id)
    # Fixtures sent to the control API can be large (100,000 backups are ~50 MB of JSON).
    app = web.Application(middlewares=[emulator.middleware], client_max_size=256 * 1024 * 1024)
    app[EMULATOR_KEY] = emulator
    _add_ges_routes(app.router, emulator)
    _add_control_routes(app.router, _Control(emulator))
    app.on_shutdown.append(emulator.on_shutdown)
    return app


def _add_ges_routes(router: web.UrlDispatcher, emulator: _Emulator) -> None:
    # The project-wide listing first: /graphs/backups is never read as the graph "backups".
    router.add_get("/v2/{project_id}/graphs", emulator.list_graphs, name="list_graphs", allow_head=False)
    router.add_get("/v2/{project_id}/graphs/backups", emulator.list_backups, name="list_backups", allow_head=False)
    graph_backups = "/v2/{project_id}/graphs/{graph_id}/backups"
    router.add_get(graph_backups, emulator.list_graph_backups, name="list_graph_backups", allow_head=False)
    router.add_post(graph_backups, emulator.create_backup, name="create_backup")
    router.add_delete(graph_backups + "/{backup_id}", emulator.delete_backup, name="delete_backup")
    router.add_post("/v3/auth/tokens", emulator.iam_token, name="iam_token")


def _add_control_routes(router: web.UrlDispatcher, control: _Control) -> None:
    prefix = _CONTROL_PREFIX
    router.add_get(prefix + "config", control.get_config, allow_head=False)
    router.add_put(prefix + "config", control.put_config)
    router.add_post(prefix + "seed", control.seed)
    router.add_post(prefix + "backups", control.add_backups)
    router.add_get(prefix + "backups", control.get_backups, allow_head=False)
    router.add_get(prefix + "graphs", control.get_graphs, allow_head=False)
    router.add_delete(prefix + "graphs/{graph_id}", control.delete_graph)
    router.add_get(prefix + "stats", control.get_stats, allow_head=False)
    router.add_post(prefix + "reset", control.reset)


@dataclass(slots=True)
class RunningEmulator:
    """An emulator listening in this process: point clients at `url`; assert on `store` and `stats`."""

    url: str
    store: Store
    config: EmulatorConfig
    stats: Stats
    app: web.Application

    @property
    def project_id(self) -> str:
        return self.config.default_project_id

    def reset(self, *, data: bool = False) -> None:
        """What POST /_emulator/reset does."""
        self.app[EMULATOR_KEY].reset(data=data)


@asynccontextmanager
async def running_emulator(
    store: Store | None = None,
    config: EmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock = time.time,
) -> AsyncIterator[RunningEmulator]:
    """Serve the emulator on host:port (0 = a free port) for the duration of the `async with`."""
    store = store if store is not None else Store()
    config = config if config is not None else EmulatorConfig()
    app = create_app(store, config, clock=clock)
    # A short shutdown: hung requests are released by on_shutdown, nothing else takes long.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        netloc = f"[{host}]:{bound_port}" if ":" in host else f"{host}:{bound_port}"
        yield RunningEmulator(
            url=f"http://{netloc}", store=store, config=config, stats=app[EMULATOR_KEY].stats, app=app
        )
    finally:
        await runner.cleanup()
