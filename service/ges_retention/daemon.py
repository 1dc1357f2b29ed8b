"""The daemon: schedules each policy, reloads the policy file when it changes, serves health and metrics.

It only schedules and triggers runs; `runner` does the work. Triggers:
- `schedule`: one APScheduler job per policy with a `schedule` (cron in the policy's timezone, jitter of up to 10%
  of the interval and at most 5 minutes, `max_instances=1`, misfires coalesced);
- `file`: each time the file is (re)loaded (at start, on a change of its content, on SIGHUP), every policy without a
  schedule runs once;
- `signal`: SIGUSR1 runs every policy now;
- `http`: `POST /v1/runs[?policy=NAME]`.
A policy never runs twice at once, whatever triggers it. An invalid file is rejected (`policy_rejected`) and the old
policies keep running. SIGTERM/SIGINT: no new runs or deletions start, in-flight deletions finish within the grace
period, `daemon_stopped` is logged, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import signal
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from ges_retention.exit_codes import ExitCode
from ges_retention.metrics import CONTENT_TYPE, Metrics
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyError, PolicyFile, load_policy_file
from ges_retention.runner import Runner
from ges_retention.service import Service, check_endpoints
from ges_retention.settings import Settings, SettingsError
from ges_retention.summary import Trigger, new_run_id

__all__ = ["Daemon", "build_trigger", "jitter_s", "run_daemon"]

log = structlog.get_logger("ges_retention.daemon")

MAX_JITTER_S = 300.0
MISFIRE_GRACE_S = 3600
WATCH_INTERVAL_S = 2.0


def build_trigger(policy: Policy, now: datetime | None = None) -> BaseTrigger:
    """The APScheduler trigger for a policy's crontab(5) schedule, in its timezone, with the contract's jitter."""
    jitter = jitter_s(_cron_trigger(policy, None), now or datetime.now(UTC))
    return _cron_trigger(policy, jitter or None)


def _cron_trigger(policy: Policy, jitter: int | None) -> BaseTrigger:
    assert policy.schedule is not None
    return policy.schedule.trigger(policy.tz, jitter)


def jitter_s(trigger: BaseTrigger, now: datetime) -> int:
    """Up to 10% of the interval between two fire times, at most 5 minutes (whole seconds: APScheduler's unit)."""
    first = trigger.get_next_fire_time(None, now)
    if first is None:
        return 0
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    if second is None:
        return 0
    interval = (second - first).total_seconds()
    return int(min(interval * 0.1, MAX_JITTER_S))


class AlreadyRunning(Exception):
    pass


class UnknownPolicy(Exception):
    pass


class Daemon:
    def __init__(
        self,
        path: Path,
        settings: Settings,
        runner: Runner,
        *,
        metrics: Metrics,
        authenticated: Callable[[], bool | None] = lambda: None,
        watch_interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        self.path = path
        self.settings = settings
        self.runner = runner
        self.metrics = metrics
        self._authenticated = authenticated
        self.watch_interval_s = watch_interval_s
        self.policy_file: PolicyFile | None = None
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.running: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()
        self._last_digest: str | None = None
        self._http: web.AppRunner | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._rejected_digest: str | None = None
        self.http_url: str | None = None

    # --- loading ---------------------------------------------------------------------------------------------

    def read_file(self) -> PolicyFile:
        """Parse and validate the whole file (and that every policy can reach an endpoint); raises if invalid."""
        policy_file = load_policy_file(self.path)
        check_endpoints(policy_file.policies, self.settings)
        return policy_file

    def load(self, *, force_on_demand: bool = False) -> bool:
        """Reload: the file is validated completely, then swapped in; False (and the old policies) if invalid."""
        try:
            new = self.read_file()
        except (PolicyError, SettingsError) as exc:
            self.metrics.reload_errors.inc()
            log.error("policy_rejected", path=str(self.path), error=str(exc))
            return False
        self._swap(new, run_on_demand=force_on_demand or new.digest != self._last_digest)
        return True

    def _swap(self, new: PolicyFile, *, run_on_demand: bool) -> None:
        if self.policy_file is not None:
            for removed in set(self.policy_file.names()) - set(new.names()):
                self.metrics.forget_policy(removed)
        self.policy_file = new
        self._last_digest = new.digest
        self._reschedule(new)
        self.metrics.policies_loaded.set(len(new.policies))
        log.info("policy_loaded", path=str(self.path), policies=new.names())
        if not run_on_demand:
            return
        for policy in new.policies:
            if policy.schedule is None:
                try:
                    self._start_run([policy.name], "file")
                except AlreadyRunning as exc:
                    log.warning("run_skipped", policy=policy.name, reason=f"already running: {exc}", trigger="file")

    def _reschedule(self, policy_file: PolicyFile) -> None:
        wanted = {p.name: p for p in policy_file.policies if p.schedule is not None}
        for job in self.scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()
        for name, policy in wanted.items():
            self.scheduler.add_job(
                self._scheduled_run,
                trigger=build_trigger(policy),
                args=[name],
                id=name,
                name=f"policy {name}",
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=MISFIRE_GRACE_S,
            )

    def file_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    async def watch(self) -> None:
        """Poll the file's content (works for inotify-less mounts and Kubernetes ConfigMap symlink swaps)."""
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.watch_interval_s)
            if self.stopping.is_set():
                return
            digest = self.file_digest()
            if digest is not None and digest != self._last_digest and digest != self._rejected_digest:
                if not self.load():
                    self._rejected_digest = digest
                else:
                    self._rejected_digest = None

    # --- runs ------------------------------------------------------------------------------------------------

    async def _scheduled_run(self, name: str) -> None:
        try:
            task = self._start_run([name], "schedule")
        except AlreadyRunning:
            log.warning("run_skipped", policy=name, reason="already running")
            return
        await task

    def trigger(self, names: Iterable[str] | None, trigger: Trigger) -> str:
        """Start a run now; its run id. Raises UnknownPolicy, AlreadyRunning."""
        if self.policy_file is None:
            raise UnknownPolicy("no policies loaded")
        wanted = list(names) if names else self.policy_file.names()
        unknown = [n for n in wanted if n not in self.policy_file.names()]
        if unknown:
            raise UnknownPolicy(", ".join(unknown))
        run_id = new_run_id()
        self._start_run(wanted, trigger, run_id=run_id)
        return run_id

    def run_all_now(self, trigger: Trigger) -> str | None:
        """Run every policy that is not already running (those are skipped, logged); the run id, if any started."""
        if self.policy_file is None:
            return None
        free = [name for name in self.policy_file.names() if name not in self.running]
        for name in sorted(set(self.policy_file.names()) - set(free)):
            log.warning("run_skipped", policy=name, reason="already running", trigger=trigger)
        if not free:
            return None
        try:
            return self.trigger(free, trigger)
        except AlreadyRunning as exc:  # shutting down
            log.warning("run_skipped", reason=str(exc), trigger=trigger)
            return None

    def _start_run(self, names: list[str], trigger: Trigger, *, run_id: str | None = None) -> asyncio.Task[None]:
        if self.stopping.is_set():
            raise AlreadyRunning("shutting down")
        busy = [n for n in names if n in self.running]
        if busy:
            raise AlreadyRunning(", ".join(busy))
        assert self.policy_file is not None
        policy_file = self.policy_file  # a run finishes on the policies it started with
        selected = policy_file.select(names)
        self.running.update(names)
        task = asyncio.get_running_loop().create_task(self._run(policy_file, selected, trigger, run_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _run(self, policy_file: PolicyFile, selected: list[Policy], trigger: Trigger, run_id: str | None) -> None:
        run_id = run_id or new_run_id()
        try:
            await self.runner.run(policy_file, selected, trigger=trigger, run_id=run_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("run_crashed", run_id=run_id, policies=[p.name for p in selected], error=repr(exc))
        finally:
            self.running.difference_update(p.name for p in selected)

    # --- HTTP ------------------------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/v1/runs", self._post_run)
        return app

    async def _healthz(self, _request: web.Request) -> web.Response:
        # The task count is there for soak tests and operators: it must not grow run after run.
        body = {"status": "ok", "tasks": len(asyncio.all_tasks()), "runs_in_progress": len(self.tasks)}
        return web.json_response(body)

    async def _readyz(self, _request: web.Request) -> web.Response:
        problems = []
        if self.policy_file is None:
            problems.append("no policies loaded")
        if self._authenticated() is False:
            problems.append("the last API call was not authenticated")
        if problems:
            return web.json_response({"status": "not ready", "problems": problems}, status=503)
        return web.json_response(
            {"status": "ready", "policies": len(self.policy_file.policies) if self.policy_file else 0}
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def _post_run(self, request: web.Request) -> web.Response:
        token = self.settings.http_token.get_secret_value() if self.settings.http_token else None
        if token is None and not _is_loopback(self.settings.listener()):
            return web.json_response(
                {"error": "the run trigger is refused: the listener is beyond loopback and no HTTP token is set"},
                status=403,
            )
        if token is not None:
            import hmac

            given = request.headers.get("Authorization", "")
            if given[:7].lower() != "bearer " or not hmac.compare_digest(given[7:].encode(), token.encode()):
                return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        names = request.query.getall("policy", [])
        try:
            run_id = self.trigger(names or None, "http")
        except UnknownPolicy as exc:
            return web.json_response({"error": f"unknown policy: {exc}"}, status=404)
        except AlreadyRunning as exc:
            return web.json_response({"error": f"already running: {exc}"}, status=409)
        return web.json_response({"run_id": run_id}, status=202)

    async def start_http(self) -> None:
        listener = self.settings.listener()
        if listener is None:
            return
        host, port = listener
        self._http = web.AppRunner(self.build_app(), access_log=None)
        await self._http.setup()
        site = web.TCPSite(self._http, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        bound_port = sockets[0].getsockname()[1] if sockets else port
        self.http_url = f"http://{host}:{bound_port}"
        log.info("http_listening", url=self.http_url)

    # --- life cycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the file (an invalid one raises: exit 2 at start), schedule, listen, watch."""
        first = self.read_file()
        self.scheduler.start()
        self._swap(first, run_on_demand=True)
        await self.start_http()
        self._watcher = asyncio.get_running_loop().create_task(self.watch())
        log.info("daemon_started", path=str(self.path), policies=self.policy_file.names() if self.policy_file else [])

    async def stop(self) -> None:
        self.stopping.set()
        if self._watcher is not None:
            await self._watcher
        with contextlib.suppress(Exception):
            self.scheduler.shutdown(wait=False)
        self.runner.request_stop()
        pending = list(self.tasks)
        if pending:
            _done, still = await asyncio.wait(pending, timeout=self.settings.shutdown_grace_s)
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        if self._http is not None:
            await self._http.cleanup()


def _is_loopback(listener: tuple[str, int] | None) -> bool:
    if listener is None:
        return True
    host = listener[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_daemon(path: Path, settings: Settings) -> int:
    """`ges-retention daemon`: exit 0 on a clean shutdown, 2 if the file is invalid at start."""
    check_endpoints(load_policy_file(path).policies, settings)  # before anything starts: an invalid file is exit 2
    return asyncio.run(_daemon_main(path, settings))


async def _daemon_main(path: Path, settings: Settings) -> int:
    metrics = Metrics()
    loop = asyncio.get_running_loop()
    service = Service(settings, metrics=metrics)
    async with service as runner:
        daemon = Daemon(path, settings, runner, metrics=metrics, authenticated=service.readiness.authenticated)
        stop = asyncio.Event()

        def on_stop(signum: int) -> None:
            log.info("shutdown_requested", signal=signal.Signals(signum).name)
            stop.set()

        def on_hup() -> None:
            daemon.load(force_on_demand=True)

        def on_usr1() -> None:
            daemon.run_all_now("signal")

        handlers: dict[int, Callable[..., Any]] = {
            signal.SIGTERM: lambda: on_stop(signal.SIGTERM),
            signal.SIGINT: lambda: on_stop(signal.SIGINT),
            signal.SIGHUP: on_hup,
            signal.SIGUSR1: on_usr1,
        }
        for signum, handler in handlers.items():
            loop.add_signal_handler(signum, handler)
        try:
            await daemon.start()
            await stop.wait()
            await daemon.stop()
        finally:
            for signum in handlers:
                loop.remove_signal_handler(signum)
        log.info("daemon_stopped", path=str(path))
    return ExitCode.OK
