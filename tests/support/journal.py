"""A journal with a known story, written through the real store: for the `why`, `history` and hold tests.

`seed_journal(location)` records three runs of two policies at fixed instants:
- `r1` (schedule, nightly): `b-del` planned (`expired`) and deleted with request id `req-1`; `b-fail` failed twice.
- `r2` (cli, weekly): `b-pend` pending (two-phase).
- `r3` (http, nightly): `b-held` skipped by its intent batch because of a hold (`cancelled`, `held: ...`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ges_retention.state import (
    BackupFacts,
    Outcome,
    PlannedDeletion,
    RunRecord,
    Scope,
    StateLocation,
    open_store,
)

__all__ = ["ENDPOINT", "NIGHTLY", "T0", "WEEKLY", "planned", "seed_journal"]

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
ENDPOINT = "http://127.0.0.1:8080"
NIGHTLY = Scope(policy="nightly", endpoint=ENDPOINT, project_id="proj1")
WEEKLY = Scope(policy="weekly", endpoint=ENDPOINT, project_id="proj1")


def planned(backup_id: str, *reasons: str) -> PlannedDeletion:
    facts = BackupFacts(
        backup_id=backup_id,
        name=f"nightly-{backup_id}",
        graph_id="g-1",
        graph_name="prod-orders",
        method="auto",
        started_at=T0 - timedelta(days=40),
        size_mb=512.0,
    )
    return PlannedDeletion(facts, reasons or ("expired",))


async def seed_journal(location: StateLocation) -> None:
    """Create the state at `location` and write the story above into it."""
    store = await open_store(location, mode="create")
    assert store is not None
    try:
        await store.start_run(RunRecord("r1", "schedule", ("nightly",), "host-a", T0))
        batch = await store.write_intents("r1", NIGHTLY, [planned("b-del"), planned("b-fail")], now=T0)
        ids = {ticket.backup_id: ticket.deletion_id for ticket in batch.committed}
        await store.record_outcomes(
            [
                Outcome(ids["b-del"], "deleted", request_id="req-1", attempts=1),
                Outcome(ids["b-fail"], "failed", request_id="req-2", attempts=2, error="GES.0001 internal error"),
            ],
            now=T0 + timedelta(seconds=5),
        )
        counts = {"listed": 10, "planned": 2, "deleted": 1, "failed": 1}
        await store.end_run("r1", ended_at=T0 + timedelta(minutes=1), outcome="partial", counts=counts)

        await store.start_run(RunRecord("r2", "cli", ("weekly",), "host-a", T0 + timedelta(days=1)))
        await store.mark_pending("r2", WEEKLY, [planned("b-pend")], now=T0 + timedelta(days=1))
        await store.end_run(
            "r2", ended_at=T0 + timedelta(days=1, minutes=1), outcome="ok", counts={"planned": 1, "pending": 1}
        )

        await store.put_hold("b-held", "legal: case 42", by="cli:test@host", now=T0 + timedelta(days=2))
        await store.start_run(RunRecord("r3", "http", ("nightly",), "host-a", T0 + timedelta(days=2, hours=1)))
        await store.write_intents("r3", NIGHTLY, [planned("b-held")], now=T0 + timedelta(days=2, hours=1))
        await store.end_run(
            "r3", ended_at=T0 + timedelta(days=2, hours=2), outcome="ok", counts={"planned": 1, "deleted": 0}
        )
    finally:
        await store.close()
