"""An in-memory `BackupApi`: the runner's tests need no HTTP server.

Projects hold `Backup` values; a test can make a listing fail or untrustworthy, a deletion fail or find the backup
already gone, and hold deletions at a gate to act while they are in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from ges_retention.backup import Backup
from ges_retention.ges.client import BackupListing, DeleteResult, GraphListing
from ges_retention.ges.errors import GesError


def listing_of(
    backups: Iterable[Backup], *, reported_count: int | None = None, later: Iterable[Backup] = ()
) -> BackupListing:
    """A listing as the client would return it: `later` are later copies of ids already listed."""
    records = list(backups)
    later_copies = tuple(later)
    return BackupListing(
        records=records,
        reported_count=len(records) if reported_count is None else reported_count,
        pages=1,
        duplicates=len(later_copies),
        conflicting_ids=tuple(dict.fromkeys(b.id for b in later_copies)),
        count_changed=False,
        complete=reported_count is None or len(records) >= reported_count,
        requests=1,
        conflicting_records=later_copies,
    )


def graph_listing_of(graphs: dict[str, str], *, reported_count: int | None = None) -> GraphListing:
    """A graph listing as the client would return it, from graph id -> name."""
    records = [{"id": graph_id, "name": name} for graph_id, name in graphs.items()]
    count = len(records) if reported_count is None else reported_count
    return GraphListing(records, count, 1, len(records) >= count)


@dataclass
class MemoryApi:
    projects: dict[str, list[Backup]] = field(default_factory=dict)
    # What to answer instead of the stored backups: a listing, or an exception to raise.
    listings: dict[str, BackupListing | Exception] = field(default_factory=dict)
    delete_errors: dict[str, GesError] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    deleted: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    # When set, every deletion waits for it (after `started` records it).
    gate: asyncio.Event | None = None
    listed: list[tuple[str, str]] = field(default_factory=list)
    # Graph listings: a listing or an exception per project; by default every graph a backup names exists.
    graph_listings: dict[str, GraphListing | Exception] = field(default_factory=dict)
    graphs_listed: list[tuple[str, str]] = field(default_factory=list)
    # Backup quota per project: available (-1 unlimited, None no backup entry) or an exception; default -1.
    quotas: dict[str, int | Exception | None] = field(default_factory=dict)
    _started_changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_started(self, count: int, timeout_s: float = 5.0) -> None:
        """Until `count` deletions have started (bounded)."""
        async with asyncio.timeout(timeout_s):
            while len(self.started) < count:
                self._started_changed.clear()
                await self._started_changed.wait()

    async def list_backups(self, endpoint: str, project_id: str, *, deadline: float) -> BackupListing:
        self.listed.append((endpoint, project_id))
        answer = self.listings.get(project_id)
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return answer
        return listing_of(b for b in self.projects.get(project_id, []) if b.id not in self.deleted)

    async def list_graphs(self, endpoint: str, project_id: str, *, deadline: float) -> GraphListing:
        self.graphs_listed.append((endpoint, project_id))
        answer = self.graph_listings.get(project_id)
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return answer
        names: dict[str, str] = {}
        for backup in self.projects.get(project_id, []):
            names.setdefault(backup.graph_id, backup.graph_name)
        return graph_listing_of(names)

    async def backup_quota(self, endpoint: str, project_id: str, *, deadline: float) -> int | None:
        answer = self.quotas.get(project_id, -1)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def delete_backup(
        self, endpoint: str, project_id: str, graph_id: str, backup_id: str, *, deadline: float
    ) -> DeleteResult:
        self.started.append(backup_id)
        self._started_changed.set()
        if self.gate is not None:
            await self.gate.wait()
        error = self.delete_errors.get(backup_id)
        if error is not None:
            raise error
        if backup_id in self.gone:
            return DeleteResult("already_deleted", 1, 0.01, "GES.7024", 404)
        self.deleted.append(backup_id)
        return DeleteResult("deleted", 1, 0.01)
