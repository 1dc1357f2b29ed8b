"""The daemon: schedules each policy, reloads the policy file once it settles, and wires its parts together.

It only schedules and triggers runs: `daemon_runs` starts them and keeps the runs in progress (`runner` does the
work), `http_api` serves the listener, `policy_watch` reads the file, `daemon_state` links the journal, `replicas`
keeps this daemon's leases on a PostgreSQL state, and `daemon_process` is the process (signals, exit code). A policy
runs only when asked (see `daemon_runs`); a reload that removes, pauses or dry-runs a running policy starts no further
deletion of it (`should_continue`). No exception stops the watcher or a run task: each is logged (`policy_rejected`,
`run_crashed`). The README's "The daemon" says it for operators.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ges_retention.change_held import ChangeHeldGauge
from ges_retention.daemon_runs import AlreadyRunning, DaemonRuns, Paused, StateNotReady, UnknownPolicy
from ges_retention.daemon_state import StateLink, StoreChangeDigests
from ges_retention.http_api import HttpApi
from ges_retention.metrics import Metrics
from ges_retention.policy import Policy, never_runs
from ges_retention.policy_loading import PolicyError, PolicyFile, Problem, parse_policy_text
from ges_retention.policy_watch import FileRead, PolicyWatcher
from ges_retention.replicas import LeaseHeld, Replicas
from ges_retention.run_records import ChangeDigests, MemoryChangeDigests
from ges_retention.runner import Runner
from ges_retention.schedule import build_trigger
from ges_retention.service import check_endpoints, policy_endpoint
from ges_retention.settings import Settings, SettingsError
from ges_retention.state import PgLeases, Store
from ges_retention.summary import Trigger
from ges_retention.task_crashes import log_task_crash

__all__ = ["AlreadyRunning", "Daemon", "LeaseHeld", "Paused", "StateNotReady", "UnknownPolicy"]

log = structlog.get_logger("ges_retention.daemon")

MISFIRE_GRACE_S = 3600
WATCH_INTERVAL_S = 2.0


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
        self.policy_file: PolicyFile | None = None
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.stopping = asyncio.Event()
        # Several replicas (PostgreSQL state): the policies this daemon may run are those whose lease it holds.
        self.replicas = Replicas(shared=shared_state)
        self.runs = DaemonRuns(
            runner,
            settings,
            loaded=lambda: self.policy_file,
            replicas=self.replicas,
            state=state,
            stopping=self.stopping,
            change_digests=change_digests
            or (StoreChangeDigests(state) if state is not None else MemoryChangeDigests()),
            clock=clock,
        )
        # The runs' bookkeeping, read by the listener (the same objects as `runs`'s).
        self.records, self.running, self.queued, self.tasks = (
            self.runs.records,
            self.runs.running,
            self.runs.queued,
            self.runs.tasks,
        )
        self.on_change = self.runs.on_change
        # `ges_retention_policy_change_held` from the journal (a restart or a one-shot `run` forgets nothing).
        self.change_held = ChangeHeldGauge(
            metrics,
            store=lambda: self.store,
            loaded=lambda: self.policy_file,
            endpoint_of=lambda p: policy_endpoint(p, settings),
            running=lambda: self.running,
            last_seen=self.records.last_for,
            spawn=self.runs.spawn,
        )
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

    # --- the state and the leases -----------------------------------------------------------------------------

    def attach_leases(self, leases: PgLeases) -> None:
        """Run only what this daemon's leases on a PostgreSQL state allow. Once per daemon: the same leases again
        change nothing. Before `start`, `start` takes the first lease round; after, `_state_connected` does."""
        self.replicas.attach(
            leases,
            policies=lambda: self.policy_file.names() if self.policy_file else [],
            on_acquired=self.runs.lease_acquired,
            metrics=self.metrics,
        )

    async def _state_connected(self, store: Store) -> None:
        """The one reaction to the journal coming up (at start, or later after retries). On PostgreSQL, from now on
        this daemon runs what its leases allow; connected late, the `run_on_change` checks that found no state are
        made again. Connected at start, `start()` goes on from here (leases first, then the first load)."""
        leases = getattr(store, "pg_leases", None)
        if isinstance(leases, PgLeases):
            self.attach_leases(leases)
        if self.policy_file is None or self.stopping.is_set():
            return
        await self.replicas.start()  # the first lease round, then the loop; once, however often this is called
        self.change_held.refresh()
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
        return self.runs.policy(name)

    def state_ready(self) -> bool:
        """False while the journal is not connected: the daemon then runs nothing."""
        return self.runs.state_ready()

    # --- triggers (`daemon_runs` starts the runs) ---------------------------------------------------------------

    def trigger(self, names: Iterable[str] | None, trigger: Trigger) -> str:
        """`DaemonRuns.trigger`: start a run of the named policies (every enabled one without names); its run id."""
        return self.runs.trigger(names, trigger)

    def run_all_now(self, trigger: Trigger) -> tuple[str | None, list[dict[str, str]]]:
        """`DaemonRuns.run_all_now`: SIGUSR1 and `POST /v1/runs`; (run id or None, skipped)."""
        return self.runs.run_all_now(trigger)

    def should_continue(self, name: str) -> bool:
        return self.runs.should_continue(name)

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
        self.change_held.refresh()
        for policy in new.policies:
            self.on_change.check(policy)

    def _reschedule(self, policy_file: PolicyFile) -> None:
        wanted = {p.name: p for p in policy_file.policies if p.schedule is not None and p.enabled}
        for job in self.scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()
        for name, policy in wanted.items():
            self.scheduler.add_job(
                self.runs.scheduled,
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
        self._watcher = asyncio.get_running_loop().create_task(self.watcher.run(), name="policy-watcher")
        self._watcher.add_done_callback(log_task_crash)
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
