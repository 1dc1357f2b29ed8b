"""Whether a project's backups listing can be acted on (guard 1 of a run): complete, no two copies of one id that
differ, one name per graph id; else the reason it cannot (`ProjectListing` with `backups=None`). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ges_retention.backup import Backup
from ges_retention.ges.client import BackupListing

__all__ = ["ProjectListing", "trusted_backups", "trusted_listing"]


@dataclass(frozen=True, slots=True)
class ProjectListing:
    """A project's backups, or None with the reason the listing cannot be used."""

    backups: list[Backup] | None
    error_code: str | None = None
    error: str | None = None
    conflicting_ids: tuple[str, ...] = ()


def trusted_listing(listing: BackupListing) -> ProjectListing:
    """The listing's backups if they can be acted on; else the reason (code, message) they cannot."""
    backups: list[Backup] = listing.records
    if not listing.complete:
        error = f"incomplete listing: {len(backups)} unique backups, {listing.reported_count} reported"
        return ProjectListing(None, "incomplete", error)
    if listing.conflicting_records:
        conflict = _untrusted_conflict(backups, listing.conflicting_records)
        if conflict is not None:
            return ProjectListing(None, "conflicting_record", conflict)
    return trusted_backups(backups, listing.conflicting_records, conflicting_ids=tuple(listing.conflicting_ids))


def trusted_backups(
    backups: list[Backup], later_copies: Sequence[Backup] = (), *, conflicting_ids: tuple[str, ...] = ()
) -> ProjectListing:
    """The backups with each graph's name resolved from any record of it (so that a record without `graph_name` is
    selected and excluded like its graph), or the reason they cannot be trusted: one graph id under two names."""
    names: dict[str, str] = {}
    for backup in (*backups, *later_copies):
        if not backup.graph_name:
            continue
        known = names.setdefault(backup.graph_id, backup.graph_name)
        if known != backup.graph_name:
            error = f"graph {backup.graph_id!r} is listed under two names, {known!r} and {backup.graph_name!r}"
            return ProjectListing(None, "conflicting_graph_name", error)
    named = [
        replace(b, graph_name=names[b.graph_id]) if not b.graph_name and b.graph_id in names else b for b in backups
    ]
    return ProjectListing(named, conflicting_ids=conflicting_ids)


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
