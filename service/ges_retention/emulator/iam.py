"""The emulated IAM: `POST /v3/auth/tokens` with the password method, answering 201 and `X-Subject-Token`.

Tokens are issued to the configured IAM users for the configured projects and recorded in the `TokenRegistry` that
the GES routes check (`auth.py`). A wrong user or password, or an unknown project, is IAM's 401 body; a malformed
request its 400.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ges_retention.emulator.auth import TokenRegistry, iso_z
from ges_retention.emulator.config import EmulatorConfig
from ges_retention.emulator.errors import iam_error

__all__ = ["Iam"]


class Iam:
    """The token route over the emulator's config (read per request), token registry and wall clock."""

    def __init__(self, config: EmulatorConfig, tokens: TokenRegistry, clock: Callable[[], float]) -> None:
        self.config = config
        self.tokens = tokens
        self.clock = clock

    async def token(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise iam_error(400, "Bad Request", "The request body is not valid JSON.") from None
        domain, name, password, project_id = _password_auth(body)
        user = next(
            (u for u in self.config.iam_users if (u.domain, u.name, u.password) == (domain, name, password)), None
        )
        if user is None:
            raise iam_error(401, "Unauthorized", "The username or password is wrong.")
        if project_id not in self.config.project_ids:
            raise iam_error(401, "Unauthorized", "The request you have made requires authentication.")
        token, issued = self.tokens.issue(user, project_id, now=self.clock(), lifetime_s=self.config.token_lifetime_s)
        domain_ref = {"id": _opaque_id("domain", domain), "name": domain}
        document = {
            "token": {
                "expires_at": iso_z(issued.expires_at),
                "issued_at": iso_z(issued.issued_at),
                "methods": ["password"],
                "catalog": [],
                "roles": [{"id": "0", "name": "op_service"}],
                "project": {"id": project_id, "name": "cn-north-4", "domain": domain_ref},
                "user": {"id": _opaque_id("user", f"{domain}/{name}"), "name": name, "domain": domain_ref},
            }
        }
        return web.json_response(
            document,
            status=201,
            headers={"X-Subject-Token": token},
            dumps=lambda v: json.dumps(v, separators=(",", ":")),
        )


def _password_auth(body: Any) -> tuple[str, str, str, str]:
    """(domain, user, password, project id) of a Keystone password request, or a 400 naming what is wrong."""
    try:
        identity = body["auth"]["identity"]
        if "password" not in identity["methods"]:
            raise iam_error(400, "Bad Request", "Only the password method is supported by the emulator.")
        user = identity["password"]["user"]
        values = (user["domain"]["name"], user["name"], user["password"], body["auth"]["scope"]["project"]["id"])
    except (KeyError, TypeError):
        raise iam_error(
            400,
            "Bad Request",
            "Expected auth.identity.password.user.{domain.name,name,password} and auth.scope.project.id.",
        ) from None
    if not all(isinstance(v, str) for v in values):
        raise iam_error(400, "Bad Request", "The user's domain, name, password and the project id must be strings.")
    return values


def _opaque_id(kind: str, name: str) -> str:
    return random.Random(f"{kind}:{name}").getrandbits(128).to_bytes(16, "big").hex()
