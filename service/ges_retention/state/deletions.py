"""The planned-deletion lifecycle as transaction scripts: pending clocks, write-ahead intents, outcomes, resolution.

Each function is a `Script` (`state/sql.py`): a generator that yields SQL requests and gets their results back, so
the same logic runs on PostgreSQL (driven request by request over asyncpg) and on SQLite (driven whole on the writer
thread: one thread hop per transaction, which is what keeps an intent batch cheap). None commits by itself. The
partial unique index `deletions_active` guarantees at most one `pending`/`deleting` row per
(policy, endpoint, project_id, backup_id).
"""

# SQL text here is assembled only from constants (column lists, `?` placeholder runs); every value is a parameter.
# ruff: noqa: S608
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from ges_retention.state.records import (
    BackupFacts,
    DeletionRecord,
    Hold,
    HoldSkip,
    IntentBatch,
    IntentTicket,
    Outcome,
    PlannedDeletion,
    Resolution,
    Scope,
)
from ges_retention.state.sql import (
    DbNow,
    Execute,
    ExecuteMany,
    Fetch,
    LockHolds,
    Script,
    as_time,
    chunks,
    from_json,
    placeholders,
    required_time,
    to_json,
)

__all__ = [
    "DELETION_COLUMNS",
    "active_rows",
    "cancel_pending",
    "deletion_record",
    "mark_pending",
    "record_outcomes",
    "resolve_deleting",
    "write_intents",
]

