"""One retention run: list each project once, plan every selected policy, apply the guards, delete, summarise.

This is the only place where plans meet the network. The guards, in the order they act:
1. a project whose listing failed or is incomplete deletes nothing (`listing_failed`);
2. a backup selected by two policies of the file is kept (`plan_file` resolves overlap);
3. a policy whose plan exceeds `max_deletes` deletes nothing (`safety_stop`);
4. dry-run (the file's or the command's) deletes nothing;
5. no deletion starts after the run deadline or once a stop was requested (SIGTERM): what is left is reported.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from ges_retention.backup import Backup, InvalidBackupRecord
from ges_retention.exit_codes import ExitCode, combine
from ges_retention.ges.auth import AkSkAuth, AuthProvider, PasswordAuth, TokenAuth
from ges_retention.ges.client import ClientConfig, GesClient, open_session
from ges_retention.ges.errors import GesError
from ges_retention.metrics import Metrics
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyFile
from ges_retention.report import PolicyReport
from ges_retention.retention import Decision, Plan, plan_file
from ges_retention.settings import AkSkCredentials, Credentials, PasswordCredentials, Settings, SettingsError

__all__ = [
    "PolicyResult",
    "RunSummary",
    "Runner",
    "Service",
    "client_config",
    "live_plan",
    "policy_endpoint",
    "run_command",
]

Outcome = Literal["ok", "partial", "failed", "safety_stop", "dry_run", "interrupted"]
# What a policy's run counts: `planned` = deleted + already_deleted + failed + not_started (when not held back).
COUNTS = ("planned", "deleted", "already_deleted", "failed", "not_started")
Trigger = Literal["cli", "schedule", "file", "signal", "http"]

log = structlog.get_logger("ges_retention.runner")


def policy_endpoint(policy: Policy, settings: Settings) -> str:
    """`GES_RETENTION_ENDPOINT` overrides the policy's `endpoint` and `region`."""
    endpoint = settings.endpoint or policy.api_endpoint()
    if endpoint is None:
        raise SettingsError(
            f"policy {policy.name!r} has neither 'endpoint' nor 'region', and GES_RETENTION_ENDPOINT is not set"
        )
    return endpoint


def client_config(settings: Settings) -> ClientConfig:
    return ClientConfig(
        concurrency=settings.concurrency,
        rate_limit_per_s=settings.rate_limit,
        page_size=settings.page_size,
        max_attempts=settings.max_attempts,
        backoff_max_s=settings.backoff_max_s,
        request_timeout_s=settings.request_timeout_s,
        ca_bundle=settings.ca_bundle,
    )


@dataclass(slots=True)
class PolicyResult:
    name: str
    project_id: str
    endpoint: str
    plan: Plan | None = None
    listing_error: str | None = None
    dry_run: bool = False
    planned: int = 0
    deleted: int = 0
    already_deleted: int = 0
    failed: int = 0
    not_started: int = 0
    outcome: Outcome = "ok"

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in COUNTS}

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "project_id": self.project_id,
            **self.counts(),
            "safety_stop": bool(self.plan and self.plan.safety_stop),
            "listing_error": self.listing_error,
            "outcome": self.outcome,
        }


