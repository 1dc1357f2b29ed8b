"""The GES v2 operations the service needs, over one shared `aiohttp` session.

```
GesClient(session, config)                     one per process: pacing registry, backoff, observer
└── .project(endpoint, project_id, auth)       a cheap, cached view of one project
    ├── iter_graphs() / list_graphs()                        GET    /v2/{project_id}/graphs
    ├── iter_backup_pages() / list_backups()                 GET    /v2/{project_id}/graphs/backups
    ├── iter_graph_backup_pages(g) / list_graph_backups(g)   GET    /v2/{project_id}/graphs/{g}/backups
    └── delete_backup(g, b)                                  DELETE /v2/{project_id}/graphs/{g}/backups/{b}
```

Every attempt of every request goes: global in-flight semaphore -> credentials (`auth.headers`, which may log in)
-> the project's pacer -> deadline check -> send -> read. The pacer comes last so that nothing between it and the
wire can bunch requests up into a burst. Nothing is held across a backoff wait.

Retries: a retryable failure (see `errors`) is retried up to `max_attempts` tries in all, after a backoff with full
jitter (capped at `backoff_max_s`, at least the server's `Retry-After`); a 429 also slows the project's pacer down.
A 401 is answered by asking the credentials to refresh (`AuthProvider.invalidate`); if they can, the request is
sent again at once, once, without spending a try. `deadline` (absolute, on the client's clock, which is the loop's
by default) stops new attempts from starting after it and refuses a backoff wait that would end after it.

Path segments are validated against strict alphabets and percent-encoded before any request: an id can never
change the path (no `/`, `..`, `%`, `?`, `#`).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from ges_retention import __version__
from ges_retention.ges.auth import AuthProvider, PasswordAuth
from ges_retention.ges.errors import (
    BACKUP_GONE_CODE,
    ApiError,
    DeadlineExceeded,
    GesError,
    InvalidIdentifier,
    ListingError,
    ThrottledError,
    Unauthorized,
    error_from_response,
    error_from_transport,
)
from ges_retention.ges.observe import NullObserver, RequestObserver
from ges_retention.ges.pacing import Backoff, Pacing, RatePacer, SleepFn, TimeFn

__all__ = [
    "BackupListing",
    "ClientConfig",
    "DeleteResult",
    "GesClient",
    "GraphListing",
    "NullObserver",
    "Page",
    "ProjectClient",
    "RequestObserver",
    "open_session",
    "path_segment",
]

OP_LIST_GRAPHS = "list_graphs"
OP_LIST_BACKUPS = "list_backups"
OP_LIST_GRAPH_BACKUPS = "list_graph_backups"
OP_DELETE_BACKUP = "delete_backup"

# The seed: a project id is letters and digits, at most 64. Graph and backup ids are opaque (UUIDs in practice):
# unreserved URL characters only, so that quoting is the identity and no reading of the path can differ.
_PROJECT_ID = re.compile(r"[A-Za-z0-9]{1,64}")
_RESOURCE_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_JSON = "application/json"


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
        timeout=_timeout(config),
        headers={"User-Agent": config.user_agent, "Accept": _JSON},
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


def _timeout(config: ClientConfig) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=config.request_timeout_s, sock_connect=min(10.0, config.request_timeout_s))


def path_segment(value: object, *, field: str, operation: str) -> str:
    """`value` as one percent-encoded URL path segment, or `InvalidIdentifier` (before anything is sent)."""
    pattern = _PROJECT_ID if field == "project_id" else _RESOURCE_ID
    if not isinstance(value, str) or pattern.fullmatch(value) is None or not value.strip("."):
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise InvalidIdentifier(f"{field} {shown} is not a valid identifier", field=field, operation=operation)
    # The alphabet is unreserved already; quoting anyway keeps the path safe should the alphabet ever be widened.
    return quote(value, safe="")


# --------------------------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, raw: `items` as the server sent them, `total` its count field."""

    items: list[Any]
    total: int
    offset: int
    number: int
    attempts: int


