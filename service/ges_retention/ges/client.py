"""The GES v2 operations the service needs, over one `Transport` (the request engine, `transport.py`).

```
GesClient(session, config)                     one per process: owns the transport (pacing, backoff, observer)
└── .project(endpoint, project_id, auth)       a cheap, cached view of one project
    ├── iter_graphs() / list_graphs()                        GET    /v2/{project_id}/graphs
    ├── iter_backup_pages() / list_backups()                 GET    /v2/{project_id}/graphs/backups
    ├── iter_graph_backup_pages(g) / list_graph_backups(g)   GET    /v2/{project_id}/graphs/{g}/backups
    ├── backup_quota()                                       GET    /v2/{project_id}/graphs/quotas
    └── delete_backup(g, b)                                  DELETE /v2/{project_id}/graphs/{g}/backups/{b}
```

Retries, pacing and deadlines are the transport's (see `transport`); paging, de-duplication and the trust facts of a
listing are `paging`'s. Credentials come in ready to use: a `PasswordAuth` is built with the session it logs in
through, so nothing here needs to know which kind of `AuthProvider` it holds.

Path segments are validated against strict alphabets and percent-encoded before any request: an id can never
change the path (no `/`, `..`, `%`, `?`, `#`).
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from yarl import URL

from ges_retention.endpoints import PROJECT_ID_RE, check_endpoint
from ges_retention.ges.auth import AuthProvider
from ges_retention.ges.errors import InvalidIdentifier
from ges_retention.ges.observe import NullObserver, RequestObserver
from ges_retention.ges.pacing import Pacer, Pacing, SleepFn, TimeFn
from ges_retention.ges.paging import (
    BackupListing,
    GraphListing,
    Listing,
    Page,
    collect_backups,
    collect_graphs,
    iter_pages,
)
from ges_retention.ges.quotas import OP_LIST_QUOTAS, backup_quota_available
from ges_retention.ges.transport import JSON, Call, ClientConfig, Transport, open_session

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
    "Transport",
    "open_session",
    "path_segment",
]

OP_LIST_GRAPHS = "list_graphs"
OP_LIST_BACKUPS = "list_backups"
OP_LIST_GRAPH_BACKUPS = "list_graph_backups"
OP_DELETE_BACKUP = "delete_backup"

_GRAPHS = Listing(OP_LIST_GRAPHS, "graphs", "graph_count")
_BACKUPS = Listing(OP_LIST_BACKUPS, "backup_list", "backup_count")
_GRAPH_BACKUPS = Listing(OP_LIST_GRAPH_BACKUPS, "backup_list", "backup_count")

# The seed: a project id is letters and digits, at most 64. Graph and backup ids are opaque (UUIDs in practice):
# unreserved URL characters only, so that quoting is the identity and no reading of the path can differ.
_RESOURCE_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")


def path_segment(value: object, *, field: str, operation: str) -> str:
    """`value` as one percent-encoded URL path segment, or `InvalidIdentifier` (before anything is sent)."""
    pattern = PROJECT_ID_RE if field == "project_id" else _RESOURCE_ID
    if not isinstance(value, str) or pattern.fullmatch(value) is None or not value.strip("."):
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise InvalidIdentifier(f"{field} {shown} is not a valid identifier", field=field, operation=operation)
    # Both alphabets are unreserved URL characters: percent-encoding leaves such a value as it is, so it is not run
    # (two per deletion). `_UNRESERVED` guards it should an alphabet ever be widened.
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe="")


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """A deletion that worked, or found the backup already gone (`GES.7024`)."""

    outcome: Literal["deleted", "already_deleted"]
    attempts: int
    duration_s: float
    error_code: str | None = None
    status: int = 200
    request_id: str | None = None


class GesClient:
    """One per process: the transport (pacing, retries, observer, clock) and a cache of per-project views.

    The arguments are the transport's (see `Transport`); the session's lifetime is the caller's.
    """

    __slots__ = ("_projects", "transport")

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
        transport = Transport(
            session, config, observer=observer, time_fn=time_fn, sleep_fn=sleep_fn, rng=rng, pacing=pacing
        )
        self.transport = transport
        self._projects: dict[tuple[str, str], ProjectClient] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        """The session requests (and IAM logins, given to `PasswordAuth`) go through."""
        return self.transport.session

    @property
    def config(self) -> ClientConfig:
        return self.transport.config

    @property
    def pacing(self) -> Pacing:
        return self.transport.pacing

    def project(self, endpoint: str, project_id: str, auth: AuthProvider) -> ProjectClient:
        """The operations of one project at one endpoint. Cached: calling this per request costs a dict lookup."""
        key = (endpoint, project_id)
        cached = self._projects.get(key)
        if cached is not None and cached.auth is auth:
            return cached
        project = ProjectClient(self.transport, endpoint, project_id, auth)
        self._projects[key] = project
        return project

    def __repr__(self) -> str:
        return f"GesClient(config={self.config!r}, pacing={self.pacing!r})"


class ProjectClient:
    """GES v2 calls for one (endpoint, project), with one pacer and one set of credentials."""

    __slots__ = ("_base", "_headers", "_pacer", "_root", "_transport", "auth", "endpoint", "project_id")

    def __init__(self, transport: Transport, endpoint: str, project_id: str, auth: AuthProvider) -> None:
        check_endpoint(endpoint, what="the GES endpoint")
        base = URL(endpoint)
        segment = path_segment(project_id, field="project_id", operation="project")
        bound = getattr(auth, "project_id", None)
        if bound is not None and bound != project_id:
            # A token is scoped to one project, and X-Project-Id names one: using it for another cannot work.
            raise ValueError(f"credentials for project {bound!r} used for project {project_id!r}")
        self._transport = transport
        self.endpoint = endpoint
        self.project_id = project_id
        self.auth = auth
        self._base = base
        self._root = f"{base.raw_path.rstrip('/')}/v2/{segment}"
        self._pacer: Pacer = transport.pacer(f"{base.origin()}{base.raw_path.rstrip('/')}", project_id)
        # Signed by AK/SK; the same dict for every request (never mutated).
        self._headers: Mapping[str, str] = {"Content-Type": JSON}

    def __repr__(self) -> str:
        return f"ProjectClient(endpoint={self.endpoint!r}, project_id={self.project_id!r}, auth={self.auth!r})"

    @property
    def pacer(self) -> Pacer:
        return self._pacer

    def _url(self, path: str, query: str = "") -> URL:
        base = self._base
        return URL.build(
            scheme=base.scheme,
            host=base.raw_host or "",
            port=base.explicit_port,
            path=self._root + path,
            query_string=query,
            encoded=True,
        )

    def _call(self, operation: str, method: str, url: URL, *, gone_ok: bool = False) -> Call:
        return Call.to(
            operation, method, url, headers=self._headers, auth=self.auth, pacer=self._pacer, gone_ok=gone_ok
        )

    # --- listings ----------------------------------------------------------------------------------------------

    def _pages(
        self, listing: Listing, path: str, *, deadline: float | None, page_size: int | None
    ) -> AsyncGenerator[Page, None]:
        config = self._transport.config

        async def fetch(offset: int, limit: int) -> tuple[bytes, int]:
            url = self._url(path, f"offset={offset}&limit={limit}")
            answer = await self._transport.send(self._call(listing.operation, "GET", url), deadline=deadline)
            return answer.body, answer.attempts

        limit = page_size if page_size is not None else config.page_size
        return iter_pages(listing, fetch, limit=limit, max_pages=config.max_pages, window=config.concurrency)

    def iter_graphs(self, *, deadline: float | None = None, page_size: int | None = None) -> AsyncGenerator[Page, None]:
        """Pages of `GET /v2/{project_id}/graphs` (`graphs`, `graph_count`)."""
        return self._pages(_GRAPHS, "/graphs", deadline=deadline, page_size=page_size)

    def iter_backup_pages(
        self, *, deadline: float | None = None, page_size: int | None = None
    ) -> AsyncGenerator[Page, None]:
        """Pages of `GET /v2/{project_id}/graphs/backups`: every backup of the project, of live graphs or not."""
        return self._pages(_BACKUPS, "/graphs/backups", deadline=deadline, page_size=page_size)

    def iter_graph_backup_pages(
        self, graph_id: str, *, deadline: float | None = None, page_size: int | None = None
    ) -> AsyncGenerator[Page, None]:
        """Pages of `GET /v2/{project_id}/graphs/{graph_id}/backups`. `InvalidIdentifier` at once for a bad id."""
        segment = path_segment(graph_id, field="graph_id", operation=OP_LIST_GRAPH_BACKUPS)
        return self._pages(_GRAPH_BACKUPS, f"/graphs/{segment}/backups", deadline=deadline, page_size=page_size)

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
        `ListingError` (reason `repeating`) when the server answers pages of ids already seen before the count.
        """
        pages = self.iter_backup_pages(deadline=deadline, page_size=page_size)
        return await collect_backups(OP_LIST_BACKUPS, pages, parse)

    async def list_graph_backups(
        self, graph_id: str, *, deadline: float | None = None, page_size: int | None = None
    ) -> BackupListing:
        pages = self.iter_graph_backup_pages(graph_id, deadline=deadline, page_size=page_size)
        return await collect_backups(OP_LIST_GRAPH_BACKUPS, pages)

    async def list_graphs(self, *, deadline: float | None = None, page_size: int | None = None) -> GraphListing:
        """Every graph of the project, paged like the backups (same paging function, same trust facts)."""
        return await collect_graphs(OP_LIST_GRAPHS, self.iter_graphs(deadline=deadline, page_size=page_size))

    async def backup_quota(self, *, deadline: float | None = None) -> int | None:
        """What is left of the project's backup quota (-1 = unlimited), or None when the answer has no `backup`
        entry. A failed call raises `GesError`; an unreadable answer `QuotaError`."""
        call = self._call(OP_LIST_QUOTAS, "GET", self._url("/graphs/quotas"))
        answer = await self._transport.send(call, deadline=deadline)
        return backup_quota_available(answer.body)

    # --- deletion ----------------------------------------------------------------------------------------------

    async def delete_backup(self, graph_id: str, backup_id: str, *, deadline: float | None = None) -> DeleteResult:
        """Delete one backup: `deleted`, or `already_deleted` when GES says it does not exist (`GES.7024`, on a 400
        or a 404). Anything else raises a `GesError` carrying `attempts`; `InvalidIdentifier` before any request."""
        graph = path_segment(graph_id, field="graph_id", operation=OP_DELETE_BACKUP)
        backup = path_segment(backup_id, field="backup_id", operation=OP_DELETE_BACKUP)
        url = self._url(f"/graphs/{graph}/backups/{backup}")
        call = self._call(OP_DELETE_BACKUP, "DELETE", url, gone_ok=True)
        answer = await self._transport.send(call, deadline=deadline)
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
