"""`SqlStore`: every journal operation, written once over a `Tx`, so that SQLite and PostgreSQL behave the same.

A backend subclass supplies `_write()` and `_read()` (an open transaction, with its own errors translated into
`StateError`s), the run and daemon locks, and `close()`. Everything else, including the rules of pruning and the
guarantees listed on `Store` (`state/store.py`), lives here.
"""

# SQL text here is assembled only from constants (column lists, `?` placeholder runs); every value is a parameter.
# ruff: noqa: S608
from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ges_retention.state import deletions
from ges_retention.state.errors import InvalidStateInput, StateUnavailable
from ges_retention.state.gate_records import GateRecords
from ges_retention.state.leases import Lease
from ges_retention.state.locks import RunLock
from ges_retention.state.records import (
    DeletionRecord,
    Hold,
    IntentBatch,
    Outcome,
    PlannedDeletion,
    PruneReport,
    Resolution,
    RunRecord,
    Scope,
    WhyReport,
    validate_backup_id,
    validate_hold_reason,
)
from ges_retention.state.sql import as_time, chunks, from_json, placeholders, required_time, to_json

__all__ = ["SqlStore"]

_RUN_COLUMNS = "run_id, trigger, host, started_at, ended_at, outcome, counts"


class SqlStore(GateRecords):
    """The journal over SQL. Not constructed directly: `open_store` (`state/opening.py`) picks the backend."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outcome_queue: list[tuple[list[Outcome], datetime, asyncio.Future[None]]] = []
        self._outcome_flushing = False

    # ---------------------------------------------------------------------------------------------- runs

    async def start_run(self, run: RunRecord) -> None:
        async with self.writing("start_run") as tx:
            added = await tx.execute(
                "INSERT INTO runs (run_id, trigger, host, started_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (run.run_id, run.trigger, run.host, run.started_at),
            )
            if not added:
                raise ValueError(f"run {run.run_id!r} is already recorded")
            await tx.executemany(
                "INSERT INTO run_policies (run_id, policy) VALUES (?, ?)",
                [(run.run_id, policy) for policy in dict.fromkeys(run.policies)],
            )

    async def end_run(self, run_id: str, *, ended_at: datetime, outcome: str, counts: Mapping[str, Any]) -> bool:
        async with self.writing("end_run") as tx:
            changed = await tx.execute(
                "UPDATE runs SET ended_at = ?, outcome = ?, counts = ? WHERE run_id = ?",
                (ended_at, outcome, to_json(dict(counts)), run_id),
            )
        return changed > 0

    async def get_run(self, run_id: str) -> RunRecord | None:
        runs = await self._runs("WHERE run_id = ?", (run_id,))
        return runs[0] if runs else None

    async def list_runs(
        self, *, policy: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        """Runs newest first; of one policy, started at or after `since`, at most `limit`."""
        where: list[str] = []
        params: list[object] = []
        if policy is not None:
            where.append("run_id IN (SELECT run_id FROM run_policies WHERE policy = ?)")
            params.append(policy)
        if since is not None:
            where.append("started_at >= ?")
            params.append(since)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        clause += " ORDER BY started_at DESC, run_id DESC"
        if limit is not None:
            clause += " LIMIT ?"
            params.append(max(0, int(limit)))
        return await self._runs(clause, params)

    async def _runs(self, clause: str, params: Sequence[object]) -> list[RunRecord]:
        async with self._read("list_runs") as tx:
            rows = await tx.fetch(f"SELECT {_RUN_COLUMNS} FROM runs {clause}", params)
            ids = [row[0] for row in rows]
            policies: dict[str, list[str]] = {run_id: [] for run_id in ids}
            for start in range(0, len(ids), 500):
                batch = ids[start : start + 500]
                for run_id, policy in await tx.fetch(
                    f"SELECT run_id, policy FROM run_policies WHERE run_id IN {placeholders(len(batch))} "
                    "ORDER BY policy",
                    batch,
                ):
                    policies[run_id].append(policy)
        return [
            RunRecord(
                run_id=row[0],
                trigger=row[1],
                host=row[2],
                started_at=required_time(row[3]),
                ended_at=as_time(row[4]),
                outcome=row[5],
                counts=from_json(row[6]) or {},
                policies=tuple(policies[row[0]]),
            )
            for row in rows
        ]

    # ---------------------------------------------------------------------------------------------- deletions

    async def active_deletions(self, scope: Scope) -> list[DeletionRecord]:
        """The `pending` and `deleting` rows of `scope`, oldest first: pending clocks and unresolved intents."""
        return await self._run_script("active_deletions", deletions.active_rows(scope), write=False)

    async def mark_pending(
        self, run_id: str, scope: Scope, items: Sequence[PlannedDeletion], *, now: datetime | None = None
    ) -> dict[str, datetime]:
        script = deletions.mark_pending(run_id, scope, items, self._now(now))
        return await self._run_script("mark_pending", script, write=True)

    async def cancel_pending(
        self,
        run_id: str,
        scope: Scope,
        reasons_by_id: Mapping[str, Sequence[str]],
        *,
        state: str = "cancelled",
        now: datetime | None = None,
    ) -> int:
        script = deletions.cancel_pending(run_id, scope, reasons_by_id, state, self._now(now))
        return await self._run_script("cancel_pending", script, write=True)

    async def write_intents(
        self,
        run_id: str,
        scope: Scope,
        items: Sequence[PlannedDeletion],
        *,
        now: datetime | None = None,
        lease: Lease | None = None,
    ) -> IntentBatch:
        # `lease` fences the batch on PostgreSQL (`PostgresStore.write_intents`). SQLite has no leases: its run lock is
        # an flock, held until the process dies, and one daemon per file.
        script = deletions.write_intents(run_id, scope, items, self._now(now))
        return await self._run_script("write_intents", script, write=True)

    async def record_outcomes(self, outcomes: Sequence[Outcome], *, now: datetime | None = None) -> None:
        """Group commit: outcomes reported while another outcome transaction is open are written together in the
        next one, so 64 DELETEs in flight cost a few commits, not 64. Each call still returns only once its own
        outcomes are committed (or raises what that transaction raised)."""
        if not outcomes:
            return
        if self.read_only:
            self.writing("record_outcomes")  # raises StateReadOnly
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outcome_queue.append((list(outcomes), self._now(now), waiter))
        if not self._outcome_flushing:
            await self._flush_outcomes()
        await waiter

    async def _flush_outcomes(self) -> None:
        self._outcome_flushing = True
        batch: list[tuple[list[Outcome], datetime, asyncio.Future[None]]] = []
        try:
            while self._outcome_queue:
                batch, self._outcome_queue = self._outcome_queue, []
                try:
                    rows = [(o, at) for outcomes, at, _ in batch for o in outcomes]
                    await self._run_script("record_outcomes", deletions.record_outcomes(rows), write=True)
                except Exception as exc:
                    for _, _, waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(exc)
                else:
                    for _, _, waiter in batch:
                        if not waiter.done():
                            waiter.set_result(None)
                batch = []
        except BaseException:  # cancelled mid-write: nobody may wait forever for a commit that will not come
            for _, _, waiter in batch + self._outcome_queue:
                if not waiter.done():
                    waiter.set_exception(
                        StateUnavailable(
                            "an outcome write was interrupted", location=self.info.location, operation="record_outcomes"
                        )
                    )
            self._outcome_queue = []
            raise
        finally:
            self._outcome_flushing = False

    async def resolve_deleting(
        self,
        run_id: str,
        scope: Scope,
        listed_ids: Collection[str],
        *,
        lock: RunLock | None = None,
        now: datetime | None = None,
    ) -> Resolution:
        lock_held = lock is not None and lock.held and lock.owner is self and lock.policy == scope.policy
        script = deletions.resolve_deleting(run_id, scope, listed_ids, self._now(now), lock_held=lock_held)
        return await self._run_script("resolve_deleting", script, write=True)

    async def pending_counts(self) -> dict[str, int]:
        """Pending rows per policy (the `ges_retention_pending_deletions` gauge)."""
        async with self._read("pending_counts") as tx:
            rows = await tx.fetch(
                f"SELECT policy, COUNT(*) FROM deletions WHERE {deletions.ACTIVE} AND state = 'pending' GROUP BY policy"
            )
        return {policy: int(count) for policy, count in rows}

    # ---------------------------------------------------------------------------------------------- holds

    async def put_hold(
        self, backup_id: str, reason: str, *, until: datetime | None = None, by: str = "", now: datetime | None = None
    ) -> Hold:
        """Place (or replace) the hold of a backup. `ValueError` for a malformed id or reason."""
        validate_backup_id(backup_id)
        validate_hold_reason(reason)
        at = self._now(now)
        if until is not None and until.tzinfo is None:
            raise InvalidStateInput("a hold's end must have a timezone (UTC when none is written)")
        hold = Hold(backup_id=backup_id, reason=reason, until=until, placed_at=at, placed_by=by)
        async with self.writing("put_hold") as tx:
            await tx.lock_holds(exclusive=True)
            await tx.execute(
                "INSERT INTO holds (backup_id, reason, until, placed_at, placed_by) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (backup_id) DO UPDATE SET reason = excluded.reason, until = excluded.until, "
                "placed_at = excluded.placed_at, placed_by = excluded.placed_by",
                (backup_id, reason, until, at, by),
            )
        return hold

    async def release_hold(self, backup_id: str, *, now: datetime | None = None) -> bool:
        """Remove the hold; False when there was none in force (an ended hold is removed too)."""
        at = self._now(now)
        async with self.writing("release_hold") as tx:
            await tx.lock_holds(exclusive=True)
            in_force = await tx.fetch(
                "SELECT 1 FROM holds WHERE backup_id = ? AND (until IS NULL OR until > ?)", (backup_id, at)
            )
            await tx.execute("DELETE FROM holds WHERE backup_id = ?", (backup_id,))
        return bool(in_force)

    async def get_hold(self, backup_id: str) -> Hold | None:
        found = await self._holds("WHERE backup_id = ?", (backup_id,))
        return found[0] if found else None

    async def list_holds(self, *, at: datetime | None = None) -> list[Hold]:
        """Every hold by backup id; only those in force at `at` when given."""
        if at is None:
            return await self._holds("ORDER BY backup_id", ())
        return await self._holds("WHERE until IS NULL OR until > ? ORDER BY backup_id", (at,))

    async def holds_in_force(self, *, at: datetime | None = None) -> dict[str, Hold]:
        """The planner's input: holds in force at `at` (now by default), by backup id."""
        return {hold.backup_id: hold for hold in await self.list_holds(at=self._now(at))}

    async def _holds(self, clause: str, params: Sequence[object]) -> list[Hold]:
        async with self._read("holds") as tx:
            rows = await tx.fetch(f"SELECT backup_id, reason, until, placed_at, placed_by FROM holds {clause}", params)
        return [Hold(row[0], row[1], as_time(row[2]), required_time(row[3]), row[4]) for row in rows]

    # ---------------------------------------------------------------------------------------------- audit

    async def why(self, backup_id: str) -> WhyReport:
        """Every record of the backup, oldest first, and its hold (`empty` when there is neither: exit 1)."""
        async with self._read("why") as tx:
            rows = await tx.fetch(
                f"SELECT {deletions.DELETION_COLUMNS} FROM deletions WHERE backup_id = ? ORDER BY id",
                (backup_id,),
            )
        records = tuple(deletions.deletion_record(row) for row in rows)
        return WhyReport(backup_id=backup_id, records=records, hold=await self.get_hold(backup_id))

    async def history(
        self, *, policy: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        return await self.list_runs(policy=policy, since=since, limit=limit)

    # ---------------------------------------------------------------------------------------------- pruning

    async def prune(self, *, keep_days: int, now: datetime | None = None) -> PruneReport:
        """Forget runs that ended more than `keep_days` ago and their records, keeping: `pending` and `deleting` rows
        and the runs they reference, each policy's last run, the runs of baselines, holds in force (and holds that
        ended less than `keep_days` ago), and each policy's latest acknowledgement."""
        cutoff = self._now(now) - timedelta(days=keep_days)
        kept_runs = (
            "SELECT run_id FROM deletions WHERE state IN ('pending', 'deleting') "
            "UNION SELECT planned_run_id FROM deletions WHERE state IN ('pending', 'deleting') "
            "UNION SELECT run_id FROM baselines "
            "UNION SELECT (SELECT p2.run_id FROM run_policies p2 JOIN runs r2 ON r2.run_id = p2.run_id "
            "WHERE p2.policy = p.policy ORDER BY r2.started_at DESC, r2.run_id DESC LIMIT 1) "
            "FROM (SELECT DISTINCT policy FROM run_policies) p"
        )
        async with self.writing("prune") as tx:
            rows = await tx.fetch(
                f"SELECT run_id FROM runs WHERE ended_at IS NOT NULL AND ended_at < ? AND run_id NOT IN ({kept_runs})",
                (cutoff,),
            )
            removed_runs = removed_deletions = 0
            for batch in chunks([row[0] for row in rows]):
                among = f"IN {placeholders(len(batch))}"
                removed_deletions += await tx.execute(
                    f"DELETE FROM deletions WHERE state NOT IN ('pending', 'deleting') AND run_id {among}", batch
                )
                await tx.execute(f"DELETE FROM run_policies WHERE run_id {among}", batch)
                removed_runs += await tx.execute(f"DELETE FROM runs WHERE run_id {among}", batch)
            removed_holds = await tx.execute("DELETE FROM holds WHERE until IS NOT NULL AND until < ?", (cutoff,))
            removed_acks = await tx.execute(
                "DELETE FROM acks WHERE acked_at < ? AND EXISTS (SELECT 1 FROM acks newer WHERE "
                "newer.policy = acks.policy AND newer.endpoint = acks.endpoint AND newer.project_id = acks.project_id"
                " AND newer.acked_at > acks.acked_at)",
                (cutoff,),
            )
        return PruneReport(runs=removed_runs, deletions=removed_deletions, holds=removed_holds, acks=removed_acks)
