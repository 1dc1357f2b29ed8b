"""`open_store`: the one way in. Resolves nothing itself: give it a `StateLocation` (`state/location.py`).

Modes (the contract's "Only `run` and `daemon` create or migrate a state"):
- `create`: `run` and `daemon`. Creates the file (and its parent directories) or the tables, migrates an older schema
  (`StoreInfo.created` -> the caller logs `state_created`; `migrated_from` says from which version).
- `existing`: `hold`, `release`, `holds`, `ack`, `why`, `history`. The state must exist at the current version, else
  `StateMissing` / `StateSchemaOutdated` (exit 2, naming the location). `:memory:` is `StateMissing`.
- `read_only`: `plan`. Never creates, migrates or writes (SQLite opened `mode=ro`, PostgreSQL read-only sessions);
  returns None when there is no state; an older or newer one is an error (exit 2).
A newer schema is `StateSchemaTooNew` in every mode, and the state is left untouched.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from ges_retention.state.journal import SqlStore
from ges_retention.state.leases import DEFAULT_TTL_S
from ges_retention.state.location import StateLocation
from ges_retention.state.migrations import CURRENT_VERSION
from ges_retention.state.store_base import Clock, Monotonic, Sleep, utc_now

__all__ = ["OpenMode", "open_store"]

OpenMode = Literal["create", "existing", "read_only"]


async def open_store(
    location: StateLocation,
    *,
    mode: OpenMode = "create",
    clock: Clock = utc_now,
    monotonic: Monotonic | None = None,
    sleep: Sleep = asyncio.sleep,
    holder: str | None = None,
    target_version: int = CURRENT_VERSION,
    lease_ttl_s: float = DEFAULT_TTL_S,
    command_timeout_s: float | None = None,
) -> SqlStore | None:
    """The store at `location`, or None (`read_only` mode only) when there is none. `target_version` below the
    current one exists for the migration tests. PostgreSQL only: `lease_ttl_s` (GES_RETENTION_LEASE_TTL_S), and
    `command_timeout_s`, how long one statement or a pooled connection may be waited for (`COMMAND_TIMEOUT_S`)."""
    if mode not in ("create", "existing", "read_only"):
        raise ValueError(f"unknown open mode {mode!r}")
    if location.kind == "postgresql":
        from ges_retention.state.postgres_open import open_postgres  # asyncpg only when PostgreSQL is used

        return await open_postgres(
            location,
            mode=mode,
            target_version=target_version,
            clock=clock,
            monotonic=monotonic,
            sleep=sleep,
            holder=holder,
            lease_ttl_s=lease_ttl_s,
            **({} if command_timeout_s is None else {"command_timeout_s": command_timeout_s}),
        )
    from ges_retention.state.sqlite_open import open_sqlite

    return await open_sqlite(
        location, mode=mode, target_version=target_version, clock=clock, monotonic=monotonic, sleep=sleep, holder=holder
    )
