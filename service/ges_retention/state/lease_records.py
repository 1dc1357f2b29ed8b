"""The values of per-policy leases (`state/leases.py`): the fencing token, a take, a row as others see it, a
renewal's report; the TTL rule; the fencing check an intent batch runs inside its own transaction
(`PostgresStore.write_intents`); and the spreading rule's view of the table. No I/O but `fence`'s one query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ges_retention.state.errors import LeaseLost
from ges_retention.state.sql import Tx

__all__ = [
    "DEFAULT_TTL_S",
    "SAFETY_MARGIN_S",
    "Lease",
    "LeaseRow",
    "RenewReport",
    "Taken",
    "check_ttl",
    "fence",
    "holders_by_policy",
]

DEFAULT_TTL_S = 30.0
SAFETY_MARGIN_S = 1.0
"""A lease is trusted locally until last renewal + TTL - this: the margin absorbs clock-rate drift and latency."""


@dataclass(frozen=True, slots=True)
class Lease:
    """The fencing token of a held lease."""

    policy: str
    holder: str
    generation: int


@dataclass(frozen=True, slots=True)
class Taken:
    """A lease just taken. `previous_holder` held it before (None for a new row); `takeover` says that holder lost
    it mid-run (expired while its `run_id` was set) or handed it over while shutting down mid-run."""

    lease: Lease
    previous_holder: str | None
    takeover: bool


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """A row of the lease table as another process sees it. `live`: unexpired on the database clock."""

    policy: str
    holder: str
    generation: int
    expires_at: datetime | None
    live: bool
    running: bool


@dataclass(frozen=True, slots=True)
class RenewReport:
    renewed: tuple[Lease, ...]
    lost: tuple[Lease, ...]


def check_ttl(ttl_s: float) -> None:
    if not ttl_s > SAFETY_MARGIN_S:
        raise ValueError(f"a lease TTL must exceed {SAFETY_MARGIN_S:g} s, got {ttl_s:g}")


async def fence(tx: Tx, lease: Lease, *, location: str) -> None:
    """Inside a transaction: `LeaseLost` unless `lease` is still held at its generation and unexpired. `FOR SHARE`
    keeps a concurrent taker (`FOR UPDATE`) waiting until this transaction ends."""
    rows = await tx.fetch(
        "SELECT holder, generation, expires_at > now() FROM leases WHERE policy = ? FOR SHARE", (lease.policy,)
    )
    if rows and rows[0][0] == lease.holder and int(rows[0][1]) == lease.generation and rows[0][2]:
        return
    holder = str(rows[0][0]) if rows and rows[0][2] else None
    raise LeaseLost(
        f"the lease of policy {lease.policy!r} (generation {lease.generation}) is no longer held by {lease.holder}"
        + (f"; {holder} holds it" if holder and holder != lease.holder else ""),
        location=location,
        policy=lease.policy,
        holder=holder,
        generation=lease.generation,
    )


def holders_by_policy(rows: Mapping[str, LeaseRow]) -> dict[str, str]:
    """Live holders by policy (expired and released rows left out): the spreading rule's view."""
    return {policy: row.holder for policy, row in rows.items() if row.live}
