"""Which backups a policy manages (its `select:`), decided once per graph for the graph conditions. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ges_retention.backup import Backup
from ges_retention.policy import Policy

__all__ = ["iter_selected", "select_backups"]


def select_backups(backups: Iterable[Backup], policy: Policy) -> list[Backup]:
    """The backups a policy manages."""
    return list(iter_selected(backups, policy))


def iter_selected(backups: Iterable[Backup], policy: Policy) -> Iterator[Backup]:
    """`select_backups`, one backup at a time."""
    select = policy.select
    # Graph conditions are the same for every backup of a graph: decide them once per graph. The backup conditions
    # are skipped when they select everything (every method and the name glob "*").
    every_backup = select.backup_methods is None and "*" in select.names
    any_orphan = select.orphans == "include"
    graph_ok: dict[tuple[str, str], bool] = {}
    for backup in backups:
        key = (backup.graph_id, backup.graph_name)
        ok = graph_ok.get(key)
        if ok is None:
            ok = graph_ok[key] = select.matches_graph(backup.graph_id, backup.graph_name)
        if (
            ok
            and (every_backup or select.matches_backup(backup.backup_method, backup.name))
            and (any_orphan or select.matches_orphan(backup.orphan))
        ):
            yield backup
