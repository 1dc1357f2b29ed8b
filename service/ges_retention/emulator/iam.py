"""The emulated IAM: password tokens, and an agency's temporary credentials.

- `POST /v3/auth/tokens` (password method): 201 and `X-Subject-Token`, scoped to a configured project or to the
  user's own domain (`scope.domain.name`). Tokens are recorded in the `TokenRegistry` that the GES routes check
  (`auth.py`). A wrong user or password, or an unknown project, is IAM's 401 body; a malformed request its 400.
- `POST /v3.0/OS-CREDENTIAL/securitytokens` (`methods: ["assume_role"]`, `assume_role: {domain_name, agency_name,
  duration_seconds}`): the caller authenticates with an AK/SK signature or an IAM-issued token (a static token of
  the config is not an IAM user's: 401); 201 `{"credential": {"access", "secret", "securitytoken", "expires_at"}}`,
  valid for `duration_seconds` (900..86400, default 900) of the emulator's clock, or `security_token_lifetime_s`
  when the config sets it. An agency or domain that the config does not have is 403 (the emulator's choice: IAM's
  documented answers for this API are 400/401/403 without codes; *unconfirmed* which one a missing agency gets).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from ges_retention.emulator.auth import TokenRegistry, iso_z, verify_signature
from ges_retention.emulator.config import EmulatorConfig
from ges_retention.emulator.errors import ApiError, iam_error
from ges_retention.ges.signing import SignedRequest

__all__ = ["Iam"]


class Iam:
    """The token route over the emulator's config (read per request), token registry and wall clock."""

    def __init__(self, config: EmulatorConfig, tokens: TokenRegistry, clock: Callable[[], float]) -> None:
        self.config = config
        self.tokens = tokens
        self.clock = clock

    async def security_tokens(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self._caller(request, raw)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise iam_error(400, "Bad Request", "The request body is not valid JSON.") from None
        domain, name, duration_s = _assume_role(body)
        agency = self.config.agency(domain, name)
        if agency is None:
            raise iam_error(
                403,
                "Forbidden",
                f"You are not authorized to assume agency {name!r} of domain {domain!r}: no such agency trusts you.",
            )
        now = self.clock()
        lifetime_s = self.config.security_token_lifetime_s
        key = self.tokens.issue_temporary(agency, expires_at=now + (duration_s if lifetime_s is None else lifetime_s))
        credential = {
            "access": key.ak,
            "secret": key.sk,
            "securitytoken": key.security_token,
            "expires_at": iso_z(key.expires_at),
        }
        return web.json_response(
            {"credential": credential}, status=201, dumps=lambda v: json.dumps(v, separators=(",", ":"))
        )

    def _caller(self, request: web.Request, body: bytes) -> None:
        """The caller is an IAM user: an unexpired token IAM issued, or a valid AK/SK signature; IAM's 401 if not."""
        token = request.headers.get("X-Auth-Token")
        if token is not None:
            issued = self.tokens.lookup(token)
            if issued is None or self.clock() >= issued.expires_at:
                raise iam_error(401, "Unauthorized", "The request you have made requires authentication.")
            return
        authorization = request.headers.get("Authorization")
        if authorization is None:
            raise iam_error(401, "Unauthorized", "The request you have made requires authentication.")
        raw_path, _, raw_query = request.raw_path.partition("?")
        signed = SignedRequest.of(
            request.method,
            raw_path,
            parse_qsl(raw_query, keep_blank_values=True),
            request.headers,
            body,
            host=request.host,
        )
        try:
            verify_signature(self.config, self.tokens, signed, authorization, self.clock())
        except ApiError as error:
            raise iam_error(401, "Unauthorized", error.message) from None

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
        if project_id is not None and project_id not in self.config.project_ids:
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
                **(
                    {"project": {"id": project_id, "name": "cn-north-4", "domain": domain_ref}}
                    if project_id is not None
                    else {"domain": domain_ref}
                ),
                "user": {"id": _opaque_id("user", f"{domain}/{name}"), "name": name, "domain": domain_ref},
            }
        }
        return web.json_response(
            document,
            status=201,
            headers={"X-Subject-Token": token},
            dumps=lambda v: json.dumps(v, separators=(",", ":")),
        )


def _password_auth(body: Any) -> tuple[str, str, str, str | None]:
    """(domain, user, password, project id or None for the user's domain) of a Keystone password request, or a 400
    naming what is wrong."""
    try:
        identity = body["auth"]["identity"]
        if "password" not in identity["methods"]:
            raise iam_error(400, "Bad Request", "Only the password method is supported by the emulator.")
        user = identity["password"]["user"]
        domain, name, password = user["domain"]["name"], user["name"], user["password"]
        scope = body["auth"]["scope"]
        project_id = scope["project"]["id"] if "project" in scope else None
        if project_id is None and scope["domain"]["name"] != domain:
            raise iam_error(401, "Unauthorized", "A token is scoped to the user's own domain.")
    except (KeyError, TypeError):
        raise iam_error(
            400,
            "Bad Request",
            "Expected auth.identity.password.user.{domain.name,name,password} and auth.scope.project.id "
            "or auth.scope.domain.name.",
        ) from None
    values = (domain, name, password, project_id)
    if not all(isinstance(v, str) for v in values[:3]) or not isinstance(project_id, str | None):
        raise iam_error(400, "Bad Request", "The user's domain, name, password and the project id must be strings.")
    return values


def _assume_role(body: Any) -> tuple[str, str, int]:
    """(domain name, agency name, duration in seconds) of an assume_role request, or a 400 naming what is wrong."""
    try:
        identity = body["auth"]["identity"]
        if identity["methods"] != ["assume_role"]:
            raise iam_error(400, "Bad Request", 'The emulator supports auth.identity.methods ["assume_role"] only.')
        role = identity["assume_role"]
        domain, agency = role["domain_name"], role["agency_name"]
        duration = role.get("duration_seconds", 900)
    except (KeyError, TypeError, AttributeError):
        raise iam_error(
            400, "Bad Request", "Expected auth.identity.assume_role.{domain_name,agency_name[,duration_seconds]}."
        ) from None
    if not isinstance(domain, str) or not isinstance(agency, str) or not domain or not agency:
        raise iam_error(400, "Bad Request", "domain_name and agency_name must be non-empty strings.")
    if isinstance(duration, bool) or not isinstance(duration, int) or not 900 <= duration <= 86_400:
        raise iam_error(400, "Bad Request", "duration_seconds must be an integer from 900 to 86400.")
    return domain, agency, duration


def _opaque_id(kind: str, name: str) -> str:
    return random.Random(f"{kind}:{name}").getrandbits(128).to_bytes(16, "big").hex()
