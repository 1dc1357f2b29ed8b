"""The emulated GES v2 + IAM endpoint: an aiohttp application, and a way to run it in-process on a free port.

Routes (ges-api.md, to the letter):

    GET    /v2/{project_id}/graphs                                  list_graphs         {"graph_count", "graphs"}
    GET    /v2/{project_id}/graphs/backups                          list_backups        {"backup_count", "backup_list"}
    GET    /v2/{project_id}/graphs/{graph_id}/backups               list_graph_backups  {"backup_count", "backup_list"}
    POST   /v2/{project_id}/graphs/{graph_id}/backups               create_backup       {"job_id"}
    DELETE /v2/{project_id}/graphs/{graph_id}/backups/{backup_id}   delete_backup       {}
    DELETE /v2/{project_id}/graphs/{graph_id}?keep_backup=          delete_graph        {"job_id"}
    GET    /v2/{project_id}/graphs/quotas                           list_quotas         {"quotas"}
    POST   /v3/auth/tokens                                          iam_token           201, X-Subject-Token
    POST   /v3.0/OS-CREDENTIAL/securitytokens                       iam_securitytokens  201, {"credential"}

The handlers are in `graphs.py` (graphs, quotas), `backups.py` (backups) and `iam.py`; this module is what every
request goes through (request id, error bodies, statistics, the gates) and the application around them.

`/v2/{p}/graphs/backups` is the project-wide listing, never the backups of a graph whose id is "backups" (that one is
`/v2/{p}/graphs/backups/backups`). Listings are newest first (ties by id), stable under paging; `offset` defaults to 0
and `limit` to 10, `limit` must be 1..1000 and `offset` >= 0.

A GES request goes through, in this order: path checks (a raw segment that is `.`/`..`, percent-encoded or holds
anything but letters, digits and `-_.~` is refused with 400 GES.0001, so an id can never reach another resource),
latency, authentication (`auth.py`), the per-project rate limit (429 APIGW.0308), the hold gate, fault injection,
and the operation (the gates are in `gates.py`). An IAM request (`iam.py`) gets latency, holds and faults only.

Where the cloud is undocumented (the emulator's choices): deleting a backup that does not exist (whatever the graph
id, or under a graph it does not belong to) is 400 GES.7024; a `backing_up` one is 400 GES.7002; listing a graph of
which neither the graph nor a backup is known is 400 GES.7000; a backup whose graph was deleted is still listed and
deletable. Injected faults answer 500 `GES.0500` and 503 `GES.0503` (codes made up by the emulator, messages saying
so), close the connection before the operation happens (`drop`), answer only after `hang_s` (`hang`), or, for a
listing, answer the first page whatever the offset (`repeat`).

The control API under `/_emulator/` (JSON, no auth: a test tool on loopback) is in `control.py`; seeded data comes
from `seeding.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import parse_qsl

from aiohttp import web

from ges_retention.emulator.auth import TokenRegistry, authenticate
from ges_retention.emulator.backups import BackupRoutes
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
    AccessKey,
    EmulatorConfig,
    FaultRates,
    IamUser,
)
from ges_retention.emulator.control import CONTROL_PREFIX, Control, add_control_routes
from ges_retention.emulator.errors import ApiError, bad_parameter, unknown_api
from ges_retention.emulator.gates import Dropped, Gates, Holds
from ges_retention.emulator.graphs import GraphRoutes
from ges_retention.emulator.iam import Iam
from ges_retention.emulator.params import REQUEST_ID, check_segments, checked_path
from ges_retention.emulator.stats import Stats, client_of
from ges_retention.emulator.store import Store
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
    "Emulator",
    "EmulatorConfig",
    "FaultRates",
    "Holds",
    "IamUser",
    "RunningEmulator",
    "create_app",
    "running_emulator",
]

log = logging.getLogger(__name__)

Clock: TypeAlias = Callable[[], float]
Sleep: TypeAlias = Callable[[float], Awaitable[None]]
Handler: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]

_JSON = "application/json"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(text=_dumps(body), status=status, content_type=_JSON, headers=headers)


class Emulator:
    """The state behind one application: data, knobs, statistics, issued tokens, random stream."""

    def __init__(self, store: Store, config: EmulatorConfig, clock: Clock, sleep: Sleep = asyncio.sleep) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.stats = Stats()
        self.tokens = TokenRegistry()
        self.rng = random.Random(config.seed)
        self.gates = Gates(config, self.rng, self.stats, sleep=sleep)
        self.iam = Iam(config, self.tokens, clock)
        self.graphs = GraphRoutes(store, config, self.rng, self.gates)
        self.backups = BackupRoutes(store, config, clock=clock, rng=self.rng, stats=self.stats, gates=self.gates)

    # -- the middleware: request ids, error bodies, statistics, and the gates before each operation ----------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = os.urandom(16).hex()
        request[REQUEST_ID] = request_id
        if request.path.startswith(CONTROL_PREFIX):
            response = await self._answer(request, handler, request_id, None)
        else:
            operation = request.match_info.route.name or "unknown"
            self.stats.arrived(time.monotonic())
            status = "cancelled"  # unless an answer or a drop says otherwise
            try:
                response = await self._answer(request, handler, request_id, operation)
                status = str(response.status)
            except Dropped:
                status = "drop"
                if request.transport is not None:
                    request.transport.close()
                # aiohttp finds the transport closed when it writes this, and lets it go quietly.
                response = web.Response(status=500)
            finally:
                self.stats.finished(operation, status, client_of(request.headers.get("User-Agent")))
        response.headers["X-Request-Id"] = request_id
        return response

    async def _answer(
        self, request: web.Request, handler: Handler, request_id: str, operation: str | None
    ) -> web.StreamResponse:
        try:
            if operation == "unknown":
                # A trick that the router normalized away or could not match is still a bad parameter, not a 404.
                check_segments(request)
            elif operation is not None:
                await self._gates(request, operation)
            return await handler(request)
        except ApiError as error:
            return _json(error.to_json(request_id), error.status)
        except web.HTTPException as exc:
            return _http_exception(exc, request_id)
        except Dropped:
            raise
        except Exception:
            # A bug of the emulator still answers like the cloud would, without a traceback on the wire.
            log.exception("emulator: unexpected error on %s %s", request.method, request.path)
            return _json({"error_code": "GES.0500", "error_msg": "Internal server error."}, 500)

    async def _gates(self, request: web.Request, operation: str) -> None:
        project_id = checked_path(request) if operation in GES_OPERATIONS else None
        gates = self.gates
        await gates.latency()
        if project_id is not None:
            if self.backups.pending:
                self.backups.finish_due_backups()
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
            gates.rate_limit(project_id)
        await gates.holds.passage(operation)
        await gates.fault(operation)

    def reset(self, *, data: bool) -> None:
        self.stats.reset()
        self.gates.reset()
        if data:
            self.store.clear()
            self.tokens.clear()
            self.backups.pending.clear()

    async def on_shutdown(self, app: web.Application) -> None:
        await self.gates.stop()


def _http_exception(exc: web.HTTPException, request_id: str) -> web.Response:
    if exc.status in (404, 405):
        # The gateway routes on method and path together: either wrong, the API does not exist.
        error = unknown_api()
    elif exc.status == 413:
        error = bad_parameter("The request body is too large.")
    else:
        error = ApiError(exc.status, "GES.0001", f"Incorrect parameter. {exc.reason}")
    return _json(error.to_json(request_id), error.status)


EMULATOR_KEY = web.AppKey("ges_retention_emulator", Emulator)


def create_app(
    store: Store, config: EmulatorConfig, *, clock: Clock = time.time, sleep: Sleep = asyncio.sleep
) -> web.Application:
    """The emulator as an aiohttp application over `store`, reading `config` on every request.

    `clock` (epoch seconds) decides token expiry, `X-Sdk-Date` skew, IAM timestamps and the times of backups made
    through the API; rates and statistics use the monotonic clock. `sleep` is how latency and hangs wait (a seam
    for tests).
    """
    config.validate()
    emulator = Emulator(store, config, clock, sleep)
    for project_id in config.project_ids:
        store.add_project(project_id)
    # Fixtures sent to the control API can be large (100,000 backups are ~50 MB of JSON).
    app = web.Application(middlewares=[emulator.middleware], client_max_size=256 * 1024 * 1024)
    app[EMULATOR_KEY] = emulator
    emulator.graphs.add_routes(app.router)
    emulator.backups.add_routes(app.router)
    _add_iam_routes(app.router, emulator.iam)
    add_control_routes(app.router, Control(emulator))
    app.on_shutdown.append(emulator.on_shutdown)
    return app


def _add_iam_routes(router: web.UrlDispatcher, iam: Iam) -> None:
    router.add_post("/v3/auth/tokens", iam.token, name="iam_token")
    router.add_post("/v3.0/OS-CREDENTIAL/securitytokens", iam.security_tokens, name="iam_securitytokens")


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

    def expire_security_tokens(self) -> int:
        """Every agency credential issued so far expires now (what POST /_emulator/security_tokens/expire does)."""
        emulator = self.app[EMULATOR_KEY]
        return emulator.tokens.expire_temporary(emulator.clock())

    @property
    def holds(self) -> Holds:
        """The hold gate, in process: `await emulator.holds.hold("delete_backup")`, `wait_until_waiting(op, n)`,
        `release(op, n)`, `unhold(op)` (the control API's `/_emulator/holds` does the same over HTTP)."""
        return self.app[EMULATOR_KEY].gates.holds


@asynccontextmanager
async def running_emulator(
    store: Store | None = None,
    config: EmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[RunningEmulator]:
    """Serve the emulator on host:port (0 = a free port) for the duration of the `async with`."""
    store = store if store is not None else Store()
    config = config if config is not None else EmulatorConfig()
    app = create_app(store, config, clock=clock, sleep=sleep)
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
