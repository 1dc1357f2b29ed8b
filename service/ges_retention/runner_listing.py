"""A run's listing of one `ProjectScope` (endpoint, project_id): the backups (trusted or not, `listing_trust`), then
the graph listing (orphans and names, `orphans.py`), then the backup quota (best effort), each told to the run's
events. A listing that cannot be trusted comes back with its reason: its project deletes nothing."""

from __future__ import annotations

from dataclasses import replace

from ges_retention.backup import InvalidBackupRecord
from ges_retention.backup_api import BackupApi
from ges_retention.events import RunEvents
from ges_retention.ges.errors import GesError
from ges_retention.listing_trust import ProjectListing, trusted_listing
from ges_retention.log_context import log_context
from ges_retention.orphans import mark_orphans, trusted_graphs
from ges_retention.project_scope import ProjectScope

__all__ = ["list_project"]


async def list_project(api: BackupApi, scope: ProjectScope, deadline: float, events: RunEvents) -> ProjectListing:
    """The scope's listing, with orphans marked, or untrusted with its reason; `listing_done` or `listing_failed`."""
    endpoint, project_id = scope
    # The endpoint is bound too: one project id may be listed at two endpoints, and its events must say which.
    with log_context(project_id=project_id, endpoint=endpoint):
        try:
            # Records become `Backup` values page by page; one invalid record, a later copy of an id
            # included, makes the whole listing untrusted.
            checked = trusted_listing(await api.list_backups(endpoint, project_id, deadline=deadline))
        except GesError as exc:
            checked = ProjectListing(None, exc.error_code, str(exc))
        except InvalidBackupRecord as exc:
            checked = ProjectListing(None, "invalid_record", str(exc))
        if checked.backups is not None:
            # Only once the backups listing is complete: see `orphans`.
            checked = await _with_graphs(api, endpoint, project_id, checked, deadline)
        if checked.backups is None:
            events.listing_failed(project_id, checked.error_code, checked.error or "")
        else:
            events.listing_done(project_id, checked.backups, checked.conflicting_ids)
            # Only after a trusted listing: its count is the threshold's, and a project that cannot be listed
            # (refused credentials, an agency withdrawn) would only fail again, with another login.
            await _read_quota(api, endpoint, project_id, len(checked.backups), deadline, events)
        return checked


async def _with_graphs(
    api: BackupApi, endpoint: str, project_id: str, checked: ProjectListing, deadline: float
) -> ProjectListing:
    """The listing with orphans marked and names completed from the graph listing, or untrusted with its reason."""
    try:
        graphs = await api.list_graphs(endpoint, project_id, deadline=deadline)
    except GesError as exc:
        return ProjectListing(None, exc.error_code or "graph_listing_failed", f"graph listing: {exc}")
    check = trusted_graphs(
        graphs.graphs,
        complete=graphs.complete,
        reported_count=graphs.reported_count,
        later_copies=graphs.later_copies,
    )
    if check.names is None:
        return ProjectListing(None, check.error_code, check.error)
    marked = mark_orphans(checked.backups or [], check.names)  # marked in place: the listing is not held twice
    if marked.backups is None:
        return ProjectListing(None, marked.error_code, marked.error)
    return replace(checked, backups=marked.backups)


async def _read_quota(
    api: BackupApi, endpoint: str, project_id: str, listed: int, deadline: float, events: RunEvents
) -> None:
    """Best effort: any failure is the warning `quota_unavailable`, never a failure of the run."""
    try:
        available = await api.backup_quota(endpoint, project_id, deadline=deadline)
    except Exception as exc:  # best effort by contract: the run goes on whatever happened
        events.quota_unavailable(project_id, str(exc) or type(exc).__name__)
        return
    if available is None:
        events.quota_unavailable(project_id, "the quota answer has no 'backup' entry")
    else:
        events.quota_read(project_id, available, listed)
