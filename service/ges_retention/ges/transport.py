"""The request engine: the session, pacing, retries with backoff, the observer, the clock and deadlines.

It knows HTTP requests, not GES operations: `client` builds a `Call` (what to send, with which credentials and
pacer) and awaits `Transport.send`, which answers the first success or raises a mapped `GesError`.

Every attempt goes: global in-flight semaphore -> credentials (`auth.headers`, which may log in) -> the project's
pacer -> deadline check -> send -> read. The pacer comes last so that nothing between it and the wire can bunch
requests up into a burst. Nothing is held across a backoff wait.

Retries: a retryable failure (see `errors`) is retried up to `max_attempts` tries in all, after a backoff with full
jitter (capped at `backoff_max_s`, at least the server's `Retry-After`); a 429 also slows the project's pacer down.
A 401 is answered by asking the credentials to refresh (`AuthProvider.invalidate`); if they can, the request is
sent again at once, once, without spending a try. `deadline` (absolute, on the transport's clock, which is the loop's
by default) stops new attempts from starting after it and refuses a backoff wait that would end after it.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from ges_retention import __version__
from ges_retention.ges.auth import AuthProvider
from ges_retention.ges.errors import ApiError, DeadlineExceeded, GesError, ThrottledError, Unauthorized
from ges_retention.ges.loop_clock import loop_clock
from ges_retention.ges.observe import NullObserver, RequestObserver
from ges_retention.ges.pacing import AutoRate, Backoff, Pacer, Pacing, SleepFn, TimeFn
from ges_retention.ges.signing import SignedRequest
from ges_retention.ges.wire_errors import BACKUP_GONE_CODE, error_from_response, error_from_transport

__all__ = ["Answer", "Call", "ClientConfig", "Transport", "open_session"]

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The client's knobs; the names follow the `GES_RETENTION_*` settings."""

    concurrency: int = 8
    rate_limit_per_s: float = 10.0
    page_size: int = 100
    max_attempts: int = 5
    backoff_base_s: float = 0.2
    backoff_max_s: float = 30.0
    request_timeout_s: float = 30.0
    ca_bundle: str | None = None
    # A listing of more pages than this is a server paging forever (10 million backups at the default page size).
    max_pages: int = 100_000
    user_agent: str = f"ges-retention/{__version__}"
    # `GES_RETENTION_RATE_LIMIT=auto`: adaptive pacers instead of fixed ones at `rate_limit_per_s`.
    auto_rate: AutoRate | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if not self.rate_limit_per_s >= 0:
            raise ValueError(f"rate_limit_per_s must be >= 0 (0 = no limit), got {self.rate_limit_per_s}")
        if not 1 <= self.page_size <= 1000:
            raise ValueError(f"page_size must be within 1..1000, got {self.page_size}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not (self.backoff_base_s > 0 and self.backoff_max_s >= 0 and self.request_timeout_s > 0):
            raise ValueError("backoff_base_s and request_timeout_s must be > 0, backoff_max_s >= 0")
        if self.max_pages < 1:
            raise ValueError(f"max_pages must be >= 1, got {self.max_pages}")


def open_session(config: ClientConfig) -> aiohttp.ClientSession:
    """The process's one HTTP session: TLS verified (system CAs plus `ca_bundle`), keep-alive, pooled.

    Call it inside the running loop; close it (`await session.close()`) at the end.
    """
    context = ssl.create_default_context()  # verifies certificates and host names; never turned off here
    if config.ca_bundle:
        context.load_verify_locations(cafile=config.ca_bundle)
    connector = aiohttp.TCPConnector(
        ssl=context,
        # A few more than the requests in flight: IAM logins go through the same pool.
        limit=config.concurrency + 4,
        limit_per_host=0,
        keepalive_timeout=15.0,  # under the usual idle timeout of gateways: fewer stale keep-alive sockets
        ttl_dns_cache=300,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=request_timeout(config),
        headers={"User-Agent": config.user_agent, "Accept": JSON},
        # No cookies (a gateway's are of no use to us), no proxies or .netrc from the environment (a .netrc entry
        # would add an Authorization header of its own).
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        raise_for_status=False,
    )
    # aiohttp resends an idempotent request (GET, DELETE) once by itself when the connection fails. That resend
    # would bypass the pacer and the attempt count: every retry must be ours, paced, counted and observed.
    # (No public switch exists; aiohttp's own test client sets this attribute the same way.)
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


def request_timeout(config: ClientConfig) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=config.request_timeout_s, sock_connect=min(10.0, config.request_timeout_s))


