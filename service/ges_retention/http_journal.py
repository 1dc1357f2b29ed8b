"""The listener's journal endpoints: holds (`GET`/`POST /v1/holds`, `DELETE /v1/holds/{backup_id}`), the `why`
document of a backup (`GET /v1/backups/{backup_id}`), and the journal-backed fields of `GET /v1/policies`.

The answers are the CLI's JSON documents (`audit_report.py`). Every route follows the `/v1/` token rules of the
listener first (`refused`). Without a usable state (none opened yet, PostgreSQL unreachable) the answer is 503,
never a guess: a hold that was not written must not look placed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from prometheus_client import Gauge

from ges_retention.audit_report import hold_json, holds_document, why_document
from ges_retention.change_held import journal_change_held, last_finished_run
from ges_retention.report import iso_utc
from ges_retention.state import InvalidStateInput, StateError, Store, validate_backup_id, validate_hold_reason

if TYPE_CHECKING:
    from ges_retention.policy import Policy
    from ges_retention.policy_loading import PolicyFile
    from ges_retention.state import RunRecord

__all__ = ["HOLD_KEYS", "JournalRoutes", "count_holds", "journal_policy_fields"]

log = structlog.get_logger("ges_retention.http_api")

HOLD_KEYS = frozenset({"backup_id", "reason", "until"})
_MAX_BODY_BYTES = 16 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _BadRequest(Exception):
    pass


def _error(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status)


class JournalRoutes:
    """The journal's routes of one listener. `store` gives the daemon's store (None while there is none);
    `refused` applies the `/v1/` token rules (None: go on)."""

    __slots__ = ("_clock", "_refused", "_store")

    def __init__(
        self,
        store: Callable[[], Store | None],
        refused: Callable[[web.Request], web.Response | None],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._refused = refused
        self._clock = clock

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/v1/holds", self._guarded(self._get_holds))
        app.router.add_post("/v1/holds", self._guarded(self._post_hold))
        app.router.add_delete("/v1/holds/{backup_id}", self._guarded(self._delete_hold))
        app.router.add_get("/v1/backups/{backup_id}", self._guarded(self._get_backup))

    def _guarded(self, handler: Callable[[web.Request, Store], Awaitable[web.Response]]) -> Handler:
        """Token rules first, then a store or 503; a state error is 503 (unavailable) or 500 (misconfigured)."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            if (refused := self._refused(request)) is not None:
                return refused
            store = self._store()
            if store is None:
                return _error(503, "the state is not available yet (GES_RETENTION_STATE): nothing was read or written")
            try:
                return await handler(request, store)
            except _BadRequest as exc:
                return _error(400, str(exc))
            except InvalidStateInput as exc:
                return _error(400, str(exc))
            except StateError as exc:
                log.error("state_unavailable", error=str(exc), operation=exc.operation or request.path)
                return _error(503, f"the state is not available: {exc}")

        return guarded

    async def _get_holds(self, _request: web.Request, store: Store) -> web.Response:
        now = self._clock()
        return web.json_response(holds_document(await store.list_holds(at=now), now))

    async def _post_hold(self, request: web.Request, store: Store) -> web.Response:
        body = await _json_object(request)
        unknown = sorted(set(body) - HOLD_KEYS)
        if unknown:
            raise _BadRequest(f"unknown keys {', '.join(unknown)}: a hold is {{backup_id, reason, until}}")
        backup_id, reason, until_text = body.get("backup_id"), body.get("reason"), body.get("until")
        if not isinstance(backup_id, str):
            raise _BadRequest("backup_id: a string is required")
        if not isinstance(reason, str):
            raise _BadRequest("reason: a string of 1-200 printable characters is required")
        validate_backup_id(backup_id)
        validate_hold_reason(reason)
        now = self._clock()
        until = _until(until_text, now)
        known = bool((await store.why(backup_id)).records)
        hold = await store.put_hold(backup_id, reason, until=until, by=f"http:{request.remote or '?'}", now=now)
        document = {**hold_json(hold, now), "known": known}
        if not known:
            document["note"] = "the state has no record of this backup: the hold protects it once a run lists it"
        return web.json_response(document, status=201)

    async def _delete_hold(self, request: web.Request, store: Store) -> web.Response:
        backup_id = validate_backup_id(request.match_info["backup_id"])
        if not await store.release_hold(backup_id, now=self._clock()):
            return _error(404, f"{backup_id} is not held")
        return web.Response(status=204)

    async def _get_backup(self, request: web.Request, store: Store) -> web.Response:
        backup_id = validate_backup_id(request.match_info["backup_id"])
        report = await store.why(backup_id)
        if report.empty:
            return _error(404, f"no record of {backup_id}")
        return web.json_response(why_document(report, self._clock()))


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > _MAX_BODY_BYTES:
        raise _BadRequest(f"the body is larger than {_MAX_BODY_BYTES} bytes")
    raw = await request.content.read(_MAX_BODY_BYTES + 1)
    if len(raw) > _MAX_BODY_BYTES:
        raise _BadRequest(f"the body is larger than {_MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise _BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object {backup_id, reason, until}")
    return body


def _until(value: Any, now: datetime) -> datetime | None:
    """`until`: absent or null = until released; else ISO 8601 (no offset = UTC) in the future."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BadRequest("until: an ISO 8601 date-time string or null")
    from ges_retention.errors import UsageError
    from ges_retention.inputs import parse_instant

    try:
        end = parse_instant(value, "until")
    except UsageError as exc:
        raise _BadRequest(str(exc)) from None
    if end <= now:
        raise _BadRequest("until: not in the future: such a hold would protect nothing")
    return end


async def count_holds(store: Store | None, holds: Gauge) -> None:
    """`ges_retention_holds` as the state has it now, set at each scrape: holds are placed and released by the CLI
    (another process) and over HTTP, and they end on their own, so only reading the state keeps the gauge true.
    Without a store, or with the state failing, the gauge keeps its last value."""
    if store is None:
        return
    try:
        holds.set(len(await store.holds_in_force()))
    except StateError as exc:
        log.error("state_unavailable", error=str(exc), operation="holds_metric")


async def journal_policy_fields(
    store: Store | None, policy_file: PolicyFile | None, endpoint_of: Callable[[Policy], str]
) -> dict[str, dict[str, Any]]:
    """Per policy, what `GET /v1/policies` reads from the journal: the last finished run (its id, trigger, outcome
    and times), the count of pending deletions, and the change gate's hold (`change_held.journal_change_held`).
    Empty when there is no store or no file; a state error propagates."""
    if store is None or policy_file is None:
        return {}
    pending: Mapping[str, int] = await store.pending_counts()
    last_runs = {name: await last_finished_run(store, name) for name in policy_file.names()}
    held = await journal_change_held(store, policy_file, endpoint_of, last_runs)
    return {
        name: {
            "last_run": _last_run(last),
            "pending_deletions": int(pending.get(name, 0)),
            "change_held": held.get(name),
        }
        for name, last in last_runs.items()
    }


def _last_run(run: RunRecord | None) -> dict[str, Any] | None:
    if run is None or run.ended_at is None:
        return None
    return {
        "run_id": run.run_id,
        "trigger": run.trigger,
        "outcome": run.outcome,
        "started_at": iso_utc(run.started_at),
        "finished_at": iso_utc(run.ended_at),
    }