DELETION_COLUMNS = (
    "id, policy, endpoint, project_id, backup_id, state, reasons, run_id, planned_run_id, backup_name, graph_id, "
    "graph_name, backup_method, backup_started_at, size_mb, planned_at, pending_since, updated_at, finished_at, "
    "request_id, attempts, error, closed_reasons"
)
_SCOPE = "policy = ? AND endpoint = ? AND project_id = ?"
# The condition of the partial index `deletions_active` (scope, backup id): a query that names it is answered from
# that index on both backends (SQLite uses a partial index only for a query whose WHERE holds the index's terms).
ACTIVE = "state IN ('pending', 'deleting')"
_INSERT = (
    "INSERT INTO deletions (policy, endpoint, project_id, backup_id, state, reasons, run_id, planned_run_id, "
    "backup_name, graph_id, graph_name, backup_method, backup_started_at, size_mb, planned_at, pending_since, "
    "updated_at, finished_at, closed_reasons) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@lru_cache(maxsize=1024)
def reasons_json(reasons: tuple[str, ...]) -> str:
    """The JSON of a planner's reasons, remembered: a plan gives thousands of backups the same few reasons, and an
    intent row is written for each."""
    return to_json(list(reasons))


def deletion_record(row: Sequence[Any]) -> DeletionRecord:
    return DeletionRecord(
        id=int(row[0]),
        scope=Scope(policy=row[1], endpoint=row[2], project_id=row[3]),
        backup=BackupFacts(
            backup_id=row[4],
            name=row[9],
            graph_id=row[10],
            graph_name=row[11],
            method=row[12],
            started_at=as_time(row[13]),
            size_mb=None if row[14] is None else float(row[14]),
        ),
        state=row[5],
        reasons=tuple(from_json(row[6]) or ()),
        run_id=row[7],
        planned_run_id=row[8],
        planned_at=required_time(row[15]),
        pending_since=as_time(row[16]),
        updated_at=required_time(row[17]),
        finished_at=as_time(row[18]),
        request_id=row[19],
        attempts=int(row[20]),
        error=row[21],
        closed_reasons=tuple(from_json(row[22]) or ()),
    )


def _scope_params(scope: Scope) -> tuple[str, str, str]:
    return (scope.policy, scope.endpoint, scope.project_id)


def _new_row(
    scope: Scope,
    run_id: str,
    item: PlannedDeletion,
    state: str,
    at: datetime,
    *,
    closed_reasons: Sequence[str] | None = None,
    pending_since: datetime | None = None,
    finished: bool = False,
) -> tuple[object, ...]:
    facts = item.backup
    return (
        *_scope_params(scope),
        facts.backup_id,
        state,
        reasons_json(item.reasons),
        run_id,
        run_id,
        facts.name,
        facts.graph_id,
        facts.graph_name,
        facts.method,
        facts.started_at,
        None if facts.size_mb is None else float(facts.size_mb),
        at,
        pending_since,
        at,
        at if finished else None,
        None if closed_reasons is None else to_json(list(closed_reasons)),
    )


def active_rows(scope: Scope, backup_ids: Collection[str] | None = None) -> Script[list[DeletionRecord]]:
    """The `pending` and `deleting` rows of `scope` (of `backup_ids` only, when given)."""
    sql = f"SELECT {DELETION_COLUMNS} FROM deletions WHERE {_SCOPE} AND {ACTIVE}"
    if backup_ids is None:
        rows = yield Fetch(sql + " ORDER BY id", _scope_params(scope))
        return [deletion_record(row) for row in rows]
    found: list[DeletionRecord] = []
    for batch in chunks(backup_ids):
        rows = yield Fetch(f"{sql} AND backup_id IN {placeholders(len(batch))}", (*_scope_params(scope), *batch))
        found.extend(deletion_record(row) for row in rows)
    return sorted(found, key=lambda record: record.id)


def mark_pending(
    run_id: str, scope: Scope, items: Sequence[PlannedDeletion], now: datetime
) -> Script[dict[str, datetime]]:
    """Start the clock of every item without one; the `pending_since` of every item that has a pending row."""
    at = yield DbNow(now)
    rows = yield from active_rows(scope, [i.backup.backup_id for i in items])
    active = {row.backup.backup_id: row for row in rows}
    fresh = [item for item in items if item.backup.backup_id not in active]
    if fresh:
        yield ExecuteMany(_INSERT, [_new_row(scope, run_id, item, "pending", at, pending_since=at) for item in fresh])
    since = {bid: row.pending_since for bid, row in active.items() if row.state == "pending"}
    result = {bid: value for bid, value in since.items() if value is not None}
    result.update({item.backup.backup_id: at for item in fresh})
    return result


def cancel_pending(
    run_id: str, scope: Scope, reasons_by_id: Mapping[str, Sequence[str]], state: str, now: datetime
) -> Script[int]:
    """`pending` rows of these backups become `state` (`cancelled` or `gone`), closed for these reasons (the
    planner's reasons stay: `why` tells both)."""
    if state not in ("cancelled", "gone"):
        raise ValueError(f"a pending row is cancelled or gone, not {state!r}")
    changed = 0
    for backup_id, reasons in reasons_by_id.items():
        count = yield Execute(
            "UPDATE deletions SET state = ?, closed_reasons = ?, run_id = ?, updated_at = ?, finished_at = ? "
            f"WHERE {_SCOPE} AND backup_id = ? AND {ACTIVE} AND state = 'pending'",
            (state, to_json(list(reasons)), run_id, now, now, *_scope_params(scope), backup_id),
        )
        changed += count
    return changed


def write_intents(run_id: str, scope: Scope, items: Sequence[PlannedDeletion], now: datetime) -> Script[IntentBatch]:
    """One batch of write-ahead intents, re-checking holds inside the same transaction."""
    yield LockHolds(exclusive=False)
    at = now  # holds are judged at the caller's instant on both backends (only `pending_since` is the db clock)
    ids = [item.backup.backup_id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError("an intent batch names a backup twice")
    # A hold matches a backup id in any case (ids are ASCII; `retention.hold_key` is the planner's same rule): a hold
    # typed in another case than GES lists the id still protects the backup.
    held_by_key: dict[str, str] = {}
    for batch in chunks(sorted({bid.lower() for bid in ids})):
        rows = yield Fetch(
            f"SELECT backup_id, reason, until FROM holds WHERE lower(backup_id) IN {placeholders(len(batch))} "
            "AND (until IS NULL OR until > ?) ORDER BY backup_id",
            (*batch, at),
        )
        for backup_id, reason, until in rows:
            held_by_key[str(backup_id).lower()] = Hold(backup_id, reason, as_time(until), at).kept_reason()
    held = {bid: held_by_key[bid.lower()] for bid in ids if bid.lower() in held_by_key}
    current = yield from active_rows(scope, ids)
    active = {row.backup.backup_id: row for row in current}

    updates: list[tuple[object, ...]] = []
    inserts: list[tuple[object, ...]] = []
    for item in items:
        backup_id = item.backup.backup_id
        reason = held.get(backup_id)
        row = active.get(backup_id)
        state = "deleting" if reason is None else "cancelled"
        closed = None if reason is None else [reason]  # a held one keeps the planner's reasons, closed by the hold
        if row is not None:
            finished = at if reason is not None else None
            closed_json = None if closed is None else to_json(closed)
            updates.append((state, reasons_json(item.reasons), closed_json, run_id, at, finished, row.id))
        else:
            inserts.append(_new_row(scope, run_id, item, state, at, closed_reasons=closed, finished=closed is not None))
    if updates:
        yield ExecuteMany(
            "UPDATE deletions SET state = ?, reasons = ?, closed_reasons = ?, run_id = ?, updated_at = ?, "
            "finished_at = ?, request_id = NULL, attempts = 0, error = NULL WHERE id = ?",
            updates,
        )
    if inserts:
        yield ExecuteMany(_INSERT, inserts)
    # Read back the rows' ids, one query per chunk instead of a RETURNING per row: a `deleting` row is unique per key
    # (partial index), a held one is this run's latest `cancelled` row of that backup. The first query is answered
    # from the partial index by scope and backup id; the second from the index on backup id. (With an `OR` of states
    # SQLite once searched the whole scope, every row the policy ever journaled, once per batch: a run's cost grew
    # with the square of its deletions, and with the journal's history.)
    id_of: dict[str, int] = {}
    sendable = [bid for bid in ids if bid not in held]
    for batch in chunks(sendable):
        rows = yield Fetch(
            f"SELECT id, backup_id FROM deletions WHERE {_SCOPE} AND {ACTIVE} AND state = 'deleting' "
            f"AND backup_id IN {placeholders(len(batch))}",
            (*_scope_params(scope), *batch),
        )
        for deletion_id, backup_id in rows:
            id_of[backup_id] = int(deletion_id)
    # The held ones by backup id alone (a backup has a few rows: its index is the narrow one), the rest filtered
    # here: given the run id too, SQLite would pick the index on run id and walk every row of the run.
    wanted = (*_scope_params(scope), "cancelled", run_id)
    for batch in chunks(list(held)):
        rows = yield Fetch(
            "SELECT id, backup_id, policy, endpoint, project_id, state, run_id FROM deletions "
            f"WHERE backup_id IN {placeholders(len(batch))} ORDER BY id",
            tuple(batch),
        )
        for deletion_id, backup_id, *key in rows:
            if tuple(key) == wanted:
                id_of[backup_id] = int(deletion_id)
    committed = tuple(IntentTicket(id_of[bid], bid) for bid in ids if bid not in held)
    skipped = tuple(HoldSkip(id_of[bid], bid, held[bid]) for bid in ids if bid in held)
    return IntentBatch(committed=committed, held=skipped)


def record_outcomes(outcomes: Sequence[tuple[Outcome, datetime]]) -> Script[None]:
    """Outcomes of committed intents, each with its instant, in one statement batch; a row no longer `deleting`
    (resolved meanwhile) is left alone."""
    yield ExecuteMany(
        "UPDATE deletions SET state = ?, request_id = ?, attempts = ?, error = ?, updated_at = ?, finished_at = ? "
        "WHERE id = ? AND state = 'deleting'",
        [(o.state, o.request_id, o.attempts, o.error, at, at, o.deletion_id) for o, at in outcomes],
    )


def resolve_deleting(
    run_id: str, scope: Scope, listed_ids: Collection[str], now: datetime, *, lock_held: bool
) -> Script[Resolution]:
    """Resolve `deleting` rows of other runs of `scope`'s policy that are known to have ended: their end is recorded,
    or the caller holds the policy's run lock (which that run held while it ran)."""
    rows = yield Fetch(
        "SELECT d.id, d.backup_id, r.ended_at FROM deletions d LEFT JOIN runs r ON r.run_id = d.run_id "
        "WHERE d.policy = ? AND d.endpoint = ? AND d.project_id = ? AND d.state IN ('pending', 'deleting') "
        "AND d.state = 'deleting' AND d.run_id <> ? "
        "ORDER BY d.id",
        (*_scope_params(scope), run_id),
    )
    listed = listed_ids if isinstance(listed_ids, set | frozenset) else set(listed_ids)
    deleted: list[str] = []
    not_started: list[str] = []
    unresolved: list[str] = []
    changes: list[tuple[object, ...]] = []
    for deletion_id, backup_id, ended_at in rows:
        if ended_at is None and not lock_held:
            unresolved.append(backup_id)
            continue
        state = "not_started" if backup_id in listed else "deleted"
        (not_started if state == "not_started" else deleted).append(backup_id)
        changes.append((state, now, now, int(deletion_id)))
    if changes:
        yield ExecuteMany(
            "UPDATE deletions SET state = ?, updated_at = ?, finished_at = ? WHERE id = ? AND state = 'deleting'",
            changes,
        )
    return Resolution(deleted=tuple(deleted), not_started=tuple(not_started), unresolved=tuple(unresolved))
