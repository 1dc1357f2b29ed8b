"""Versioned schema migrations, one module per version, applied in order inside one transaction each.

Each module defines `NAME` and `SQL`: statements written once for both backends, with `{ts}` (a timestamp:
ISO 8601 UTC text on SQLite, `timestamptz` on PostgreSQL), `{serial}` (an auto-increment primary key), `{real}`,
`{bigint}` filled in per dialect. A migration is never edited once released: a change is a new version. The version
applied is recorded in `schema_migrations` (one row per version, with when); the current version is the largest.
A state whose version is larger than `CURRENT_VERSION` was written by a newer program and is refused untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ges_retention.state.migrations import (
    v0001_journal,
    v0002_gate_and_locks,
    v0003_leases,
    v0004_closed_reasons,
    v0005_active_index_only,
)

__all__ = ["CURRENT_VERSION", "MIGRATIONS", "Migration", "render"]

Dialect = Literal["sqlite", "postgresql"]

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"ts": "TEXT", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL", "bigint": "INTEGER"},
    "postgresql": {
        "ts": "TIMESTAMPTZ",
        "serial": "BIGSERIAL PRIMARY KEY",
        "real": "DOUBLE PRECISION",
        "bigint": "BIGINT",
    },
}

# Created before any migration so that the version can be read and recorded; part of version 1 in spirit.
VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version {bigint} PRIMARY KEY, name TEXT NOT NULL, applied_at {ts} NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: tuple[str, ...]


def render(statement: str, dialect: Dialect) -> str:
    return statement.format(**_TYPES[dialect])


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, v0001_journal.NAME, v0001_journal.SQL),
    Migration(2, v0002_gate_and_locks.NAME, v0002_gate_and_locks.SQL),
    Migration(3, v0003_leases.NAME, v0003_leases.SQL),
    Migration(4, v0004_closed_reasons.NAME, v0004_closed_reasons.SQL),
    Migration(5, v0005_active_index_only.NAME, v0005_active_index_only.SQL),
)
CURRENT_VERSION = MIGRATIONS[-1].version
assert [m.version for m in MIGRATIONS] == list(range(1, CURRENT_VERSION + 1)), "migrations are numbered 1..N"
