"""`BackupApi`: what a run needs from GES (list a project's backups and graphs, read its backup quota, delete one
backup). GES in production (`service.GesBackupApi`), a dict in the unit tests (`tests/support/memory_api.py`)."""

from __future__ import annotations

from typing import Protocol

from ges_retention.ges.client import BackupListing, DeleteResult, GraphListing

__all__ = ["BackupApi"]


class BackupApi(Protocol):
    """What a run needs from GES: list a project's backups and graphs, read its backup quota, delete one backup."""

    async def list_backups(self, endpoint: str, project_id: str, *, deadline: float) -> BackupListing:
        """Every backup of the project as `Backup` values; raises `GesError` or `InvalidBackupRecord`."""

    async def list_graphs(self, endpoint: str, project_id: str, *, deadline: float) -> GraphListing:
        """Every graph of the project, raw; raises `GesError`."""

    async def backup_quota(self, endpoint: str, project_id: str, *, deadline: float) -> int | None:
        """Backups left in the project's quota (-1 = unlimited; None = not in the answer); raises `GesError`."""

    async def delete_backup(
        self, endpoint: str, project_id: str, graph_id: str, backup_id: str, *, deadline: float
    ) -> DeleteResult:
        """`deleted` or `already_deleted` (GES.7024); anything else raises `GesError`."""