@dataclass(frozen=True, slots=True)
class BackupListing:
    """Every backup record of a listing, de-duplicated by id (first seen wins), still raw.

    `complete` is False when fewer unique ids were collected than the last page's `backup_count`
    (`reported_count`): the runner must not delete from an incomplete listing. Records without a usable `id` are
    kept as they are, for the runner's validation to reject. `conflicting_ids`: ids seen twice with different
    content (the backup changed while we paged, e.g. finished); `conflicting_records` are those later copies, raw,
    so that they are validated too (an invalid record makes a listing untrustworthy wherever it appears).
    `count_changed`: the count moved between pages.
    """

    records: list[Any]
    reported_count: int
    pages: int
    duplicates: int
    conflicting_ids: tuple[str, ...]
    count_changed: bool
    complete: bool
    requests: int
    conflicting_records: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class GraphListing:
    graphs: list[Any]
    reported_count: int
    pages: int
    complete: bool


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """A deletion that worked, or found the backup already gone (`GES.7024`)."""

    outcome: Literal["deleted", "already_deleted"]
    attempts: int
    duration_s: float
    error_code: str | None = None
    status: int = 200
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]
    attempts: int
    duration_s: float
    gone: ApiError | None = None


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


# --------------------------------------------------------------------------------------------------------------------
# The client


class GesClient:
    """One per process: owns the pacing (in-flight cap, per-project pacers) and the retry policy; not the session."""

    __slots__ = ("_backoff", "_observer", "_projects", "_sleep", "_time", "_timeout", "config", "pacing", "session")

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
        self._time: TimeFn = time_fn if time_fn is not None else _loop_time
        self._sleep: SleepFn = sleep_fn if sleep_fn is not None else asyncio.sleep
        self._backoff = Backoff(base_s=self.config.backoff_base_s, cap_s=self.config.backoff_max_s, rng=rng)
        self.pacing = (
            pacing
            if pacing is not None
            else Pacing(self.config.concurrency, self.config.rate_limit_per_s, time_fn=self._time, sleep_fn=self._sleep)
        )
        self._timeout = _timeout(self.config)
        self._projects: dict[tuple[str, str], ProjectClient] = {}

    def project(self, endpoint: str, project_id: str, auth: AuthProvider) -> ProjectClient:
        """The operations of one project at one endpoint. Cached: calling this per request costs a dict lookup."""
        key = (endpoint, project_id)
        cached = self._projects.get(key)
        if cached is not None and cached.auth is auth:
            return cached
        project = ProjectClient(self, endpoint, project_id, auth)
        self._projects[key] = project
        return project

    def __repr__(self) -> str:
        return f"GesClient(config={self.config!r}, pacing={self.pacing!r})"


