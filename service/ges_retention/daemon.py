"""The daemon: schedules each policy, reloads the policy file once it settles, triggers runs, handles signals.

It only schedules and triggers runs (`runner` does the work, `http_api` serves the listener, `policy_watch` reads
the file). A policy runs only when asked: its `schedule` (`schedule.build_trigger`), SIGUSR1 or `POST /v1/runs`
(every enabled policy not running), `POST /v1/runs?policy=NAME`, or with `run_on_change: true` when a loaded
definition of it has another digest than its last such run (a change while it runs queues exactly one more run).
`enabled: false` pauses a policy for every trigger; a reload that removes, pauses or dry-runs a running policy starts
no further deletion of it (`should_continue`). A policy never runs twice at once. No exception stops the watcher or a
run task: each is logged (`policy_rejected`, `run_crashed`). SIGTERM/SIGINT: no new runs or deletions, in-flight
deletions finish within the grace period, `daemon_stopped`, exit 0. The README's "The daemon" says it for operators.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ges_retention.change_runs import ChangeRuns
from ges_retention.daemon_state import StateLink, StoreChangeDigests
from ges_retention.exit_codes import ExitCode
from ges_retention.http_api import HttpApi
from ges_retention.journal import JournalUnavailable
from ges_retention.metrics import Metrics
from ges_retention.policy import Policy, never_runs
from ges_retention.policy_loading import PolicyError, PolicyFile, Problem, parse_policy_text
from ges_retention.policy_watch import FileRead, PolicyWatcher
from ges_retention.replicas import LeaseHeld, Replicas, shared_state
from ges_retention.run_records import ChangeDigests, ChangeKey, MemoryChangeDigests, RunRecords
from ges_retention.runner import Runner
from ges_retention.schedule import build_trigger
from ges_retention.service import Service, check_endpoints, policy_endpoint
from ges_retention.settings import Settings, SettingsError
from ges_retention.state import PgLeases, RunLock, Store, Taken
from ges_retention.summary import Trigger, new_run_id

__all__ = ["AlreadyRunning", "Daemon", "LeaseHeld", "Paused", "StateNotReady", "UnknownPolicy", "run_daemon"]

log = structlog.get_logger("ges_retention.daemon")

MISFIRE_GRACE_S = 3600
WATCH_INTERVAL_S = 2.0


class AlreadyRunning(Exception):
    pass


class UnknownPolicy(Exception):
    pass


class Paused(Exception):
    pass


class StateNotReady(Exception):
    """The journal is not connected (PostgreSQL unreachable at start): nothing runs until it is."""


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
        change_digests: ChangeDigests | None = None,
        parse: Callable[..., PolicyFile] = parse_policy_text,
        settle_wait: Callable[[float], Awaitable[bool]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        state: StateLink | None = None,
        shared_state: bool = False,
    ) -> None:
        self.path = path
        self.settings = settings
        self.runner = runner
        self.metrics = metrics
        self.authenticated = authenticated
        # The journal (None: a daemon without one, e.g. the in-process test harness): runs journal through the
        # service's store; `run_on_change` digests live in it.
        self.state = state
        if state is not None:
            state.on_connected = self._state_connected
        self.on_change = ChangeRuns(
            self, change_digests or (StoreChangeDigests(state) if state is not None else MemoryChangeDigests())
        )
        self.records = RunRecords()
        self.policy_file: PolicyFile | None = None
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.running: set[str] = set()
        self.queued: set[str] = set()  # run_on_change policies changed while running: one more run each
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()
        self.http = HttpApi(self)
        self.watcher = PolicyWatcher(
            path,
            apply=self.apply,
            on_error=self._watch_failed,
            stopping=self.stopping,
            interval_s=watch_interval_s,
            settle_s=settings.reload_settle_s,
            wait=settle_wait,
        )
        self._parse = parse
        self._clock = clock
        self._watcher: asyncio.Task[None] | None = None
        # Several replicas (PostgreSQL state): the policies this daemon may run are those whose lease it holds.
        self.replicas = Replicas(shared=shared_state)

    def attach_leases(self, leases: PgLeases) -> None:
        """The state is connected and is PostgreSQL: run only what this daemon's leases allow. Before `start`, the
        first lease round comes with it; after (the state connected late), call `start_leases`."""
        self.replicas.attach(
            leases,
            policies=lambda: self.policy_file.names() if self.policy_file else [],
            on_acquired=self._lease_acquired,
            metrics=self.metrics,
        )

    async def start_leases(self) -> None:
        """The state connected after the daemon started: the first lease round now, then every TTL/3."""
        if self.replicas.manager is not None and not self.stopping.is_set():
            await self.replicas.start()

    def _lease_acquired(self, name: str, taken: Taken) -> None:
        """A lease was taken: resume a run its previous holder lost or handed over mid-run, else check
        `run_on_change` (the previous holder may not have run a change)."""
        policy = self.policy(name)
        if policy is None or self.stopping.is_set():
            return
        if taken.takeover and policy.enabled and name not in self.running:
            self._start_run([name], "takeover")
        else:
            self.on_change.check(policy)

    async def _state_connected(self, store: Store) -> None:
        """The journal is connected (at start, or later after retries). On PostgreSQL, from now on this daemon runs
        what its leases allow; connected late, the `run_on_change` checks that found no state are made again."""
        leases = getattr(store, "pg_leases", None)
        if isinstance(leases, PgLeases):
            self.attach_leases(leases)
        if self.policy_file is None or self.stopping.is_set():
            return  # at start: `start()` goes on from here
        if self.replicas.manager is not None:
            await self.replicas.start()
        for policy in self.policy_file.policies:
            self.on_change.check(policy)

    @property
    def store(self) -> Store | None:
        """The journal, once connected (None: not connected, or a daemon without one)."""
        return self.state.store if self.state is not None else None

    @property
    def http_url(self) -> str | None:
        return self.http.url

    def policy(self, name: str) -> Policy | None:
        """The loaded definition of a policy, or None if the file has no such policy."""
        if self.policy_file is None:
            return None
        return next((p for p in self.policy_file.policies if p.name == name), None)

    # --- loading ---------------------------------------------------------------------------------------------

    def parse(self, read: FileRead) -> PolicyFile:
        """Validate a read completely (and that every policy can reach an endpoint); raises if it cannot be used."""
        if read.content is None:
            raise PolicyError(str(self.path), [Problem((), read.error or "cannot read the file")])
        policy_file = self._parse(read.content, source=str(self.path))
        check_endpoints(policy_file.policies, self.settings)
        return policy_file

    def apply(self, read: FileRead) -> bool:
        """Use a settled read: swap it in if valid; else log why and keep the old policies. Never raises."""
        if read.content is None:
            log.warning("policy_file_unreadable", path=str(self.path), error=read.error)
            return False
        try:
            new = self.parse(read)
        except (PolicyError, SettingsError) as exc:
            self.metrics.reload_errors.inc()
            log.error("policy_rejected", path=str(self.path), error=str(exc))
            return False
        except Exception as exc:  # a bug in validation must not stop reloads: later edits still load
            self.metrics.reload_errors.inc()
            log.exception("policy_rejected", path=str(self.path), error=f"unexpected {type(exc).__name__}: {exc}")
            return False
        try:
            self._swap(new)
        except Exception as exc:
            log.exception("policy_rejected", path=str(self.path), error=f"unexpected {type(exc).__name__}: {exc}")
            return False
        return True

    def _swap(self, new: PolicyFile) -> None:
        if self.policy_file is not None:
            for removed in set(self.policy_file.names()) - set(new.names()):
                self.metrics.forget_policy(removed)
                self.records.forget_policy(removed)
        self.policy_file = new
        self._reschedule(new)
        self.metrics.policies_loaded.set(len(new.policies))
        log.info("policy_loaded", path=str(self.path), policies=new.names())
        for policy in new.policies:
            if never_runs(policy):
                log.warning(
                    "policy_never_runs",
                    policy=policy.name,
                    reason="enabled, with neither schedule nor run_on_change: it runs only when asked",
                )
        for policy in new.policies:
            self.on_change.check(policy)

    def _reschedule(self, policy_file: PolicyFile) -> None:
        wanted = {p.name: p for p in policy_file.policies if p.schedule is not None and p.enabled}
        for job in self.scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()
        for name, policy in wanted.items():
            self.scheduler.add_job(
                self._scheduled_run,
                trigger=build_trigger(policy, self._clock()),
                args=[name],
                id=name,
                name=f"policy {name}",
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=MISFIRE_GRACE_S,
            )
        self.refresh_next_runs()

    def next_run(self, name: str) -> datetime | None:
        job = self.scheduler.get_job(name)
        return getattr(job, "next_run_time", None) if job is not None else None

    def refresh_next_runs(self) -> None:
        """`ges_retention_next_run_timestamp_seconds`: one series per scheduled, enabled policy."""
        names = self.policy_file.names() if self.policy_file else []
        for name in names:
            when = self.next_run(name)
            if when is not None:
                self.metrics.next_run.labels(name).set(when.timestamp())
            else:
                with contextlib.suppress(KeyError):
                    self.metrics.next_run.remove(name)

    def _watch_failed(self, exc: Exception) -> None:
        self.metrics.reload_errors.inc()
        log.error(
            "policy_rejected",
            path=str(self.path),
            error=f"unexpected {type(exc).__name__}: {exc}",
            exc_info=(type(exc), exc, exc.__traceback__),
        )

    # --- runs ------------------------------------------------------------------------------------------------

    # The `ChangeHost` of `change_runs`: what the run_on_change decisions need of the daemon.

    def change_key(self, policy: Policy) -> ChangeKey:
        return (policy.name, policy_endpoint(policy, self.settings), policy.project_id)

    def stopping_now(self) -> bool:
        return self.stopping.is_set()

    def start_run_now(self, names: list[str], trigger: Trigger, run_id: str) -> None:
        self._start_run(names, trigger, run_id=run_id)

    def run_here(self, name: str) -> bool:
        """Several replicas: only the holder of a policy's lease runs it (else `run_skipped` `lease_held`)."""
        return not self.replicas.skipped(name, "file")

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def state_ready(self) -> bool:
        """False while the journal is not connected: the daemon then runs nothing."""
        return self.state is None or self.state.connected

    async def _scheduled_run(self, name: str) -> None:
        try:
            self.refresh_next_runs()
            policy = self.policy(name)
            if policy is None or not policy.enabled:
                log.info("run_skipped", policy=name, reason="paused", trigger="schedule")
                return
            if name in self.running:
                log.info("run_skipped", policy=name, reason="already_running", trigger="schedule")
                return
            if not self.state_ready():
                log.info("run_skipped", policy=name, reason="state_unavailable", trigger="schedule")
                return
            if self.replicas.skipped(name, "schedule"):
                return
            await self._start_run([name], "schedule")
        except Exception as exc:
            log.exception("run_crashed", policies=[name], error=repr(exc))

    def trigger(self, names: Iterable[str] | None, trigger: Trigger) -> str:
        """Start a run of the named policies (all enabled ones without names); its run id.

        Raises UnknownPolicy, Paused, AlreadyRunning (a policy named, or with no names: every enabled one),
        StateNotReady.
        """
        if not self.state_ready():
            raise StateNotReady(self.state.error if self.state is not None and self.state.error else "not connected")
        if self.policy_file is None:
            raise UnknownPolicy("no policies loaded")
        wanted = list(dict.fromkeys(names or [])) or [p.name for p in self.policy_file.policies if p.enabled]
        if not wanted:
            raise Paused("every policy")
        unknown = [n for n in wanted if self.policy(n) is None]
        if unknown:
            raise UnknownPolicy(", ".join(unknown))
        paused = [n for n in wanted if not self.policy(n).enabled]  # type: ignore[union-attr]
        if paused:
            raise Paused(", ".join(paused))
        for name in wanted:
            if (found := self.replicas.elsewhere(name)) is not None:
                raise LeaseHeld(name, *found)
        run_id = new_run_id()
        self._start_run(wanted, trigger, run_id=run_id)
        return run_id

    def run_all_now(self, trigger: Trigger) -> tuple[str | None, list[dict[str, str]]]:
        """SIGUSR1 and `POST /v1/runs`: run every enabled policy not already running whose lease this daemon holds
        (several replicas); (run id or None, skipped)."""
        if self.policy_file is None:
            return None, []
        skipped: list[dict[str, str]] = []
        free = []
        for policy in self.policy_file.policies:
            if not self.state_ready():
                skipped.append({"policy": policy.name, "reason": "state_unavailable"})
            elif not policy.enabled:
                skipped.append({"policy": policy.name, "reason": "paused"})
            elif policy.name in self.running:
                skipped.append({"policy": policy.name, "reason": "already_running"})
            elif (found := self.replicas.elsewhere(policy.name)) is not None:
                holder = {"holder": found[1]} if found[1] else {}
                skipped.append({"policy": policy.name, "reason": found[0], **holder})
            else:
                free.append(policy.name)
        for skip in skipped:
            log.info("run_skipped", **skip, trigger=trigger)
        if not free:
            return None, skipped
        try:
            return self.trigger(free, trigger), skipped
        except AlreadyRunning as exc:  # shutting down
            log.info("run_skipped", reason="shutting_down", error=str(exc), trigger=trigger)
            return None, skipped

    def _start_run(self, names: list[str], trigger: Trigger, *, run_id: str | None = None) -> asyncio.Task[None]:
        if self.stopping.is_set():
            raise AlreadyRunning("shutting down")
        busy = [n for n in names if n in self.running]
        if busy:
            raise AlreadyRunning(", ".join(busy))
        assert self.policy_file is not None and names  # (`select([])` would mean every policy, paused ones too)
        policy_file = self.policy_file  # a run finishes on the policies it started with
        selected = policy_file.select(names)
        run_id = run_id or new_run_id()
        self.running.update(names)
        self.records.start(run_id, trigger, names, self._clock())
        task = asyncio.get_running_loop().create_task(self._run(policy_file, selected, trigger, run_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def should_continue(self, name: str) -> bool:
        """The runner asks before each DELETE: a reload that removed, paused or dry-ran the policy stops it, and so
        does a lease no longer valid on the local clock (several replicas)."""
        current = self.policy(name)
        if current is None or not current.enabled or current.dry_run:
            return False
        return self.replicas.may_delete(name)

    async def _run(self, policy_file: PolicyFile, selected: list[Policy], trigger: Trigger, run_id: str) -> None:
        names = {p.name for p in selected}
        locks: list[RunLock] = []
        try:
            # Several replicas: the run lock is the lease, marked with this run (a takeover resumes it).
            locked, locks = await self.replicas.lock_runs([p.name for p in selected], run_id)
            selected = [p for p in selected if p.name in locked]
            summary = await self.runner.run(
                policy_file,
                selected,
                trigger=trigger,
                run_id=run_id,
                should_continue=self.should_continue,
                on_busy="skip",  # a policy another process is running is `run_skipped` (`running_elsewhere`)
                held_locks=locks,  # the leases' run locks: the journal fences its intent batches with them
            )
            self.records.finish(run_id, summary.to_json(), self._clock())
        except JournalUnavailable as exc:  # logged as `state_unavailable` by the runner
            self.records.crash(run_id, f"state_unavailable: {exc.error}", self._clock())
        except asyncio.CancelledError:
            self.records.crash(run_id, "cancelled at shutdown", self._clock())
            raise
        except Exception as exc:
            log.exception("run_crashed", run_id=run_id, policies=sorted(names), error=repr(exc))
            self.records.crash(run_id, f"{type(exc).__name__}: {exc}", self._clock())
        finally:
            self.runner.active.pop(run_id, None)
            await self.replicas.unlock_runs(locks)
            self.running.difference_update(names)
        for name in names & self.queued:
            self.queued.discard(name)
            policy = self.policy(name)
            try:
                if policy is not None:
                    self.on_change.check(policy)
            except Exception as exc:
                log.exception("run_crashed", policies=[name], error=repr(exc), trigger="file")

    # --- life cycle ------------------------------------------------------------------------------------------

    async def start(self) -> bool:
        """Read the file (settled; invalid raises: exit 2), bind the listener (busy: exit 2), then schedule and watch.

        Nothing runs before the listener is bound. False if a stop came while the first read was settling.
        """
        if self.state is not None:
            await self.state.start()  # misconfigured or locked by another daemon: raises (exit 2)
        read = await self.watcher.read_settled()
        if read is None:
            return False
        first = self.parse(read)
        self.watcher.seen = read
        await self.http.start()
        self.scheduler.start()
        if self.replicas.manager is not None:  # leases before the first load decides what runs on change
            self.policy_file = first
            await self.replicas.start()
        self._swap(first)
        self._watcher = asyncio.get_running_loop().create_task(self.watcher.run())
        log.info("daemon_started", path=str(self.path), policies=first.names())
        return True

    def request_stop(self) -> None:
        self.stopping.set()
        self.watcher.wake()

    async def stop(self) -> None:
        self.request_stop()
        if self._watcher is not None:
            await asyncio.gather(self._watcher, return_exceptions=True)
        with contextlib.suppress(Exception):
            self.scheduler.shutdown(wait=False)
        self.runner.request_stop()
        await self.replicas.begin_shutdown()  # idle leases to the other daemons now; running ones after their runs
        pending = list(self.tasks)
        if pending:
            _done, still = await asyncio.wait(pending, timeout=self.settings.shutdown_grace_s)
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        await self.replicas.close()
        await self.http.stop()
        if self.state is not None:
            await self.state.stop()


def run_daemon(path: Path, settings: Settings) -> int:
    """`ges-retention daemon`: exit 0 on a clean shutdown, 2 if the file is invalid at start or the port is busy."""
    return asyncio.run(_daemon_main(path, settings))


async def _daemon_main(path: Path, settings: Settings) -> int:
    metrics = Metrics()
    loop = asyncio.get_running_loop()
    service = Service(settings, metrics=metrics)  # the daemon opens the state itself: it may retry (`StateLink`)
    async with service as runner:
        daemon = Daemon(
            path,
            settings,
            runner,
            metrics=metrics,
            authenticated=service.readiness.authenticated,
            state=StateLink(service),
            shared_state=shared_state(settings),
        )
        stop = asyncio.Event()

        def on_stop(signum: int) -> None:
            log.info("shutdown_requested", signal=signal.Signals(signum).name)
            stop.set()
            daemon.request_stop()

        def on_usr1() -> None:
            try:
                daemon.run_all_now("signal")
            except Exception as exc:
                log.exception("run_crashed", error=repr(exc), trigger="signal")

        handlers: dict[int, Callable[..., Any]] = {
            signal.SIGTERM: lambda: on_stop(signal.SIGTERM),
            signal.SIGINT: lambda: on_stop(signal.SIGINT),
            signal.SIGHUP: daemon.watcher.request_reload,
            signal.SIGUSR1: on_usr1,
        }
        for signum, handler in handlers.items():
            loop.add_signal_handler(signum, handler)
        try:
            try:
                started = await daemon.start()
            except BaseException:  # invalid at start (exit 2): give back what it took (the state, its lock)
                await daemon.stop()
                raise
            if started:
                await stop.wait()
            await daemon.stop()
        finally:
            for signum in handlers:
                loop.remove_signal_handler(signum)
        log.info("daemon_stopped", path=str(path))
    return ExitCode.OK