@dataclass(slots=True)
class RunSummary:
    run_id: str
    trigger: Trigger
    dry_run: bool
    policies: list[PolicyResult] = field(default_factory=list)
    listed: int = 0
    skipped_projects: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    interrupted: bool = False
    outcome: Outcome = "ok"

    def total(self, name: str) -> int:
        return sum(int(getattr(p, name)) for p in self.policies)

    def counts(self) -> dict[str, int]:
        """The run's totals, as `run_finished` and the JSON summary give them."""
        return {"listed": self.listed, "kept": self.kept, **{name: self.total(name) for name in COUNTS}}

    @property
    def kept(self) -> int:
        return sum(len(p.plan.decisions) - p.planned for p in self.policies if p.plan is not None)

    def exit_code(self, interrupted_code: ExitCode = ExitCode.INTERRUPTED_SIGTERM) -> ExitCode:
        codes = [ExitCode.OK]
        if self.interrupted:
            codes.append(interrupted_code)
        if self.skipped_projects or self.total("failed") or self.total("not_started"):
            codes.append(ExitCode.FAILED)
        if any(p.outcome == "safety_stop" for p in self.policies):
            codes.append(ExitCode.SAFETY_STOP)
        return combine(codes)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "outcome": self.outcome,
            "dry_run": self.dry_run,
            **self.counts(),
            "skipped_projects": self.skipped_projects,
            "duration_s": round(self.duration_s, 3),
            "policies": [p.to_json() for p in self.policies],
        }

    def render_text(self) -> str:
        lines = [
            f"run {self.run_id}: {self.outcome}"
            + (" (dry run)" if self.dry_run else "")
            + f" in {self.duration_s:.1f}s: listed {self.listed}, kept {self.kept}, planned {self.total('planned')}, "
            f"deleted {self.total('deleted')}, already deleted {self.total('already_deleted')}, "
            f"failed {self.total('failed')}, not started {self.total('not_started')}"
        ]
        for p in self.policies:
            detail = f"  {p.name}: {p.outcome}: planned {p.planned}, deleted {p.deleted}"
            detail += f", already deleted {p.already_deleted}, failed {p.failed}"
            if p.not_started:
                detail += f", not started {p.not_started}"
            if p.listing_error:
                detail += f" (listing failed: {p.listing_error})"
            if p.plan is not None and p.plan.safety_stop:
                detail += f" (safety stop: {p.planned} > max_deletes {p.plan.max_deletes})"
            lines.append(detail)
        if self.skipped_projects:
            lines.append(f"  projects skipped (listing failed): {', '.join(self.skipped_projects)}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class _Listing:
    backups: list[Backup] | None
    error_code: str | None = None
    error: str | None = None


class _Observer:
    """The client's request observer: logs throttling, counts requests, notes authentication."""

    __slots__ = ("authenticated", "metrics")

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self.authenticated: bool | None = None

    def on_response(self, operation: str, status: int, duration_s: float) -> None:
        if self.metrics is not None:
            self.metrics.requests.labels(operation, str(status)).inc()
            self.metrics.request_duration.labels(operation).observe(duration_s)
        if status in (401, 403):
            self.authenticated = False

    def on_retry(self, operation: str, attempt: int, error: BaseException, retry_in_s: float) -> None:
        log.info(
            "request_retry", operation=operation, attempt=attempt, error=str(error), retry_in_s=round(retry_in_s, 3)
        )

    def on_throttled(self, operation: str, status: int, retry_in_s: float) -> None:
        if self.metrics is not None:
            self.metrics.throttled.inc()
        log.warning("request_throttled", operation=operation, status=status, retry_in_s=round(retry_in_s, 3))

    def on_auth_ok(self) -> None:
        self.authenticated = True


class Runner:
    """Runs policies through one client; holds the auth providers (and their cached tokens) between runs."""

    def __init__(
        self,
        client: GesClient,
        settings: Settings,
        credentials: Credentials,
        *,
        metrics: Metrics | None = None,
        observer: _Observer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.credentials = credentials
        self.metrics = metrics
        self.observer = observer
        self._clock = clock
        # The client's deadlines are on the loop's clock: so are the run's.
        self._monotonic = monotonic or (lambda: asyncio.get_running_loop().time())
        self._auth: dict[tuple[str, str], AuthProvider] = {}
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        """No new deletion starts after this; in-flight ones finish."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _auth_for(self, endpoint: str, project_id: str) -> AuthProvider:
        key = (endpoint, project_id)
        auth = self._auth.get(key)
        if auth is None:
            auth = self._auth[key] = make_auth(self.credentials, project_id, endpoint, self.settings, self.client)
        return auth

    # --- listing ---------------------------------------------------------------------------------------------

    async def _list_project(self, endpoint: str, project_id: str, deadline: float) -> _Listing:
        project = self.client.project(endpoint, project_id, self._auth_for(endpoint, project_id))
        with structlog.contextvars.bound_contextvars(project_id=project_id):
            try:
                # Records become `Backup` values page by page; one invalid record, a later copy of an id
                # included, makes the whole listing untrusted.
                listing = await project.list_backups(deadline=deadline, parse=Backup.from_api)
            except GesError as exc:
                log.error("listing_failed", project_id=project_id, error_code=exc.error_code, error=str(exc))
                return _Listing(None, exc.error_code, str(exc))
            except InvalidBackupRecord as exc:
                log.error("listing_failed", project_id=project_id, error_code="invalid_record", error=str(exc))
                return _Listing(None, "invalid_record", str(exc))
            backups: list[Backup] = listing.records
            later: list[Backup] = list(listing.conflicting_records)
            if not listing.complete:
                error = f"incomplete listing: {len(backups)} unique backups, {listing.reported_count} reported"
                log.error("listing_failed", project_id=project_id, error_code="incomplete", error=error)
                return _Listing(None, "incomplete", error)
            if later:
                conflict = _untrusted_conflict(backups, later)
                if conflict is not None:
                    log.error("listing_failed", project_id=project_id, error_code="conflicting_record", error=conflict)
                    return _Listing(None, "conflicting_record", conflict)
                log.warning("listing_conflict", project_id=project_id, backup_ids=list(listing.conflicting_ids)[:20])
            graphs = len({b.graph_id for b in backups})
            log.info("backups_listed", project_id=project_id, count=len(backups), graphs=graphs)
            return _Listing(backups)

    async def list_projects(self, policies: Sequence[Policy], deadline: float) -> dict[str, _Listing]:
        endpoints: dict[str, str] = {}
        for policy in policies:
            endpoints.setdefault(policy.project_id, policy_endpoint(policy, self.settings))
        projects = sorted(endpoints)
        results = await asyncio.gather(*(self._list_project(endpoints[p], p, deadline) for p in projects))
        return dict(zip(projects, results, strict=True))

    # --- one run ---------------------------------------------------------------------------------------------

    async def run(
        self,
        policy_file: PolicyFile,
        selected: Sequence[Policy],
        *,
        dry_run: bool = False,
        max_deletes: int | None = None,
        trigger: Trigger = "cli",
        run_id: str | None = None,
    ) -> RunSummary:
        run_id = run_id or uuid.uuid4().hex[:16]
        started = self._monotonic()
        deadline = started + self.settings.run_deadline_s
        if max_deletes is not None:
            selected = [_with_max_deletes(p, max_deletes) for p in selected]
        summary = RunSummary(run_id=run_id, trigger=trigger, dry_run=dry_run)
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            log.info("run_started", policies=[p.name for p in selected], dry_run=dry_run, trigger=trigger)
            listings = await self.list_projects(selected, deadline)
            summary.listed = sum(len(x.backups) for x in listings.values() if x.backups is not None)
            summary.skipped_projects = sorted(p for p, x in listings.items() if x.backups is None)
            now = self._clock()
            results = self.plan_policies(policy_file, selected, listings, now, dry_run=dry_run)
            summary.policies = results
            await self._delete_all(results, deadline)
            summary.interrupted = self.stop_requested and any(r.not_started for r in results)
            for result in results:
                result.outcome = _policy_outcome(result, summary.interrupted)
                self._finish_policy(result, now, started)
            summary.duration_s = self._monotonic() - started
            summary.outcome = _run_outcome(summary)
            log.info(
                "run_finished",
                **summary.counts(),
                skipped_projects=summary.skipped_projects,
                duration_s=round(summary.duration_s, 3),
                outcome=summary.outcome,
            )
        return summary

    def plan_policies(
        self,
        policy_file: PolicyFile,
        selected: Sequence[Policy],
        listings: dict[str, _Listing],
        now: datetime,
        *,
        dry_run: bool,
    ) -> list[PolicyResult]:
        results: list[PolicyResult] = []
        plannable = [p for p in selected if listings[p.project_id].backups is not None]
        empty: list[Backup] = []
        plans = plan_file(policy_file.policies, plannable, lambda project: listings[project].backups or empty, now)
        by_name = {p.policy: p for p in plans}
        for policy in selected:
            result = PolicyResult(
                policy.name,
                policy.project_id,
                policy_endpoint(policy, self.settings),
                dry_run=dry_run or policy.dry_run,
            )
            listing = listings[policy.project_id]
            if listing.backups is None:
                result.listing_error = listing.error
                results.append(result)
                continue
            plan = by_name[policy.name]
            result.plan = plan
            result.planned = len(plan.planned)
            with structlog.contextvars.bound_contextvars(policy=policy.name, project_id=policy.project_id):
                _log_plan(plan)
                self._record_backups(policy.name, plan, now)
            results.append(result)
        return results

    def _record_backups(self, policy: str, plan: Plan, now: datetime) -> None:
        if self.metrics is None:
            return
        statuses = Counter(d.backup.status for d in plan.decisions)
        for status in ("success", "failed", "backing_up"):
            statuses.setdefault(status, 0)
        for status, count in statuses.items():
            self.metrics.backups.labels(policy, status).set(count)
        newest = max((d.backup.start_ms for d in plan.decisions if d.backup.status == "success"), default=None)
        if newest is not None:
            age_s = max(0.0, now.timestamp() - newest / 1000)
            self.metrics.newest_success_age.labels(policy).set(age_s)

    # --- deletions -------------------------------------------------------------------------------------------

    async def _delete_all(self, results: Sequence[PolicyResult], deadline: float) -> None:
        queue: list[tuple[PolicyResult, Decision]] = []
        for result in results:
            if result.plan is None or result.dry_run:
                continue
            queue.extend((result, d) for d in result.plan.deletions)
        if not queue:
            return
        items = iter(queue)

        async def worker() -> None:
            for result, decision in items:
                if self.stop_requested or self._monotonic() >= deadline:
                    result.not_started += 1
                    continue
                await self._delete_one(result, decision, deadline)

        workers = min(self.settings.concurrency, len(queue))
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())

    async def _delete_one(self, result: PolicyResult, decision: Decision, deadline: float) -> None:
        backup = decision.backup
        auth = self._auth_for(result.endpoint, result.project_id)
        project = self.client.project(result.endpoint, result.project_id, auth)
        with structlog.contextvars.bound_contextvars(
            policy=result.name,
            project_id=result.project_id,
            graph_id=backup.graph_id,
            backup_id=backup.id,
            backup_name=backup.name,
        ):
            try:
                outcome = await project.delete_backup(backup.graph_id, backup.id, deadline=deadline)
            except GesError as exc:
                result.failed += 1
                log.error(
                    "backup_delete_failed",
                    status=exc.status,
                    error_code=exc.error_code,
                    error=str(exc),
                    attempts=exc.attempts,
                )
                self._count(result.name, "failed")
                return
            if outcome.outcome == "already_deleted":
                result.already_deleted += 1
                log.info("backup_already_deleted", error_code=outcome.error_code or "GES.7024")
                self._count(result.name, "already_deleted")
            else:
                result.deleted += 1
                log.info("backup_deleted", attempts=outcome.attempts, duration_ms=round(outcome.duration_s * 1000, 1))
                self._count(result.name, "deleted")

    def _count(self, policy: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.deletions.labels(policy, outcome).inc()

    def _finish_policy(self, result: PolicyResult, now: datetime, started: float) -> None:
        with structlog.contextvars.bound_contextvars(policy=result.name, project_id=result.project_id):
            log.info("policy_finished", **result.counts(), outcome=result.outcome)
        if self.metrics is not None:
            self.metrics.run_duration.labels(result.name).observe(self._monotonic() - started)
            self.metrics.last_run.labels(result.name, result.outcome).set(time.time())


def _untrusted_conflict(first_copies: Sequence[Backup], later_copies: Sequence[Backup]) -> str | None:
    """Why two copies of one id cannot both be true, or None for the one change paging can see honestly.

    A backup that was still `backing_up` on one page may have finished by the next: the first copy (kept, never
    deleted) is used. Any other difference (another graph, start, method, name, or a success that changed status)
    means the server's answers are inconsistent, and nothing is deleted from them.
    """
    first_by_id = {b.id: b for b in first_copies}
    for later in later_copies:
        first = first_by_id[later.id]
        identity = (first.graph_id, first.start_ms, first.backup_method, first.name)
        if identity != (later.graph_id, later.start_ms, later.backup_method, later.name):
            return f"backup {later.id!r} was listed twice with different graph, start, method or name"
        if first.status != later.status and first.status != "backing_up":
            return f"backup {later.id!r} was listed as {first.status!r} and then as {later.status!r}"
    return None


def _with_max_deletes(policy: Policy, max_deletes: int) -> Policy:
    return policy.model_copy(update={"safety": policy.safety.model_copy(update={"max_deletes": max_deletes})})


def _log_plan(plan: Plan) -> None:
    for warning in plan.warnings:
        if warning.kind == "policy_overlap":
            log.warning("policy_overlap", backup_id=warning.backup_id, policies=warning.detail.split(", "))
        elif warning.kind == "future":
            log.warning("backup_in_future", backup_id=warning.backup_id, detail=warning.detail)
        else:
            log.warning("backup_status_unknown", backup_id=warning.backup_id, status=warning.detail)
    for decision in plan.decisions:
        backup = decision.backup
        keys = {"graph_id": backup.graph_id, "backup_id": backup.id, "backup_name": backup.name}
        if decision.action == "delete":
            log.info("backup_expired", reasons=list(decision.reasons), **keys)
        else:
            log.debug("backup_kept", reasons=list(decision.reasons), **keys)
    if plan.safety_stop:
        log.error("safety_stop", planned=len(plan.planned), limit=plan.max_deletes)


def _policy_outcome(result: PolicyResult, interrupted: bool) -> Outcome:
    if result.listing_error is not None:
        return "failed"
    if result.plan is not None and result.plan.safety_stop:
        return "safety_stop"
    if result.dry_run:
        return "dry_run"
    if result.not_started and interrupted:
        return "interrupted"
    if result.failed or result.not_started:
        done = result.deleted + result.already_deleted
        return "failed" if done == 0 else "partial"
    return "ok"


def _run_outcome(summary: RunSummary) -> Outcome:
    outcomes = {p.outcome for p in summary.policies}
    if summary.interrupted:
        return "interrupted"
    if outcomes & {"failed", "partial"}:
        return "failed" if outcomes <= {"failed"} else "partial"
    if "safety_stop" in outcomes:
        return "safety_stop"
    if outcomes and outcomes <= {"dry_run"}:
        return "dry_run"
    return "ok"


def make_auth(
    credentials: Credentials, project_id: str, endpoint: str, settings: Settings, client: GesClient
) -> AuthProvider:
    if isinstance(credentials, AkSkCredentials):
        return AkSkAuth(credentials.ak, credentials.sk, project_id, security_token=credentials.security_token)
    if isinstance(credentials, PasswordCredentials):
        iam = credentials.iam_endpoint or _iam_endpoint_for(endpoint)
        return PasswordAuth(
            iam,
            credentials.domain,
            credentials.user,
            credentials.password,
            project_id,
            session=client.session,
            timeout_s=settings.request_timeout_s,
        )
    return TokenAuth(credentials.token)


def _iam_endpoint_for(endpoint: str) -> str:
    # https://ges.{region}.myhuaweicloud.com -> https://iam.{region}.myhuaweicloud.com
    from urllib.parse import urlsplit

    host = urlsplit(endpoint).hostname or ""
    if host.startswith("ges."):
        return f"https://iam.{host[4:]}"
    return "https://iam.myhuaweicloud.com"


class Service:
    """The long-lived pieces of one process: the HTTP session, the client, the runner."""

    def __init__(self, settings: Settings, *, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.credentials = settings.credentials()
        self.metrics = metrics
        self.observer = _Observer(metrics)
        self._session: Any = None
        self.runner: Runner | None = None

    async def __aenter__(self) -> Runner:
        config = client_config(self.settings)
        self._session = open_session(config)
        client = GesClient(self._session, config, observer=self.observer)
        self.runner = Runner(client, self.settings, self.credentials, metrics=self.metrics, observer=self.observer)
        return self.runner

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()


def check_endpoints(policies: Iterable[Policy], settings: Settings) -> None:
    """Every policy can reach an endpoint; raises `SettingsError` before anything is called."""
    for policy in policies:
        policy_endpoint(policy, settings)


def live_plan(
    policy_file: PolicyFile, selected: Sequence[Policy], settings: Settings, now: datetime
) -> tuple[list[PolicyReport], ExitCode]:
    """`plan` without `--from-file`: list from the API, plan, delete nothing."""
    check_endpoints(selected, settings)

    async def main() -> tuple[list[PolicyReport], ExitCode]:
        async with Service(settings) as runner:
            listings = await runner.list_projects(selected, asyncio.get_running_loop().time() + settings.run_deadline_s)
        results = runner.plan_policies(policy_file, selected, listings, now, dry_run=True)
        reports = [PolicyReport(r.name, r.project_id, r.plan, r.listing_error) for r in results]
        codes = [ExitCode.OK]
        if any(r.listing_error for r in results):
            codes.append(ExitCode.FAILED)
        if any(r.plan is not None and r.plan.safety_stop for r in results):
            codes.append(ExitCode.SAFETY_STOP)
        return reports, combine(codes)

    return asyncio.run(main())


def run_command(
    policy_file: PolicyFile,
    selected: Sequence[Policy],
    settings: Settings,
    *,
    dry_run: bool,
    max_deletes: int | None,
    fmt: str,
) -> int:
    """`ges-retention run`: one run with signal handling; prints the summary on stdout."""
    import json
    import signal
    import sys

    check_endpoints(selected, settings)
    received: list[int] = []

    async def main() -> RunSummary:
        loop = asyncio.get_running_loop()
        async with Service(settings) as runner:
            task = asyncio.current_task()
            assert task is not None

            def on_signal(signum: int) -> None:
                if received:  # a second signal: stop waiting for in-flight requests
                    task.cancel()
                    return
                received.append(signum)
                log.warning("shutdown_requested", signal=signal.Signals(signum).name)
                runner.request_stop()
                loop.call_later(settings.shutdown_grace_s, task.cancel)

            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, on_signal, signum)
            try:
                return await runner.run(policy_file, selected, dry_run=dry_run, max_deletes=max_deletes, trigger="cli")
            finally:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)

    try:
        summary = asyncio.run(main())
    except asyncio.CancelledError:
        print("ges-retention: interrupted: in-flight requests did not finish within the grace period", file=sys.stderr)
        return ExitCode.INTERRUPTED_SIGINT if received == [signal.SIGINT] else ExitCode.INTERRUPTED_SIGTERM
    if fmt == "json":
        sys.stdout.write(json.dumps(summary.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(summary.render_text())
    interrupted_code = ExitCode.INTERRUPTED_SIGINT if received[:1] == [signal.SIGINT] else ExitCode.INTERRUPTED_SIGTERM
    if received:
        summary.interrupted = True
    return int(summary.exit_code(interrupted_code))