class ProjectClient:
    """GES v2 calls for one (endpoint, project), with one pacer and one set of credentials."""

    __slots__ = (
        "_base_headers",
        "_client",
        "_host",
        "_pacer",
        "_port",
        "_root",
        "_scheme",
        "auth",
        "endpoint",
        "project_id",
    )

    def __init__(self, client: GesClient, endpoint: str, project_id: str, auth: AuthProvider) -> None:
        base = URL(endpoint)
        if base.scheme not in ("http", "https") or not base.raw_host or base.query_string or base.fragment:
            raise ValueError(f"the GES endpoint must be an http(s) URL without query or fragment, got {endpoint!r}")
        if base.raw_user is not None or base.raw_password is not None:
            raise ValueError("the GES endpoint must not carry credentials")
        segment = path_segment(project_id, field="project_id", operation="project")
        bound = getattr(auth, "project_id", None)
        if bound is not None and bound != project_id:
            # A token is scoped to one project, and X-Project-Id names one: using it for another cannot work.
            raise ValueError(f"credentials for project {bound!r} used for project {project_id!r}")
        if isinstance(auth, PasswordAuth):
            auth.bind_session(client.session)
        self._client = client
        self.endpoint = endpoint
        self.project_id = project_id
        self.auth = auth
        self._scheme = base.scheme
        self._host = base.raw_host
        self._port = base.explicit_port
        self._root = f"{base.raw_path.rstrip('/')}/v2/{segment}"
        self._pacer: RatePacer = client.pacing.pacer(f"{base.origin()}{base.raw_path.rstrip('/')}", project_id)
        # Signed by AK/SK; the same dict for every request (never mutated).
        self._base_headers: Mapping[str, str] = {"Content-Type": _JSON}

    def __repr__(self) -> str:
        return f"ProjectClient(endpoint={self.endpoint!r}, project_id={self.project_id!r}, auth={self.auth!r})"

    @property
    def pacer(self) -> RatePacer:
        return self._pacer

    def _url(self, path: str, query: str = "") -> URL:
        return URL.build(
            scheme=self._scheme,
            host=self._host,
            port=self._port,
            path=self._root + path,
            query_string=query,
            encoded=True,
        )

    # --- the request engine ------------------------------------------------------------------------------------

    async def _attempt(
        self, operation: str, method: str, url: URL, deadline: float | None
    ) -> tuple[int, bytes, CIMultiDictProxy[str], Mapping[str, str], int]:
        """One try: (status, body, answer headers, headers sent, pacer generation). Raises mapped errors."""
        client = self._client
        async with client.pacing.in_flight:
            auth_headers = await self.auth.headers(method, url, self._base_headers, b"")
            generation = await self._pacer.acquire()
            if deadline is not None and client._time() >= deadline:
                raise DeadlineExceeded("the deadline passed before the request could be sent", operation=operation)
            headers = {**self._base_headers, **auth_headers}
            started = client._time()
            try:
                async with client.session.request(
                    method, url, headers=headers, timeout=client._timeout, allow_redirects=False
                ) as response:
                    body = await response.read()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise error_from_transport(operation, exc) from exc
            client._observer.on_response(operation, response.status, client._time() - started)
            return response.status, body, response.headers, headers, generation

    async def _request(
        self, operation: str, method: str, url: URL, *, deadline: float | None, gone_ok: bool = False
    ) -> _Answer:
        """Send with retries until a 2xx (or, with `gone_ok`, a GES.7024); raise the last error otherwise."""
        client = self._client
        config = client.config
        observer = client._observer
        started = client._time()
        sent = 0  # attempts that reached the network (or failed trying)
        tries = 0  # attempts that count against max_attempts: the post-refresh retry does not
        refreshed = False
        last: GesError | None = None
        while True:
            if deadline is not None and client._time() >= deadline:
                raise self._deadline(operation, sent, last, "the deadline passed before the next attempt") from last
            sent += 1
            tries += 1
            error: GesError
            try:
                status, body, headers, sent_headers, generation = await self._attempt(operation, method, url, deadline)
            except DeadlineExceeded:
                raise self._deadline(
                    operation, sent - 1, last, "the deadline passed before the request was sent"
                ) from last
            except GesError as exc:
                error = exc
            else:
                if 200 <= status < 300:
                    observer.on_auth_ok()
                    return _Answer(status, body, headers, sent, client._time() - started)
                api_error = error_from_response(operation, status, body, headers)
                code = api_error.error_code
                if code is not None and code.startswith("GES."):
                    observer.on_auth_ok()  # GES itself answered: the gateway accepted the credentials
                if gone_ok and code == BACKUP_GONE_CODE and status in (400, 404):
                    return _Answer(status, body, headers, sent, client._time() - started, gone=api_error)
                if isinstance(api_error, Unauthorized) and not refreshed:
                    refreshed = True
                    if await self.auth.invalidate(sent_headers):
                        tries -= 1
                        last = api_error
                        observer.on_retry(operation, sent, api_error, 0.0)
                        continue
                if isinstance(api_error, ThrottledError):
                    pause = api_error.retry_after_s
                    self._pacer.throttled(generation, None if pause is None else min(pause, config.backoff_max_s))
                error = api_error
            last = error
            if not error.retryable or tries >= config.max_attempts:
                error.attempts = sent
                raise error
            retry_after = error.retry_after_s if isinstance(error, ApiError) else None
            delay = client._backoff.delay(tries, retry_after)
            if isinstance(error, ThrottledError):
                observer.on_throttled(operation, error.status or 429, delay)
            observer.on_retry(operation, sent, error, delay)
            if deadline is not None and client._time() + delay > deadline:
                why = f"a retry in {delay:.3f} s would start after the deadline"
                raise self._deadline(operation, sent, error, why) from error
            await client._sleep(delay)

    @staticmethod
    def _deadline(operation: str, attempts: int, last: GesError | None, why: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            why + (f"; last error: {last}" if last is not None else ""),
            operation=operation,
            status=None if last is None else last.status,
            error_code=None if last is None else last.error_code,
            request_id=None if last is None else last.request_id,
            attempts=attempts,
        )

    # --- paging ------------------------------------------------------------------------------------------------

    async def _pages(
        self,
        operation: str,
        path: str,
        list_key: str,
        count_key: str,
        *,
        deadline: float | None,
        page_size: int | None,
    ) -> AsyncIterator[Page]:
        config = self._client.config
        limit = page_size if page_size is not None else config.page_size
        if not 1 <= limit <= 1000:
            raise ValueError(f"page_size must be within 1..1000, got {limit}")
        offset = 0
        number = 0
        first_total: int | None = None
        while True:
            if number >= config.max_pages:
                raise ListingError(
                    f"more than {config.max_pages} pages: the server pages forever",
                    operation=operation,
                    reason="endless",
                    offset=offset,
                )
            answer = await self._request(
                operation, "GET", self._url(path, f"offset={offset}&limit={limit}"), deadline=deadline
            )
            items, total = _parse_page(operation, answer.body, list_key, count_key, offset)
            number += 1
            if first_total is None:
                first_total = total
            yield Page(items, total, offset, number, answer.attempts)
            # Advance by what came, not by `limit`: a server may cap the page size below what we asked for.
            offset += len(items)
            if not items or offset >= total:
                return
            if offset > 2 * first_total + 10 * limit:
                # The count keeps growing ahead of us: items are created faster than we page, or the server lies.
                raise ListingError(
                    f"{count_key} grew from {first_total} to {total} while paging: the server pages forever",
                    operation=operation,
                    reason="endless",
                    offset=offset,
                )

    def iter_graphs(self, *, deadline: float | None = None, page_size: int | None = None) -> AsyncIterator[Page]:
        """Pages of `GET /v2/{project_id}/graphs` (`graphs`, `graph_count`)."""
        return self._pages(OP_LIST_GRAPHS, "/graphs", "graphs", "graph_count", deadline=deadline, page_size=page_size)

    def iter_backup_pages(self, *, deadline: float | None = None, page_size: int | None = None) -> AsyncIterator[Page]:
        """Pages of `GET /v2/{project_id}/graphs/backups`: every backup of the project, of live graphs or not."""
        return self._pages(
            OP_LIST_BACKUPS, "/graphs/backups", "backup_list", "backup_count", deadline=deadline, page_size=page_size
        )

    def iter_graph_backup_pages(
        self, graph_id: str, *, deadline: float | None = None, page_size: int | None = None
    ) -> AsyncIterator[Page]:
        """Pages of `GET /v2/{project_id}/graphs/{graph_id}/backups`. `InvalidIdentifier` at once for a bad id."""
        segment = path_segment(graph_id, field="graph_id", operation=OP_LIST_GRAPH_BACKUPS)
        return self._pages(
            OP_LIST_GRAPH_BACKUPS,
            f"/graphs/{segment}/backups",
            "backup_list",
            "backup_count",
            deadline=deadline,
            page_size=page_size,
        )

    async def list_backups(
        self,
        *,
        deadline: float | None = None,
        page_size: int | None = None,
        parse: Callable[[Any], Any] | None = None,
    ) -> BackupListing:
        """Every backup of the project, de-duplicated; see `BackupListing` for what `complete` means.

        With `parse`, each record is converted as its page arrives (and its exceptions propagate): the listing then
        holds the parsed values, not the raw JSON, which is what bounds memory on projects with many backups.
        """
        return await _collect_backups(self.iter_backup_pages(deadline=deadline, page_size=page_size), parse)

    async def list_graph_backups(
        self, graph_id: str, *, deadline: float | None = None, page_size: int | None = None
    ) -> BackupListing:
        return await _collect_backups(self.iter_graph_backup_pages(graph_id, deadline=deadline, page_size=page_size))

    async def list_graphs(self, *, deadline: float | None = None, page_size: int | None = None) -> GraphListing:
        graphs: list[Any] = []
        seen: set[str] = set()
        total = pages = 0
        async for page in self.iter_graphs(deadline=deadline, page_size=page_size):
            pages += 1
            total = page.total
            for graph in page.items:
                graph_id = graph.get("id") if isinstance(graph, dict) else None
                if isinstance(graph_id, str):
                    if graph_id in seen:
                        continue
                    seen.add(graph_id)
                graphs.append(graph)
        return GraphListing(graphs, total, pages, len(seen) >= total)

    # --- deletion ----------------------------------------------------------------------------------------------

    async def delete_backup(self, graph_id: str, backup_id: str, *, deadline: float | None = None) -> DeleteResult:
        """Delete one backup: `deleted`, or `already_deleted` when GES says it does not exist (`GES.7024`, on a 400
        or a 404). Anything else raises a `GesError` carrying `attempts`; `InvalidIdentifier` before any request."""
        graph = path_segment(graph_id, field="graph_id", operation=OP_DELETE_BACKUP)
        backup = path_segment(backup_id, field="backup_id", operation=OP_DELETE_BACKUP)
        url = self._url(f"/graphs/{graph}/backups/{backup}")
        answer = await self._request(OP_DELETE_BACKUP, "DELETE", url, deadline=deadline, gone_ok=True)
        if answer.gone is not None:
            return DeleteResult(
                "already_deleted",
                answer.attempts,
                answer.duration_s,
                answer.gone.error_code,
                answer.status,
                answer.gone.request_id,
            )
        return DeleteResult(
            "deleted", answer.attempts, answer.duration_s, None, answer.status, answer.headers.get("X-Request-Id")
        )


