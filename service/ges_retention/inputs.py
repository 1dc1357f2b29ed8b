"""Inputs of the command line that are read from files and strings: an exported backup list (`--from-file`) and an
instant (`--now`). Errors are `UsageError` (exit 2) in one line, except an export that fails the listing trust rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ges_retention.backup import Backup, InvalidBackupRecord
from ges_retention.errors import GesRetentionError, UsageError, shorten
from ges_retention.exit_codes import ExitCode

__all__ = ["MAX_EXPORT_BYTES", "BackupExport", "IncompleteExport", "parse_instant", "parse_now", "read_backup_export"]

MAX_EXPORT_BYTES = 512 * 1024 * 1024
# Planning subtracts durations from `now` and looks up to 5 minutes ahead of it: keep room on both sides.
_LATEST_NOW = datetime(9000, 1, 1, tzinfo=UTC)
_EARLIEST_NOW = datetime(1900, 1, 1, tzinfo=UTC)


class IncompleteExport(GesRetentionError):
    """An exported list-backups body with fewer unique ids than its `backup_count`: `run` would refuse such a
    listing, so `plan` does too (exit 1, like a failed listing)."""

    exit_code = ExitCode.FAILED


@dataclass(frozen=True, slots=True)
class BackupExport:
    backups: list[Backup]
    backup_count: int | None  # the body's `backup_count`; None for a bare JSON array


def parse_now(text: str | None) -> datetime:
    """`--now`: ISO 8601, no offset = UTC; None = the clock. Aware, in UTC."""
    if text is None:
        return datetime.now(UTC)
    return parse_instant(text, "--now")


def parse_instant(text: str, flag: str) -> datetime:
    """An instant given as `flag` (`--now`, `--until`): ISO 8601, no offset = UTC. Aware, in UTC; `UsageError`."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise UsageError(f"{flag}: not an ISO 8601 date-time: {shorten(text)}") from None
    out_of_range = UsageError(f"{flag}: {shorten(text)} is out of range (years 1900 to 8999)")
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # an offset that moves it past year 9999 or before year 1
        raise out_of_range from None
    if not _EARLIEST_NOW <= value < _LATEST_NOW:
        raise out_of_range
    return value


def read_backup_export(path: str) -> list[Backup]:
    """An exported list: a JSON array of backups, or a list-backups response body (`backup_count`, `backup_list`)."""
    export = read_export(path)
    if export.backup_count is not None and len(export.backups) < export.backup_count:
        raise IncompleteExport(
            f"--from-file {path}: the export is incomplete: {len(export.backups)} unique backup ids, fewer than its "
            f"backup_count {export.backup_count} (a listing like this deletes nothing); export every page"
        )
    return export.backups


def read_export(path: str) -> BackupExport:
    """The export's backups (validated, ids unique) and its `backup_count`, without judging completeness."""
    data = _load_json(path)
    count: int | None = None
    if isinstance(data, dict) and ("backup_list" in data or "backup_count" in data):
        count = _backup_count(path, data.get("backup_count"))
        records = data.get("backup_list")
        if records is None:
            if count != 0:
                raise UsageError(f"--from-file {path}: 'backup_list' is missing, and 'backup_count' is not 0")
            records = []
    elif isinstance(data, list):
        records = data
    else:
        raise UsageError(f"--from-file {path}: expected a JSON array of backups or a body with 'backup_list'")
    if not isinstance(records, list):
        raise UsageError(f"--from-file {path}: 'backup_list' must be an array")
    return BackupExport(_backups(path, records), count)


def _load_json(path: str) -> Any:
    try:
        size = Path(path).stat().st_size
        if size > MAX_EXPORT_BYTES:
            raise UsageError(f"--from-file {path}: larger than {MAX_EXPORT_BYTES // 2**20} MiB")
        with open(path, "rb") as handle:
            return json.load(handle)
    except OSError as exc:
        raise UsageError(f"--from-file {path}: cannot read: {exc.strerror or exc}") from None
    except RecursionError:
        raise UsageError(f"--from-file {path}: not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise UsageError(f"--from-file {path}: not valid JSON: {shorten(str(exc), 200)}") from None


def _backup_count(path: str, value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UsageError(f"--from-file {path}: 'backup_count' must be a whole number >= 0, got {shorten(value)}")
    return value


def _backups(path: str, records: list[Any]) -> list[Backup]:
    backups = []
    seen: set[str] = set()
    for index, record in enumerate(records):
        try:
            backup = Backup.from_api(record)
        except InvalidBackupRecord as exc:
            raise UsageError(f"--from-file {path}: record {index}: {exc}") from None
        if backup.id in seen:
            raise UsageError(f"--from-file {path}: record {index}: duplicate backup id {shorten(backup.id)}")
        seen.add(backup.id)
        backups.append(backup)
    return backups
