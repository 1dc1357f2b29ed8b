"""`GET /v1/runs` and `GET /v1/runs/{run_id}`: runs as this daemon sees them live, and as the journal recorded them
(any process's, and those from before a restart)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ges_retention.state import RunRecord as JournalRun

if TYPE_CHECKING:
    from ges_retention.daemon import Daemon

__all__ = ["journal_record_json", "journal_run_view", "run_view", "runs_view"]


def run_view(daemon: Daemon, run_id: str) -> dict[str, Any] | None:
    """A run this daemon remembers: live counts while running (from the runner's summary in progress), then the
    final summary."""
    record = daemon.records.get(run_id)
    if record is None:
        return None
    live = daemon.runner.active.get(run_id)
    if record.status == "running" and live is not None:
        record.live = {**live.counts(), "policies": [p.to_json() for p in live.policies]}
    return record.to_json()


def _iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def journal_record_json(run: JournalRun) -> dict[str, Any]:
    """A run as the journal recorded it."""
    return {
        "run_id": run.run_id,
        "status": "finished" if run.ended_at is not None else "unfinished",
        "trigger": run.trigger,
        "policies": list(run.policies),
        "host": run.host,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.ended_at),
        "outcome": run.outcome,
        "counts": dict(run.counts),
    }


async def journal_run_view(daemon: Daemon, run_id: str) -> dict[str, Any] | None:
    """`GET /v1/runs/{run_id}`: live counts while this daemon runs it; after, the journal's record (with this
    daemon's summary when it still has it); a run of another process or before a restart from the journal alone."""
    view = run_view(daemon, run_id)
    if view is not None and view["status"] == "running":
        return view
    store = daemon.store
    recorded = await store.get_run(run_id) if store is not None else None
    if recorded is None:
        return view
    document = journal_record_json(recorded)
    if view is not None:
        document = {**view, **{k: document[k] for k in ("host", "outcome", "counts")}}
    return document


async def runs_view(daemon: Daemon, limit: int) -> list[dict[str, Any]]:
    """The runs in progress (live), then the journal's runs newest first; at most `limit`."""
    running = [v for v in (run_view(daemon, r) for r in daemon.records.running_ids()) if v is not None]
    store = daemon.store
    seen = {v["run_id"] for v in running}
    recorded = await store.list_runs(limit=limit) if store is not None else []
    views = running + [journal_record_json(r) for r in recorded if r.run_id not in seen]
    if store is None:  # no journal: what this daemon remembers
        views += [v for v in (run_view(daemon, r) for r in daemon.records.finished_ids()) if v is not None]
    return views[:limit]