def _parse_page(operation: str, body: bytes, list_key: str, count_key: str, offset: int) -> tuple[list[Any], int]:
    def invalid(why: str) -> ListingError:
        return ListingError(
            f"page at offset {offset} is not a valid listing: {why}",
            operation=operation,
            reason="invalid_page",
            offset=offset,
        )

    try:
        data = json.loads(body)
    except ValueError:
        raise invalid("the body is not JSON") from None
    if not isinstance(data, dict):
        raise invalid(f"the body is a JSON {type(data).__name__}, not an object")
    items = data.get(list_key)
    if not isinstance(items, list):
        raise invalid(f"{list_key!r} is {type(items).__name__}, not a list")
    total = data.get(count_key)
    # bool is an int in Python; a JSON true is not a count.
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise invalid(f"{count_key!r} is {total!r}, not a count")
    return items, total


async def _collect_backups(pages: AsyncIterator[Page], parse: Callable[[Any], Any] | None = None) -> BackupListing:
    records: list[Any] = []
    seen: dict[str, Any] = {}
    conflicts: dict[str, None] = {}  # ordered set
    conflicting: list[Any] = []
    duplicates = 0
    count = 0
    counts: set[int] = set()
    page_count = 0
    requests = 0
    async for page in pages:
        page_count += 1
        requests += page.attempts
        count = page.total
        counts.add(page.total)
        for raw in page.items:
            backup_id = raw.get("id") if isinstance(raw, dict) else None
            record = raw if parse is None else parse(raw)
            if not isinstance(backup_id, str) or not backup_id:
                records.append(record)  # kept for the runner to reject: it makes the listing invalid
                continue
            first = seen.get(backup_id)
            if first is None:
                seen[backup_id] = record
                records.append(record)
                continue
            duplicates += 1
            if first != record:
                conflicts[backup_id] = None
                conflicting.append(record)
    return BackupListing(
        records=records,
        reported_count=count,
        pages=page_count,
        duplicates=duplicates,
        conflicting_ids=tuple(conflicts),
        count_changed=len(counts) > 1,
        complete=len(seen) >= count,
        requests=requests,
        conflicting_records=tuple(conflicting),
    )
