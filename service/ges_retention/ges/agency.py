"""Acting in another account: an IAM agency's temporary credentials, cached, refreshed, and signed with.

```
AssumeRole(iam_endpoint, domain, agency, caller)   one per (domain, agency) in a process: the cache
  .credentials()      POST /v3.0/OS-CREDENTIAL/securitytokens  (methods ["assume_role"]), single-flight
  .drop(token)        forget the credentials whose security token GES refused (401)
AgencyAuth(role, project_id)                       one per (endpoint, project): an `AuthProvider`
  .headers(request)   SDK-HMAC-SHA256 with the temporary AK/SK, plus X-Project-Id and X-Security-Token
  .invalidate(sent)   drops the refused credentials: the transport retries that request once with fresh ones
```

The caller (whoever assumes the agency) is itself an `AuthProvider` of this process's own account: an `AkSkAuth`
without a project (IAM is a global service: the request is signed, with no `X-Project-Id`) or a domain-scoped
`PasswordAuth` (its `X-Auth-Token`). A static token cannot assume an agency: the service refuses that before any
request (`service.check_endpoints`).

IAM's answer is 201 `{"credential": {"access", "secret", "securitytoken", "expires_at"}}`. The credentials are asked
for `duration_seconds` (3600) and refreshed `refresh_margin_s` (5 minutes) before they expire, measured on the
monotonic `clock` from when the request was sent, with the lifetime that IAM's `expires_at` gives against the wall
clock (`wall_clock`), never more than the duration asked. An IAM refusal (a 4xx other than 429) is `AgencyRefused`
(`error_code` `agency_refused`), naming the domain and agency; IAM's 5xx, 429 and transport failures are retryable
like any other request's.

Secrets (the secret key and the security token) live in `Secret`s: no repr, log line or error shows them, and each
one is handed to the log redaction (`on_secret`) as soon as it is received, and withdrawn once replaced.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import aiohttp
from yarl import URL

from ges_retention.endpoints import check_endpoint
from ges_retention.ges.auth import AkSkAuth, AuthProvider, Secret, TokenAuth, parse_instant
from ges_retention.ges.errors import AgencyRefused, AuthError, GesError
from ges_retention.ges.signing import SignedRequest
from ges_retention.ges.wire_errors import error_from_response, error_from_transport

__all__ = [
    "ASSUME_ROLE_OPERATION",
    "AgencyAuth",
    "AssumeRole",
    "TemporaryCredentials",
    "cannot_assume",
]

ASSUME_ROLE_OPERATION: Final = "iam_assume_role"
SECURITY_TOKENS_PATH: Final = "/v3.0/OS-CREDENTIAL/securitytokens"
DURATION_S: Final = 3600
REFRESH_MARGIN_S: Final = 300.0

Clock = Callable[[], float]
# Told the secrets of new credentials (first) and of the credentials they replace (second): the log redaction.
SecretSink = Callable[[Sequence[str], Sequence[str]], None]


def cannot_assume(caller: AuthProvider) -> bool:
    """A static token cannot call assume_role on behalf of anyone: it is scoped to one project and cannot be
    renewed, and IAM's assume_role needs a signed request or a domain-scoped token."""
    return isinstance(caller, TokenAuth)


class TemporaryCredentials:
    """An agency's temporary AK/SK and security token; `refresh_at` is on the role's monotonic clock."""

    __slots__ = ("ak", "refresh_at", "security_token", "sk")

    def __init__(self, ak: str, sk: Secret, security_token: Secret, refresh_at: float) -> None:
        self.ak = ak
        self.sk = sk
        self.security_token = security_token
        self.refresh_at = refresh_at

    def __repr__(self) -> str:
        return f"TemporaryCredentials(ak={self.ak!r}, sk={self.sk!r}, security_token={self.security_token!r})"


def _consume_outcome(flight: asyncio.Future[TemporaryCredentials]) -> None:
    # When every waiter was cancelled, nobody reads the outcome: read it here so asyncio does not report it.
    if not flight.cancelled():
        flight.exception()