@dataclass(frozen=True, slots=True)
class Call:
    """One logical request, shared by its attempts: where it goes, what the credentials sign, who paces it.

    `gone_ok`: a `GES.7024` answer (400 or 404) is an outcome (`Answer.gone`), not an error.
    """

    operation: str
    url: URL
    request: SignedRequest
    auth: AuthProvider
    pacer: Pacer
    gone_ok: bool = False

    @classmethod
    def to(
        cls,
        operation: str,
        method: str,
        url: URL,
        *,
        headers: Mapping[str, str],
        auth: AuthProvider,
        pacer: Pacer,
        gone_ok: bool = False,
    ) -> Call:
        signed = SignedRequest(
            method,
            url.raw_path,
            # A DELETE has no query: parsing the empty one costs more than the rest of this (once per deletion).
            tuple(url.query.items()) if url.raw_query_string else (),
            headers,
            b"",
            url.host_port_subcomponent or "",
        )
        return cls(operation, url, signed, auth, pacer, gone_ok)


@dataclass(frozen=True, slots=True)
class Answer:
    """The success (or, with `gone_ok`, the GES.7024) that ended a call, and what it took."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    attempts: int
    duration_s: float
    gone: ApiError | None = None


@dataclass(frozen=True, slots=True)
class _Sent:
    status: int
    body: bytes
    headers: CIMultiDictProxy[str]
    sent_headers: Mapping[str, str]
    generation: int


class Transport:
    """One per process: owns the pacing (in-flight cap, per-project pacers) and the retry policy; not the session's
    lifetime (the owner closes it)."""

    __slots__ = ("_backoff", "_observer", "_sleep", "_time", "_timeout", "config", "pacing", "session")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: ClientConfig | None = None,
        *,
        observer: RequestObserver | None = None,
        time_fn: TimeFn | None = None,
        sleep_fn: SleepFn | None = None,
        rng: random.Random | None = None,
        pacing: Pacing | None = None,
    ) -> None:
        self.session = session
        self.config = config if config is not None else ClientConfig()
        self._observer: RequestObserver = observer if observer is not None else NullObserver()
        self._time: TimeFn = time_fn if time_fn is not None else loop_clock()
        self._sleep: SleepFn = sleep_fn if sleep_fn is not None else asyncio.sleep
        self._backoff = Backoff(base_s=self.config.backoff_base_s, cap_s=self.config.backoff_max_s, rng=rng)
        self.pacing = (
            pacing
            if pacing is not None
            else Pacing(
                self.config.concurrency,
                self.config.rate_limit_per_s,
                auto=self.config.auto_rate,
                observer=self._observer,
                time_fn=self._time,
                sleep_fn=self._sleep,
            )
        )
        self._timeout = request_timeout(self.config)

    def time(self) -> float:
        """The transport's clock: deadlines are on it."""
        return self._time()

    def pacer(self, endpoint: str, project_id: str) -> Pacer:
        return self.pacing.pacer(endpoint, project_id)

    def __repr__(self) -> str:
        return f"Transport(config={self.config!r}, pacing={self.pacing!r})"

    async def send(self, call: Call, *, deadline: float | None) -> Answer:
        """Send with retries until a 2xx (or, with `gone_ok`, a GES.7024); raise the last error otherwise."""
        operation = call.operation
        observer = self._observer
        started = self._time()
        sent = 0  # attempts that reached the network (or failed trying)
        tries = 0  # attempts that count against max_attempts: the post-refresh retry does not
        refreshed = False
        last: GesError | None = None
        while True:
            if deadline is not None and self._time() >= deadline:
                raise _deadline(operation, sent, last, "the deadline passed before the next attempt") from last
            sent += 1
            tries += 1
            error: GesError
            try:
                answer = await self._attempt(call, deadline)
            except DeadlineExceeded:
                raise _deadline(operation, sent - 1, last, "the deadline passed before the request was sent") from last
            except GesError as exc:
                error = exc
            else:
                if 200 <= answer.status < 300:
                    observer.on_auth_ok()
                    return Answer(answer.status, answer.body, answer.headers, sent, self._time() - started)
                api_error = error_from_response(operation, answer.status, answer.body, answer.headers)
                code = api_error.error_code
                if code is not None and code.startswith("GES."):
                    observer.on_auth_ok()  # GES itself answered: the gateway accepted the credentials
                if call.gone_ok and code == BACKUP_GONE_CODE and answer.status in (400, 404):
                    duration_s = self._time() - started
                    return Answer(answer.status, answer.body, answer.headers, sent, duration_s, gone=api_error)
                if isinstance(api_error, Unauthorized) and not refreshed:
                    refreshed = True
                    if await call.auth.invalidate(answer.sent_headers):
                        tries -= 1
                        last = api_error
                        observer.on_retry(operation, sent, api_error, 0.0)
                        continue
                if isinstance(api_error, ThrottledError):
                    pause = api_error.retry_after_s
                    backoff_max_s = self.config.backoff_max_s
                    call.pacer.throttled(answer.generation, None if pause is None else min(pause, backoff_max_s))
                error = api_error
            last = error
            if not error.retryable or tries >= self.config.max_attempts:
                error.attempts = sent
                raise error
            await self._wait_to_retry(operation, sent, tries, error, deadline)

    async def _wait_to_retry(
        self, operation: str, sent: int, tries: int, error: GesError, deadline: float | None
    ) -> None:
        retry_after = error.retry_after_s if isinstance(error, ApiError) else None
        delay = self._backoff.delay(tries, retry_after)
        if isinstance(error, ThrottledError):
            self._observer.on_throttled(operation, error.status or 429, delay)
        self._observer.on_retry(operation, sent, error, delay)
        if deadline is not None and self._time() + delay > deadline:
            why = f"a retry in {delay:.3f} s would start after the deadline"
            raise _deadline(operation, sent, error, why) from error
        await self._sleep(delay)

    async def _attempt(self, call: Call, deadline: float | None) -> _Sent:
        """One try. Raises mapped errors (`DeadlineExceeded` when the deadline passed while waiting for the pacer)."""
        async with self.pacing.in_flight:
            auth_headers = await call.auth.headers(call.request)
            generation = await call.pacer.acquire()
            if deadline is not None and self._time() >= deadline:
                raise DeadlineExceeded("the deadline passed before the request could be sent", operation=call.operation)
            headers = {**call.request.headers, **auth_headers}
            started = self._time()
            try:
                async with self.session.request(
                    call.request.method,
                    call.url,
                    headers=headers,
                    data=call.request.body or None,
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as response:
                    body = await response.read()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise error_from_transport(call.operation, exc) from exc
            self._observer.on_response(call.operation, response.status, self._time() - started)
            return _Sent(response.status, body, response.headers, headers, generation)


def _deadline(operation: str, attempts: int, last: GesError | None, why: str) -> DeadlineExceeded:
    return DeadlineExceeded(
        why + (f"; last error: {last}" if last is not None else ""),
        operation=operation,
        status=None if last is None else last.status,
        error_code=None if last is None else last.error_code,
        request_id=None if last is None else last.request_id,
        attempts=attempts,
    )
