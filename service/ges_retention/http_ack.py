"""`POST /v1/policies/{name}/ack` `{"digest"}`: acknowledge a definition held by the change gate over HTTP.

200 `{"policy", "digest", "note"}` once recorded in the state; 404 for a policy the loaded file does not have; 409
`{"error", "reason": "digest_mismatch"}` when the digest is not that policy's current gate digest; 400 for a body
that is not `{"digest": "<64 hex digits>"}`; 503 without a usable state. The `/v1/` token rules apply first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from ges_retention.ack import DigestMismatch, UnknownPolicy, ack_definition
from ges_retention.state import StateError, Store

if TYPE_CHECKING:
    from ges_retention.daemon import Daemon

__all__ = ["AckRoute"]

_MAX_BODY_BYTES = 4096


def _error(status: int, error: str, **extra: str) -> web.Response:
    return web.json_response({"error": error, **extra}, status=status)


class AckRoute:
    __slots__ = ("_refused", "_store", "daemon")

    def __init__(
        self,
        daemon: Daemon,
        store: Callable[[], Store | None],
        refused: Callable[[web.Request], web.Response | None],
    ) -> None:
        self.daemon = daemon
        self._store = store
        self._refused = refused

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/v1/policies/{name}/ack", self._post_ack)

    async def _post_ack(self, request: web.Request) -> web.Response:
        from ges_retention.service import policy_endpoint

        if (refused := self._refused(request)) is not None:
            return refused
        raw = await request.content.read(_MAX_BODY_BYTES + 1)
        try:
            body = json.loads(raw) if len(raw) <= _MAX_BODY_BYTES else None
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict) or set(body) != {"digest"} or not isinstance(body["digest"], str):
            return _error(400, 'the body must be {"digest": "<the gate digest, 64 hex digits>"}')
        policy_file = self.daemon.policy_file
        name = request.match_info["name"]
        if policy_file is None or name not in policy_file.names():
            return _error(404, f"unknown policy: {name[:64]!r}")
        store = self._store()
        if store is None:
            return _error(503, "the state is not available yet (GES_RETENTION_STATE): nothing was recorded")
        settings = self.daemon.settings
        try:
            done = await ack_definition(
                store, policy_file, name, body["digest"], endpoint_of=lambda p: policy_endpoint(p, settings), by="http"
            )
        except UnknownPolicy as exc:
            return _error(404, str(exc))
        except DigestMismatch as exc:
            return _error(409, str(exc), reason="digest_mismatch")
        except StateError as exc:
            return _error(503, f"the state is not available: {exc}")
        await self.daemon.change_held.update()  # acknowledged: no longer held (the gauge says so now)
        return web.json_response({"policy": done.policy, "digest": done.digest, "note": done.note})