class AssumeRole:
    """The temporary credentials of one agency (`domain`/`agency`), obtained by `caller`, cached and refreshed.

    Single-flight: however many requests need credentials at once, one IAM request is made, and they share its
    outcome (a failure fails each of them; their retries start a new one).
    """

    __slots__ = (
        "_caller",
        "_clock",
        "_current",
        "_duration_s",
        "_flight",
        "_margin_s",
        "_on_secret",
        "_registered",
        "_session",
        "_timeout",
        "_url",
        "_wall_clock",
        "agency",
        "assumed",
        "domain",
    )

    def __init__(
        self,
        iam_endpoint: str,
        domain: str,
        agency: str,
        caller: AuthProvider,
        *,
        session: aiohttp.ClientSession,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        timeout_s: float = 30.0,
        duration_s: int = DURATION_S,
        refresh_margin_s: float = REFRESH_MARGIN_S,
        on_secret: SecretSink | None = None,
    ) -> None:
        check_endpoint(iam_endpoint, what="the IAM endpoint")
        if not domain or not agency:
            raise ValueError("an agency needs a domain and a name")
        if cannot_assume(caller):
            raise ValueError("a static token cannot assume an agency: use AK/SK or an IAM password")
        base = URL(iam_endpoint)
        prefix = base.path.rstrip("/").removesuffix("/v3")
        self._url = base.with_path(prefix + SECURITY_TOKENS_PATH).with_query(None)
        self.domain = domain
        self.agency = agency
        self._caller = caller
        self._session = session
        self._clock = clock
        self._wall_clock = wall_clock
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._duration_s = duration_s
        self._margin_s = refresh_margin_s
        self._on_secret = on_secret
        self._registered: tuple[str, ...] = ()
        self._current: TemporaryCredentials | None = None
        self._flight: asyncio.Future[TemporaryCredentials] | None = None
        self.assumed = 0  # IAM requests started, for tests and metrics

    async def credentials(self) -> TemporaryCredentials:
        """Valid credentials: the cached ones, or the outcome of the (single) request under way or started now."""
        current = self._current
        if current is not None and self._clock() < current.refresh_at:
            return current
        flight = self._flight
        if flight is None or flight.done():
            flight = asyncio.ensure_future(self._assume())
            flight.add_done_callback(_consume_outcome)
            self._flight = flight
        # Shielded: a waiter that is cancelled must not cancel the request the others are waiting for.
        return await asyncio.shield(flight)

    def drop(self, security_token: str | None) -> None:
        """Forget the cached credentials if they are the ones with `security_token` (GES refused them): when 100
        requests get a 401 for them, the first drops them and the other 99 find the new ones or the request."""
        current = self._current
        if current is None or security_token is None:
            return
        if hmac.compare_digest(current.security_token.reveal().encode(), security_token.encode()):
            self._current = None

    def _body(self) -> bytes:
        identity = {
            "methods": ["assume_role"],
            "assume_role": {
                "domain_name": self.domain,
                "agency_name": self.agency,
                "duration_seconds": self._duration_s,
            },
        }
        return json.dumps({"auth": {"identity": identity}}).encode()

    async def _assume(self) -> TemporaryCredentials:
        self.assumed += 1
        started = self._clock()
        body = self._body()
        headers = {"Content-Type": "application/json;charset=utf8"}
        request = SignedRequest.of(
            "POST", self._url.raw_path, (), headers, body, host=self._url.host_port_subcomponent or ""
        )
        for attempt in (1, 2):
            added = await self._caller.headers(request)
            sent = {**headers, **added}
            status, raw, answer_headers = await self._post(body, sent)
            if status == 201 or status == 200:
                return self._accept(raw, started, status)
            error = error_from_response(ASSUME_ROLE_OPERATION, status, raw, answer_headers)
            # The caller's own token may have expired (password login): log in again, once.
            if status == 401 and attempt == 1 and await self._caller.invalidate(sent):
                continue
            raise self._refused(error)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes, Mapping[str, str]]:
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                return response.status, await response.read(), response.headers
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise error_from_transport(ASSUME_ROLE_OPERATION, exc) from exc

    def _refused(self, error: GesError) -> GesError:
        if error.retryable:
            return error  # IAM busy or throttled: the transport retries the GES request, which asks again
        return AgencyRefused(
            f"IAM refused to assume agency {self.agency!r} of domain {self.domain!r}: {error.message}",
            operation=ASSUME_ROLE_OPERATION,
            status=error.status,
            error_code=AgencyRefused.CODE,
            error_msg=error.error_msg,
            request_id=error.request_id,
        )

    def _accept(self, raw: bytes, started: float, status: int) -> TemporaryCredentials:
        try:
            data = json.loads(raw)
            credential = data["credential"]
            ak, sk, token = credential["access"], credential["secret"], credential["securitytoken"]
        except (ValueError, KeyError, TypeError):
            data = None
            ak = sk = token = None
        if not all(isinstance(v, str) and v for v in (ak, sk, token)):
            raise AuthError(
                "IAM answered without credential.access, .secret and .securitytoken",
                operation=ASSUME_ROLE_OPERATION,
                status=status,
            )
        assert isinstance(ak, str) and isinstance(sk, str) and isinstance(token, str)
        if self._on_secret is not None:
            retired, self._registered = self._registered, (sk, token)
            self._on_secret(self._registered, retired)
        expires = parse_instant(data["credential"].get("expires_at")) if isinstance(data, dict) else None
        lifetime = float(self._duration_s)
        if expires is not None:
            lifetime = min(lifetime, expires - self._wall_clock())
        # At least a second: credentials that look expired already (clock skew, a bad answer) must not turn every
        # request into an IAM request; if GES refuses them, the 401 path asks again.
        refresh_in = max(1.0, lifetime - self._margin_s)
        current = TemporaryCredentials(ak, Secret(sk), Secret(token), started + refresh_in)
        self._current = current
        return current

    def __repr__(self) -> str:
        return f"AssumeRole(domain={self.domain!r}, agency={self.agency!r}, caller={self._caller!r})"


class AgencyAuth:
    """An `AuthProvider` for one project of the other account: signs with the agency's temporary credentials.

    `clock` is the wall clock for `X-Sdk-Date`. A 401 drops the credentials that were refused and lets the transport
    retry that request once with fresh ones; a second 401 is final (a clear `Unauthorized`, e.g. APIGW.0307).
    """

    __slots__ = ("_clock", "project_id", "role")

    def __init__(self, role: AssumeRole, project_id: str, *, clock: Clock = time.time) -> None:
        if not project_id:
            raise ValueError("project_id is required")
        self.role = role
        self.project_id = project_id
        self._clock = clock

    async def headers(self, request: SignedRequest) -> Mapping[str, str]:
        current = await self.role.credentials()
        signer = AkSkAuth(current.ak, current.sk, self.project_id, current.security_token, clock=self._clock)
        return signer.sign(request)

    async def invalidate(self, sent: Mapping[str, str]) -> bool:
        used = next((v for k, v in sent.items() if k.lower() == "x-security-token"), None)
        self.role.drop(used)
        return True

    def __repr__(self) -> str:
        return f"AgencyAuth(project_id={self.project_id!r}, role={self.role!r})"
