"""The composition root: settings become a client, credentials become auth providers, subscribers are wired.

`Service` owns the long-lived pieces of one process (the HTTP session, the GES client, the auth providers and
their cached tokens, the readiness fact, the state store) and hands out the `Runner` built on them. Nothing else
constructs them. The state (`GES_RETENTION_STATE`) is opened once per process, in the mode of the command:
`create` for `run` and `daemon`, `read_only` for `plan` (None when there is no state), or not at all (`state_mode`
None). Opening it happens before any request, so a misconfigured state is exit 2 with nothing called.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog

from ges_retention import __version__
from ges_retention.agencies import Agencies, check_agencies, iam_endpoint_for
from ges_retention.backup import Backup
from ges_retention.events import FanOut, LoggingEvents, MetricsEvents, RunEvents
from ges_retention.ges.auth import AkSkAuth, AuthProvider, PasswordAuth, TokenAuth
from ges_retention.ges.client import (
    BackupListing,
    ClientConfig,
    DeleteResult,
    GesClient,
    GraphListing,
    ProjectClient,
    open_session,
)
from ges_retention.ges.pacing import AutoRate, RateMemory
from ges_retention.journal import NullJournal, RunJournal, StateJournal
from ges_retention.metrics import Metrics
from ges_retention.policy import Policy
from ges_retention.progress import Progress
from ges_retention.rate_memory import StateRateMemory
from ges_retention.runner import Runner
from ges_retention.settings import AkSkCredentials, Credentials, PasswordCredentials, Settings, SettingsError
from ges_retention.state import (
    OpenMode,
    StateUnavailable,
    Store,
    default_holder,
    open_store,
    resolve_state_location,
)

__all__ = [
    "GesBackupApi",
    "Readiness",
    "Service",
    "check_endpoints",
    "client_config",
    "lease_holder",
    "make_auth",
    "open_state",
    "policy_endpoint",
]

log = structlog.get_logger("ges_retention.runner")


def policy_endpoint(policy: Policy, settings: Settings) -> str:
    """`GES_RETENTION_ENDPOINT` overrides the policy's `endpoint` and `region`."""
    endpoint = settings.endpoint or policy.api_endpoint()
    if endpoint is None:
        raise SettingsError(
            f"policy {policy.name!r} has neither 'endpoint' nor 'region', and GES_RETENTION_ENDPOINT is not set"
        )
    return endpoint


def check_endpoints(policies: Iterable[Policy], settings: Settings) -> None:
    """Every policy can reach an endpoint, with credentials that can act there (agencies: `agencies.py`); raises
    `SettingsError` before anything is called."""
    policies = list(policies)
    for policy in policies:
        policy_endpoint(policy, settings)
    check_agencies(policies, settings, lambda policy: policy_endpoint(policy, settings))


def client_config(
    settings: Settings, *, rate_memory: RateMemory | None = None, holder: str | None = None
) -> ClientConfig:
    """`holder`: a lease holder id (several replicas) carried in the User-Agent, `ges-retention/V (holder=ID)`, so
    that the GES side (and the emulator's per-client stats) can tell the replicas' requests apart."""
    agent = f"ges-retention/{__version__}" + (f" (holder={holder})" if holder else "")
    rate = settings.rate_limit
    return ClientConfig(
        user_agent=agent,
        concurrency=settings.concurrency,
        # With `auto`, the adaptive pacers use `auto_rate`; the max is the one bound that still holds.
        rate_limit_per_s=settings.rate_max if rate == "auto" else rate,
        auto_rate=AutoRate(settings.rate_start, settings.rate_max, rate_memory) if rate == "auto" else None,
        page_size=settings.page_size,
        max_attempts=settings.max_attempts,
        backoff_max_s=settings.backoff_max_s,
        request_timeout_s=settings.request_timeout_s,
        ca_bundle=settings.ca_bundle,
    )


def make_auth(
    credentials: Credentials, project_id: str, endpoint: str, settings: Settings, client: GesClient
) -> AuthProvider:
    if isinstance(credentials, AkSkCredentials):
        return AkSkAuth(credentials.ak, credentials.sk, project_id, security_token=credentials.security_token)
    if isinstance(credentials, PasswordCredentials):
        iam = credentials.iam_endpoint or iam_endpoint_for(endpoint)
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


