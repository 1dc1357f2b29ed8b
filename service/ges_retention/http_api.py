"""The daemon's local listener: health, readiness, metrics, and `/v1/` (runs, policies; holds and backups in
`http_journal.py`).

Every `/v1/` endpoint, read or write, follows the same token rules: 401 when `GES_RETENTION_HTTP_TOKEN` is set and
`Authorization: Bearer <token>` is missing or wrong (the scheme is case-insensitive, RFC 7235); 403 when the listener
is bound beyond loopback and no token is set. Every 409 body has `error` and `reason`.
A bug in a handler is logged (`http_request_failed`) and answered 500; the listener goes on serving.
The listener is bound before anything runs: a busy port is a `SettingsError` (exit 2), not a crash after a run began.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from ges_retention.daemon_runs import AlreadyRunning, LeaseHeld, Paused, StateNotReady, UnknownPolicy
from ges_retention.http_ack import AckRoute
from ges_retention.http_journal import JournalRoutes, count_holds, journal_policy_fields
from ges_retention.http_runs import journal_run_view, runs_view
from ges_retention.metrics import CONTENT_TYPE
from ges_retention.settings import SettingsError
from ges_retention.state import StateError, Store

if TYPE_CHECKING:
    from ges_retention.daemon import Daemon

__all__ = ["HttpApi", "is_loopback"]

log = structlog.get_logger("ges_retention.http_api")

MAX_RUNS_LISTED = 1000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpApi:
    """The listener of one daemon; reads the daemon's state and triggers its runs, never the runner directly."""

    __slots__ = ("_app_runner", "daemon", "url")

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.url: str | None = None
        self._app_runner: web.AppRunner | None = None

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[_logged_crashes])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/v1/runs", self._post_run)
        app.router.add_get("/v1/runs", self._list_runs)
        app.router.add_get("/v1/runs/{run_id}", self._get_run)
        app.router.add_get("/v1/policies", self._get_policies)
        JournalRoutes(self._store, self._refused).add_to(app)
        AckRoute(self.daemon, self._store, self._refused).add_to(app)
        return app

    def _store(self) -> Store | None:
        """The daemon's state store; None while it is not connected."""
        return self.daemon.store

    async def start(self) -> None:
        """Bind the listener (when enabled); `SettingsError` with one line when the address cannot be bound."""
        listener = self.daemon.settings.listener()
        if listener is None:
            return
        host, port = listener
        runner = web.AppRunner(self.build_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            reason = exc.strerror or str(exc)
            raise SettingsError(f"cannot listen on {host}:{port} (GES_RETENTION_HTTP): {reason}") from None
        self._app_runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        bound_port = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound_port}"
        log.info("http_listening", url=self.url)

    async def stop(self) -> None:
        if self._app_runner is not None:
            await self._app_runner.cleanup()
            self._app_runner = None

    # --- health ----------------------------------------------------------------------------------------------

    async def _healthz(self, _request: web.Request) -> web.Response:
        # The task count is there for soak tests and operators: it must not grow run after run.
        body = {"status": "ok", "tasks": len(asyncio.all_tasks()), "runs_in_progress": len(self.daemon.tasks)}
        return web.json_response(body)

    async def _readyz(self, _request: web.Request) -> web.Response:
        daemon = self.daemon
        problems = []
        if daemon.policy_file is None:
            problems.append("no policies loaded")
        if daemon.authenticated() is False:
            problems.append("the last API call was not authenticated")
        # The state said once: not connected (the leases then cannot be known either), or connected but its
        # leases cannot be kept now (several replicas). Either way nothing runs until it answers.
        if not daemon.state_ready():
            error = daemon.state.error if daemon.state is not None else None
            problems.append(f"the state is unavailable: {error or 'not connected'}; nothing runs until it connects")
        elif daemon.replicas.unavailable():
            problems.append("the state (PostgreSQL) is unreachable: no lease can be kept, nothing runs until it is")
        if problems:
            return web.json_response({"status": "not ready", "problems": problems}, status=503)
        return web.json_response(
            {"status": "ready", "policies": len(daemon.policy_file.policies) if daemon.policy_file else 0}
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        self.daemon.refresh_next_runs()
        await count_holds(self._store(), self.daemon.metrics.holds)
        # The change gate's holds as the journal has them now: a hold or an ack made by another process (a one-shot
        # `run`, `ges-retention ack`, another replica) shows at the next scrape.
        await self.daemon.change_held.update()
        return web.Response(body=self.daemon.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    # --- /v1/ ------------------------------------------------------------------------------------------------

    def _refused(self, request: web.Request) -> web.Response | None:
        """The token rules of every `/v1/` endpoint; None when the request may go on."""
        settings = self.daemon.settings
        token = settings.http_token.get_secret_value() if settings.http_token else None
        if token is None:
            if is_loopback(settings.listener()):
                return None
            return web.json_response(
                {"error": "refused: the listener is beyond loopback and no GES_RETENTION_HTTP_TOKEN is set"},
                status=403,
            )
        # Exactly `Bearer <token>` (one space; the scheme in any case): anything looser is refused.
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        return None

    async def _post_run(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        if not self.daemon.state_ready():
            return _state_unavailable(self.daemon)
        names = request.query.getall("policy", [])
        await self.daemon.replicas.refresh()  # `skipped` and a 409 name the current holders
        if not names:  # like SIGUSR1: every enabled policy that is not already running
            run_id, skipped = self.daemon.run_all_now("http")
            if run_id is None:
                reasons = {s["reason"] for s in skipped}
                order = ("already_running", "lease_held", "state_unavailable", "paused")
                reason = next((r for r in order if r in reasons), "paused")
                error = "no policy to run: " + ", ".join(f"{s['policy']} ({s['reason']})" for s in skipped)
                return _conflict(error if skipped else "no policy to run", reason)
            return web.json_response({"run_id": run_id, "skipped": skipped}, status=202)
        try:
            run_id = self.daemon.trigger(names, "http")
        except UnknownPolicy as exc:
            return web.json_response({"error": f"unknown policy: {exc}"}, status=404)
        except Paused as exc:
            return _conflict(f"policy {exc} is paused", "paused")
        except AlreadyRunning as exc:
            return _conflict(f"policy {exc} is already running", "already_running")
        except StateNotReady:
            return _state_unavailable(self.daemon)
        except LeaseHeld as exc:
            if exc.reason != "lease_held":
                unavailable = {"error": f"policy {exc.policy}: the state is not connected", "reason": exc.reason}
                return web.json_response(unavailable, status=503)
            body = {"error": f"policy {exc.policy} is run by {exc.holder or 'another daemon'}", "reason": "lease_held"}
            return web.json_response({**body, "holder": exc.holder}, status=409)
        return web.json_response({"run_id": run_id}, status=202)

    async def _get_run(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        run_id = request.match_info["run_id"]
        view = await journal_run_view(self.daemon, run_id)
        if view is None:
            return web.json_response({"error": f"unknown run {run_id[:64]!r} (only recent runs are kept)"}, status=404)
        return web.json_response(view)

    async def _list_runs(self, request: web.Request) -> web.Response:
        """`GET /v1/runs?limit=N` (default 20, at most 1000): runs newest first, from the journal, with the runs in
        progress (live counts) first."""
        if (refused := self._refused(request)) is not None:
            return refused
        text = request.query.get("limit", "20")
        if not text.isdigit() or not 1 <= int(text) <= MAX_RUNS_LISTED:
            return web.json_response({"error": f"limit must be a whole number from 1 to {MAX_RUNS_LISTED}"}, status=400)
        return web.json_response({"runs": await runs_view(self.daemon, int(text))})

    async def _get_policies(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        from ges_retention.service import policy_endpoint

        await self.daemon.replicas.refresh()  # the lease holders as the state has them now
        document: dict[str, Any] = {}
        policy_file, settings = self.daemon.policy_file, self.daemon.settings
        before = self.daemon.change_held.snapshot(policy_file) if policy_file is not None else {}
        try:
            journal = await journal_policy_fields(self._store(), policy_file, lambda p: policy_endpoint(p, settings))
        except StateError as exc:  # the policies are still worth showing: the journal's fields are null then
            log.error("state_unavailable", error=str(exc), operation="policies")
            journal, document["state_error"] = {}, str(exc)
        if journal and policy_file is not None:  # what the journal says now (an ack by the CLI, say) moves the gauge
            self.daemon.change_held.set({n: f["change_held"] for n, f in journal.items()}, policy_file, before)
        return web.json_response({"policies": policies_view(self.daemon, journal), **document})


@web.middleware
async def _logged_crashes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A bug in a handler is `http_request_failed` (error, with the traceback) and a 500 that names no detail; the
    listener and the daemon go on serving."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise  # aiohttp's own answers (404 of an unknown route, 405)
    except Exception as exc:
        log.exception(
            "http_request_failed", method=request.method, path=request.path, error=f"{type(exc).__name__}: {exc}"
        )
        return web.json_response({"error": "internal error (logged by the daemon)"}, status=500)


def _state_unavailable(daemon: Daemon) -> web.Response:
    """503 while the journal is not connected: the daemon runs nothing until it is."""
    error = daemon.state.error if daemon.state is not None and daemon.state.error else "not connected"
    body = {"error": f"the state is unavailable: {error}", "reason": "state_unavailable"}
    return web.json_response(body, status=503, headers={"Retry-After": "5"})


def _conflict(error: str, reason: str) -> web.Response:
    return web.json_response({"error": error, "reason": reason}, status=409)


def policies_view(daemon: Daemon, journal: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """`GET /v1/policies`: per policy, what it is, when it runs next, whether it runs, and its last run.

    `journal` (`http_journal.journal_policy_fields`) gives the last finished run recorded in the state (it survives
    restarts; its outcome is this policy's when this process ran it) and the pending deletions; without it, the last
    run this process saw. `change_held`: the change gate's `{"extra", "budget", "digest"}` while the policy is held
    (`change_held.py`: its last run, whoever ran it, was held, and no ack or return to its baseline released it since;
    without a journal, while this process's last run of it was held), else null; `lease_holder` is the holder of the
    policy's lease on a PostgreSQL state (several replicas), else null."""
    daemon.refresh_next_runs()
    views = []
    for policy in daemon.policy_file.policies if daemon.policy_file else ():
        when = daemon.next_run(policy.name)
        recorded = (journal or {}).get(policy.name, {})
        views.append(
            {
                "name": policy.name,
                "enabled": policy.enabled,
                "schedule": str(policy.schedule) if policy.schedule else None,
                "run_on_change": policy.run_on_change,
                "dry_run": policy.dry_run,
                "next_run": when.astimezone(UTC).isoformat().replace("+00:00", "Z") if when else None,
                "running": policy.name in daemon.running,
                "queued": policy.name in daemon.queued,
                "last_run": _last_run(daemon.records.last_for(policy.name), recorded.get("last_run")),
                "pending_deletions": recorded.get("pending_deletions"),
                "change_held": recorded["change_held"]
                if "change_held" in recorded
                else daemon.records.change_held_for(policy.name),
                "lease_holder": daemon.replicas.holder_of(policy.name),  # several replicas: its lease's holder
            }
        )
    return views


def _last_run(seen: dict[str, Any] | None, recorded: dict[str, Any] | None) -> dict[str, Any] | None:
    """The journal's last run of a policy, with this policy's own outcome when this process ran it (the journal
    keeps a run's outcome over all its policies); else the last run this process saw."""
    if recorded is None:
        return seen
    if seen is not None and seen.get("run_id") == recorded["run_id"]:
        return {**recorded, "outcome": seen["outcome"]}
    return recorded


def is_loopback(listener: tuple[str, int] | None) -> bool:
    if listener is None:
        return True
    host = listener[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
