"""A policy's `select:`: which backups it manages (graphs by id or name glob, backup methods, names, orphans).

Matching fails closed: what is not known (a graph's name, whether a backup is an orphan) never widens a selection.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import Field

from ges_retention.policy_fields import BackupMethod, Globs, PolicyModel

__all__ = ["Select", "any_glob"]


class Select(PolicyModel):
    """Which backups a policy manages: every condition must hold."""

    graphs: Globs = Field(default_factory=lambda: ["*"], min_length=1)
    exclude_graphs: Globs = Field(default_factory=list)
    # None = every method, including ones not known today. Exact lowercase words, not globs: `[Auto]` or `["*"]`
    # would silently select nothing (or everything).
    backup_methods: Annotated[list[BackupMethod], Field(min_length=1, max_length=100)] | None = None
    names: Globs = Field(default_factory=lambda: ["*"], min_length=1)
    # Backups whose graph no longer exists (deleted with keep_backup): managed like any (include), left alone
    # (exclude), or the only ones managed (only). Deciding needs a live graph listing (not `plan --from-file`).
    orphans: Literal["include", "exclude", "only"] = "include"

    def matches_orphan(self, orphan: bool | None) -> bool:
        """`orphan` None (not known) passes only `include`: `exclude` and `only` need to know (fail closed)."""
        if self.orphans == "include":
            return True
        if orphan is None:
            return False
        return orphan if self.orphans == "only" else not orphan

    def matches_graph(self, graph_id: str, graph_name: str) -> bool:
        """By exact graph id, or by name glob. A graph whose name is unknown (`""`: no record of it carries one)
        fails closed both ways: only `"*"` selects it, and any `exclude_graphs` entry excludes it."""
        if not graph_name:
            if graph_id not in self.graphs and "*" not in self.graphs:
                return False
            return not self.exclude_graphs
        if not _graph_matches(self.graphs, graph_id, graph_name):
            return False
        return not (self.exclude_graphs and _graph_matches(self.exclude_graphs, graph_id, graph_name))

    def matches_backup(self, backup_method: str, name: str) -> bool:
        """The conditions on the backup itself (its graph is checked by `matches_graph`)."""
        if self.backup_methods is not None and backup_method not in self.backup_methods:
            return False
        return any_glob(self.names, name)


def any_glob(patterns: Iterable[str], value: str) -> bool:
    return any(pattern == "*" or fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _graph_matches(patterns: list[str], graph_id: str, graph_name: str) -> bool:
    """Globs on the graph name, or exact graph ids."""
    return graph_id in patterns or any_glob(patterns, graph_name)