class Readiness:
    """The owner of "the last API call was authenticated" (None until an answer says either way) for `/readyz`."""

    __slots__ = ("_authenticated",)

    def __init__(self) -> None:
        self._authenticated: bool | None = None

    def authenticated(self) -> bool | None:
        return self._authenticated

    def note_answer(self, status: int) -> None:
        if status in (401, 403):
            self._authenticated = False

    def note_auth_ok(self) -> None:
        self._authenticated = True


class _RequestObserver:
    """The client's request observer: logs retries and throttling, counts requests, tells readiness."""

    __slots__ = ("metrics", "readiness")

    def __init__(self, metrics: Metrics | None, readiness: Readiness) -> None:
        self.metrics = metrics
        self.readiness = readiness

    def on_response(self, operation: str, status: int, duration_s: float) -> None:
        if self.metrics is not None:
            self.metrics.requests.labels(operation, str(status)).inc()
            self.metrics.request_duration.labels(operation).observe(duration_s)
        self.readiness.note_answer(status)

    def on_retry(self, operation: str, attempt: int, error: BaseException, retry_in_s: float) -> None:
        log.info(
            "request_retry", operation=operation, attempt=attempt, error=str(error), retry_in_s=round(retry_in_s, 3)
        )

    def on_throttled(self, operation: str, status: int, retry_in_s: float) -> None:
        if self.metrics is not None:
            self.metrics.throttled.inc()
        log.warning("request_throttled", operation=operation, status=status, retry_in_s=round(retry_in_s, 3))

    def on_auth_ok(self) -> None:
        self.readiness.note_auth_ok()

    def on_rate_limit(self, endpoint: str, project_id: str, rate_per_s: float) -> None:
        if self.metrics is not None:
            self.metrics.rate_limit.labels(endpoint, project_id).set(round(rate_per_s, 3))


class GesBackupApi:
    """The runner's `BackupApi` over GES: one auth provider per (endpoint, project, agency), kept with its cached
    token; a project bound to an agency (`agencies`) is called with that agency's temporary credentials."""

    __slots__ = ("_auth", "agencies", "client", "credentials", "settings")

    def __init__(self, client: GesClient, settings: Settings, credentials: Credentials) -> None:
        self.client = client
        self.settings = settings
        self.credentials = credentials
        self.agencies = Agencies(credentials, settings, client.session)
        self._auth: dict[tuple[str, str, object], AuthProvider] = {}

    def _project(self, endpoint: str, project_id: str) -> ProjectClient:
        key = (endpoint, project_id, self.agencies.agency(endpoint, project_id))
        auth = self._auth.get(key)
        if auth is None:
            auth = self.agencies.auth(endpoint, project_id) or make_auth(
                self.credentials, project_id, endpoint, self.settings, self.client
            )
            self._auth[key] = auth
        return self.client.project(endpoint, project_id, auth)

    def endpoint_of(self, policy: Policy) -> str:
        """The policy's endpoint; binds its project to its agency first (the runner asks before it lists)."""
        endpoint = policy_endpoint(policy, self.settings)
        self.agencies.bind(endpoint, policy.project_id, policy.agency)
        return endpoint

    async def list_backups(self, endpoint: str, project_id: str, *, deadline: float) -> BackupListing:
        return await self._project(endpoint, project_id).list_backups(deadline=deadline, parse=Backup.from_api)

    async def list_graphs(self, endpoint: str, project_id: str, *, deadline: float) -> GraphListing:
        return await self._project(endpoint, project_id).list_graphs(deadline=deadline)

    async def backup_quota(self, endpoint: str, project_id: str, *, deadline: float) -> int | None:
        return await self._project(endpoint, project_id).backup_quota(deadline=deadline)

    async def delete_backup(
        self, endpoint: str, project_id: str, graph_id: str, backup_id: str, *, deadline: float
    ) -> DeleteResult:
        return await self._project(endpoint, project_id).delete_backup(graph_id, backup_id, deadline=deadline)


