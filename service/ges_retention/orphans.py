"""The graph listing's part in a run: which graphs exist, what they are called, and which backups are orphans.

A graph deleted with `keep_backup` leaves backups whose `graph_id` names no existing graph: orphans. The runner lists
the project's graphs **after** its backups listing has completed, so a graph created meanwhile cannot make a backup
look orphaned (its backups, if any, were listed before it; it is in the later graph listing); a graph deleted meanwhile
is simply gone, and its backups are orphans.

Pure: the runner hands in the raw graph records and the facts of their listing. The graph listing is trusted by the
backups listing's rules (complete, every record valid, one name per id); when it is not, the project's listing is not
trusted either and nothing of it is deleted. A graph's name: from any backup record of it (resolved before this),
else from the graph listing; a record and the listing naming one id differently make the listing untrusted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ges_retention.backup import Backup
from ges_retention.errors import shorten

__all__ = ["GraphCheck", "OrphanCheck", "mark_orphans", "trusted_graphs"]


@dataclass(frozen=True, slots=True)
class GraphCheck:
    """The existing graphs (id -> name, "" when the listing gives none), or why the listing cannot be used."""

    names: Mapping[str, str] | None
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class OrphanCheck:
    """The backups with `orphan` set and graph names completed, or why they cannot be trusted."""

    backups: list[Backup] | None
    error_code: str | None = None
    error: str | None = None


def trusted_graphs(
    records: Sequence[Any], *, complete: bool, reported_count: int, later_copies: Sequence[Any] = ()
) -> GraphCheck:
    """The graph listing's facts if they can be acted on: complete, every record valid, one name per id."""
    names: dict[str, str] = {}
    for record in (*records, *later_copies):
        parsed = _graph(record)
        if isinstance(parsed, str):
            return GraphCheck(None, "invalid_graph_record", f"graph listing: {parsed}")
        graph_id, name = parsed
        known = names.setdefault(graph_id, name)
        if known != name:
            error = f"graph listing: graph {shorten(graph_id)} is listed under two names, {known!r} and {name!r}"
            return GraphCheck(None, "conflicting_graph_name", error)
    if not complete:
        error = f"incomplete graph listing: {len(names)} unique graphs, {reported_count} reported"
        return GraphCheck(None, "incomplete_graphs", error)
    return GraphCheck(names)


def _graph(record: Any) -> tuple[str, str] | str:
    """(id, name) of a graph record, or what is wrong with it."""
    if not isinstance(record, Mapping):
        return f"a graph record must be a JSON object, not {type(record).__name__}"
    graph_id = record.get("id")
    if not isinstance(graph_id, str) or not graph_id:
        return f"graph record without a valid 'id' (got {shorten(graph_id)})"
    name = record.get("name")
    if name is None:
        return graph_id, ""
    if not isinstance(name, str):
        return f"graph {shorten(graph_id)}: 'name' must be a string, got {type(name).__name__}"
    return graph_id, name


def mark_orphans(backups: list[Backup], graphs: Mapping[str, str]) -> OrphanCheck:
    """Each backup with `orphan` (its graph id absent from `graphs`) and, when no record named its graph, the name the
    graph listing gives. A record's name and the listing's differing for one id: untrusted.

    The list given is the result's: each backup is replaced in it as it is marked, so that a listing's backups are
    never held twice (every one of them changes: `orphan` goes from unknown to known; 100,000 backups, ~18 MB).
    On an untrusted listing the list is left part-marked: the caller has no use for it then."""
    marked = backups
    for index, backup in enumerate(backups):
        listed = graphs.get(backup.graph_id)
        name = backup.graph_name
        if listed is not None and listed and name and listed != name:
            error = (
                f"graph {shorten(backup.graph_id)} is named {name!r} by its backups and {listed!r} by the graph listing"
            )
            return OrphanCheck(None, "conflicting_graph_name", error)
        if listed and not name:
            name = listed
        orphan = listed is None
        if orphan != backup.orphan or name != backup.graph_name:
            marked[index] = replace(backup, orphan=orphan, graph_name=name)
    return OrphanCheck(marked)
