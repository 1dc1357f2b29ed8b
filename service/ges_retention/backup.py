"""The `Backup` value type, built from one record of the GES API's JSON.

The API grows: unknown fields are tolerated. A record that lacks what retention needs (`id`, `graph_id`, `status`,
`start_timestamp`) or carries it with the wrong type is an `InvalidBackupRecord`, never a half-built backup: the
caller decides that the whole listing is then untrustworthy.

`size` (MB) may be absent or null (a backup in progress may not know it yet): `size_mb` is then None and left out of
every sum. A negative or non-numeric `size` is a record that cannot be trusted, like a bad timestamp. `encrypted` is
shown, never decided on; a non-boolean one is invalid too. `orphan` is not the API's: the runner sets it once the
graph listing says whether the backup's graph still exists (None = not known, as in an export).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ges_retention.errors import GesRetentionError, shorten

__all__ = ["KNOWN_STATUSES", "Backup", "InvalidBackupRecord"]

KNOWN_STATUSES = frozenset({"success", "failed", "backing_up"})

# 1970 .. 9999: a timestamp outside this is not a real backup time, whatever the type says.
_MIN_TS_MS = 0
_MAX_TS_MS = 253_402_300_799_999


class InvalidBackupRecord(GesRetentionError, ValueError):
    """A backup record from the API (or an export) cannot be trusted."""

    def __init__(self, message: str, *, backup_id: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.backup_id = backup_id
        self.field = field


@dataclass(frozen=True, slots=True)
class Backup:
    """One GES graph backup, as retention sees it.

    `start_ms` is the API's `start_timestamp`: epoch milliseconds, UTC. Retention arithmetic uses it, never the
    zone-less `start_time` string.
    """

    id: str
    graph_id: str
    status: str
    start_ms: int
    name: str = ""
    graph_name: str = ""
    backup_method: str = ""
    size_mb: float | None = None
    encrypted: bool | None = None
    orphan: bool | None = None

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_ms / 1000, UTC)

    @classmethod
    def from_api(cls, record: Any) -> Backup:
        """Build a backup from one API record; raise `InvalidBackupRecord` when it cannot be trusted."""
        if not isinstance(record, Mapping):
            raise InvalidBackupRecord(f"a backup record must be a JSON object, not {type(record).__name__}")
        raw_id = record.get("id")
        backup_id = raw_id if isinstance(raw_id, str) and raw_id else None
        if backup_id is None:
            raise InvalidBackupRecord("backup record without a valid 'id'", field="id")
        graph_id = _required_str(record, "graph_id", backup_id)
        status = _required_str(record, "status", backup_id)
        ts = record.get("start_timestamp")
        # bool is an int in Python; a JSON true is not a timestamp.
        if not isinstance(ts, int) or isinstance(ts, bool):
            raise InvalidBackupRecord(
                f"backup {shorten(backup_id)}: 'start_timestamp' must be an integer (epoch ms), got {shorten(ts)}",
                backup_id=backup_id,
                field="start_timestamp",
            )
        if not _MIN_TS_MS <= ts <= _MAX_TS_MS:
            raise InvalidBackupRecord(
                f"backup {shorten(backup_id)}: 'start_timestamp' {shorten(ts)} is out of range (years 1970 to 9999)",
                backup_id=backup_id,
                field="start_timestamp",
            )
        # Values that repeat across a project's backups (a graph's id and name, a status, a method) are kept once:
        # JSON parsing makes a new string for each, and at 100,000 backups those copies were ~20 MB of the
        # listing's peak memory. The backup's own id and name are unique: interning them would only cost.
        return cls(
            id=backup_id,
            graph_id=_intern(graph_id),
            status=_intern(status),
            start_ms=ts,
            name=_optional_str(record, "name", backup_id),
            graph_name=_intern(_optional_str(record, "graph_name", backup_id)),
            backup_method=_intern(_optional_str(record, "backup_method", backup_id)),
            size_mb=_size_mb(record, backup_id),
            encrypted=_encrypted(record, backup_id),
        )

    def to_api(self) -> dict[str, Any]:
        """The API-shaped record (the fields retention knows), for exports and the emulator."""
        start = self.start
        return {
            "id": self.id,
            "name": self.name,
            "backup_method": self.backup_method,
            "graph_id": self.graph_id,
            "graph_name": self.graph_name,
            "status": self.status,
            "start_timestamp": self.start_ms,
            "start_time": start.strftime("%Y-%m-%dT%H:%M:%S"),
            "size": _api_size(self.size_mb),
            "encrypted": self.encrypted,
        }


def _api_size(size_mb: float | None) -> int | float | None:
    if size_mb is None or not size_mb.is_integer():
        return size_mb
    return int(size_mb)


def _size_mb(record: Mapping[str, Any], backup_id: str) -> float | None:
    """`size` in MB: None when absent or null; a negative, non-finite or non-numeric size is an invalid record."""
    value = record.get("size")
    if value is None:
        return None
    size: float | None = None
    # bool is an int in Python; a JSON true is not a size. A JSON integer too large for a float is no size either.
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            size = float(value)
        except OverflowError:
            size = None
    if size is None or not math.isfinite(size) or size < 0:
        raise InvalidBackupRecord(
            f"backup {shorten(backup_id)}: 'size' must be a number of MB >= 0 (or absent), got {shorten(value)}",
            backup_id=backup_id,
            field="size",
        )
    return size


def _encrypted(record: Mapping[str, Any], backup_id: str) -> bool | None:
    value = record.get("encrypted")
    if value is None or isinstance(value, bool):
        return value
    raise InvalidBackupRecord(
        f"backup {shorten(backup_id)}: 'encrypted' must be true or false, got {shorten(value)}",
        backup_id=backup_id,
        field="encrypted",
    )


def _intern(value: str) -> str:
    # `sys.intern` takes exact `str` only; a subclass (never from JSON, possible from a caller) is kept as it is.
    return sys.intern(value) if type(value) is str else value


def _required_str(record: Mapping[str, Any], key: str, backup_id: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidBackupRecord(
            f"backup {shorten(backup_id)}: {key!r} must be a non-empty string, got {shorten(value)}",
            backup_id=backup_id,
            field=key,
        )
    return value


def _optional_str(record: Mapping[str, Any], key: str, backup_id: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidBackupRecord(
            f"backup {shorten(backup_id)}: {key!r} must be a string, got {type(value).__name__}",
            backup_id=backup_id,
            field=key,
        )
    return value