def lease_holder(settings: Settings) -> str | None:
    """On a PostgreSQL state, this process's lease holder id (`host:pid:random`), known before the state is opened
    so that every request can carry it in its User-Agent; None on any other state."""
    try:
        if resolve_state_location(settings.state_value()).kind != "postgresql":
            return None
    except Exception:  # a bad value is refused where the state is opened (exit 2), not here
        return None
    return f"{default_holder()}:{secrets.token_hex(3)}"


async def open_state(settings: Settings, mode: OpenMode, *, holder: str | None = None) -> Store | None:
    """The process's one store (`GES_RETENTION_STATE`), or None (`read_only` and no state yet). A new state is the
    warning `state_created`: it has no holds, pending clocks or baselines. `holder`: the lease holder id."""
    location = resolve_state_location(settings.state_value())
    try:
        store = await open_store(location, mode=mode, lease_ttl_s=settings.lease_ttl_s, holder=holder)
    except StateUnavailable as exc:  # unreachable is not misconfiguration: exit 1, and said as an event
        log.error("state_unavailable", error=str(exc), location=exc.location)
        raise
    if store is not None and store.info.created:
        log.warning("state_created", location=store.info.location, backend=store.info.backend)
    return store


class Service:
    """The long-lived pieces of one process: the HTTP session, the client, the runner, readiness, the state."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        state_mode: OpenMode | None = None,
        store: Store | None = None,
    ) -> None:
        """`state_mode`: open the state in this mode on entry (and close it on exit); or pass an open `store`
        (its owner closes it); neither: no state (every run is journalled nowhere)."""
        self.settings = settings
        self.clock = clock
        self.state_mode = state_mode
        self.store: Store | None = store
        self._owns_store = False
        # Several replicas: the lease holder id, in the store's leases and in every request's User-Agent.
        self.lease_holder = store.leases.holder if store is not None and store.leases is not None else None
        if self.lease_holder is None and store is None:
            self.lease_holder = lease_holder(settings)
        self.credentials = settings.credentials()
        self.metrics = metrics
        self.readiness = Readiness()
        self.observer = _RequestObserver(metrics, self.readiness)
        self._session: aiohttp.ClientSession | None = None
        self._rate_memory: StateRateMemory | None = None
        self.runner: Runner | None = None

    def run_events(self) -> RunEvents:
        """A run's subscribers: logs, metrics (in the daemon), progress (fresh per run: it keeps the run's pace)."""
        subscribers: list[RunEvents] = [LoggingEvents()]
        if self.metrics is not None:
            subscribers.append(MetricsEvents(self.metrics))
        subscribers.append(Progress())
        return FanOut(*subscribers)

    def run_journal(self) -> RunJournal:
        """A run's journal: over the store when there is one (fresh per run: it keeps the run's id)."""
        if self.store is None:
            return NullJournal()
        return StateJournal(
            self.store,
            endpoint_of=lambda policy: policy_endpoint(policy, self.settings),
            clock=self.clock,
            lock_timeout_s=self.settings.state_lock_timeout_s,
            keep_days=self.settings.state_keep_days,
        )

    async def __aenter__(self) -> Runner:
        if self.store is None and self.state_mode is not None:
            self.store = await open_state(self.settings, self.state_mode, holder=self.lease_holder)
            self._owns_store = self.store is not None
        # Learned rates (`GES_RETENTION_RATE_LIMIT=auto`) live in the state, when there is one.
        self._rate_memory = StateRateMemory(self.store) if self.store is not None else None
        config = client_config(self.settings, rate_memory=self._rate_memory, holder=self.lease_holder)
        self._session = open_session(config)
        client = GesClient(self._session, config, observer=self.observer)
        api = GesBackupApi(client, self.settings, self.credentials)
        self.runner = Runner(
            api,
            endpoint_of=api.endpoint_of,
            concurrency=self.settings.concurrency,
            run_deadline_s=self.settings.run_deadline_s,
            events=self.run_events,
            journal=self.run_journal,
            clock=self.clock,
        )
        return self.runner

    async def __aexit__(self, *exc: Any) -> None:
        try:
            if self._session is not None:
                await self._session.close()
            if self._rate_memory is not None:
                await self._rate_memory.close()  # its last writes, before the store closes
        finally:
            if self._owns_store and self.store is not None:
                self._owns_store = False
                await self.store.close()
