"""Opening a PostgreSQL journal: connect, check the schema version, migrate only in `create` mode.

Migrations run under a transaction advisory lock, so replicas starting together migrate once; each version's
statements and its `schema_migrations` row commit together.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from ges_retention.state.errors import StateMissing
from ges_retention.state.leases import DEFAULT_TTL_S, check_ttl
from ges_retention.state.location import StateLocation
from ges_retention.state.migrations import CURRENT_VERSION, MIGRATIONS, VERSION_TABLE, render
from ges_retention.state.postgres import COMMAND_TIMEOUT_S, CONNECT_TIMEOUT_S, PostgresStore, advisory_key
from ges_retention.state.postgres_errors import classify
from ges_retention.state.records import StoreInfo
from ges_retention.state.sqlite_open import _version_error

__all__ = ["open_postgres"]

_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
    ValueError,
)


async def open_postgres(
    location: StateLocation,
    *,
    mode: str,
    target_version: int = CURRENT_VERSION,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    command_timeout_s: float = COMMAND_TIMEOUT_S,
    **options: Any,
) -> PostgresStore | None:
    assert location.url is not None
    check_ttl(float(options.get("lease_ttl_s", DEFAULT_TTL_S)))  # before a connection exists to be left open
    display = location.display
    settings = {"application_name": "ges-retention"}
    # A process frozen in the middle of a transaction (SIGSTOP, a paused VM) must not keep its row locks, or the
    # lease it lost could never be taken over: the server ends such a session after one lease TTL.
    ttl_ms = int(float(options.get("lease_ttl_s", DEFAULT_TTL_S)) * 1000)
    settings["idle_in_transaction_session_timeout"] = str(ttl_ms)
    if mode == "read_only":
        settings["default_transaction_read_only"] = "on"
    try:
        pool = await asyncpg.create_pool(
            location.url,
            min_size=1,
            max_size=4,
            timeout=connect_timeout_s,
            command_timeout=command_timeout_s,
            server_settings=settings,
        )
    except _ERRORS as exc:
        raise classify(exc, location=display, operation="connect") from exc
    try:
        created, found = await _check_and_migrate(pool, mode, target_version)
    except BaseException as exc:
        await pool.close()
        if isinstance(exc, _ERRORS):
            raise classify(exc, location=display, operation="open") from exc
        raise
    if found == 0 and mode != "create":
        await pool.close()
        if mode == "read_only":
            return None
        raise StateMissing(f"no state in {display}: `run` or `daemon` creates it", location=display)
    if found > target_version or (mode != "create" and found < target_version):
        await pool.close()
        raise _version_error(found, target_version, display, mode)
    info = StoreInfo(
        backend="postgresql",
        location=display,
        schema_version=target_version if mode == "create" else found,
        created=created,
        migrated_from=found if (mode == "create" and 0 < found < target_version) else None,
    )
    return PostgresStore(
        info,
        pool=pool,
        url=location.url,
        read_only=mode == "read_only",
        command_timeout_s=command_timeout_s,
        **options,
    )


async def _version(conn: asyncpg.Connection) -> int:
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))


async def _check_and_migrate(pool: asyncpg.Pool, mode: str, target: int) -> tuple[bool, int]:
    async with pool.acquire() as conn:
        found = await _version(conn)
        if mode != "create" or found >= target:
            return False, found
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key("migrate"))
            found = await _version(conn)  # another replica may have migrated it meanwhile
            await conn.execute(render(VERSION_TABLE, "postgresql"))
            for migration in MIGRATIONS:
                if found < migration.version <= target:
                    for statement in migration.sql:
                        await conn.execute(render(statement, "postgresql"))
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())",
                        migration.version,
                        migration.name,
                    )
        return found == 0, found
