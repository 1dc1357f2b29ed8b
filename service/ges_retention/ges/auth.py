"""Credentials for GES requests, behind one small interface.

- `TokenAuth`: a static IAM token (`X-Auth-Token`); a 401 is final.
- `PasswordAuth`: logs in to IAM with a password, caches the project-scoped token, logs in again ahead of its expiry
  (single-flight: however many requests need a token at once, one login is made) and once more when GES answers 401.
- `AkSkAuth`: signs every request with `SDK-HMAC-SHA256` (see `signing`), adding `X-Project-Id` and, for temporary
  credentials, `X-Security-Token`. Without a project (IAM, a global service) it adds no `X-Project-Id`.
- An agency's temporary credentials (another account, `assume_role`) are `agency.AgencyAuth`, obtained by one of
  the above (never a static token).

Secrets (tokens, passwords, secret keys) are held in `Secret`, whose repr and str are masked, and no provider's repr
shows one; errors are built from the answer, never from what was sent.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import NoReturn, Protocol, runtime_checkable

import aiohttp
from yarl import URL

from ges_retention.endpoints import check_endpoint
from ges_retention.ges import signing
from ges_retention.ges.errors import AuthError
from ges_retention.ges.signing import SignedRequest
from ges_retention.ges.wire_errors import error_from_response, error_from_transport

__all__ = ["AkSkAuth", "AuthProvider", "PasswordAuth", "Secret", "TokenAuth", "parse_instant"]

Clock = Callable[[], float]

IAM_LOGIN_OPERATION = "iam_login"
_JSON = "application/json"


class Secret:
    """A string that does not show itself: repr/str are masked, pickling is refused. `reveal()` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]  # mutable-equality semantics: never a dict key that leaks via repr

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


def _secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


@runtime_checkable
class AuthProvider(Protocol):
    """What the client needs from credentials.

    `headers()` is awaited for every attempt, just before it is paced and sent: it returns the headers to add to
    `request` (whose own headers a signer must cover). `invalidate(sent)` is called when an answer to a
    request that carried `sent` was 401: it returns True when fresh credentials may now exist (the client then
    retries that request once), False when retrying cannot help.
    """

    async def headers(self, request: SignedRequest) -> Mapping[str, str]: ...

    async def invalidate(self, sent: Mapping[str, str]) -> bool: ...


class TokenAuth:
    """A static IAM token. It cannot be refreshed: a 401 is final."""

    __slots__ = ("_headers", "_token")

    def __init__(self, token: str | Secret) -> None:
        self._token = _secret(token)
        if not self._token:
            raise ValueError("the token is empty")
        # Built once (a dict per request would be waste on the hot path) and read-only, as it is shared.
        self._headers: Mapping[str, str] = MappingProxyType({"X-Auth-Token": self._token.reveal()})

    async def headers(self, request: SignedRequest) -> Mapping[str, str]:
        return self._headers

    async def invalidate(self, sent: Mapping[str, str]) -> bool:
        return False

    def __repr__(self) -> str:
        return f"TokenAuth(token={self._token!r})"


class AkSkAuth:
    """`SDK-HMAC-SHA256` request signing with an access key pair (and a security token for temporary ones).

    `clock` is the wall clock (epoch seconds) for `X-Sdk-Date`: the gateway refuses a date more than 15 minutes off.
    A 401 is final: a new signature would carry the same key and the same clock.
    """

    __slots__ = ("_ak", "_clock", "_date_cache", "_security_token", "_sk", "project_id")

    def __init__(
        self,
        ak: str | Secret,
        sk: str | Secret,
        project_id: str | None,
        security_token: str | Secret | None = None,
        *,
        clock: Clock = time.time,
    ) -> None:
        self._ak = _secret(ak)
        self._sk = _secret(sk)
        if not self._ak or not self._sk:
            raise ValueError("both the access key and the secret key are required")
        if project_id is not None and not project_id:
            raise ValueError("project_id is required (None signs for a global service such as IAM)")
        self.project_id = project_id
        self._security_token = _secret(security_token) if security_token else None
        self._clock = clock
        self._date_cache: tuple[int, str] = (-1, "")

    def _sdk_date(self) -> str:
        # strftime costs more than the HMAC: the date changes once a second, so it is formatted once a second.
        second = int(self._clock())
        cached_second, text = self._date_cache
        if second != cached_second:
            text = signing.format_sdk_date(datetime.fromtimestamp(second, UTC))
            self._date_cache = (second, text)
        return text

    def sign(self, request: SignedRequest, *, sdk_date: str | None = None) -> dict[str, str]:
        """The headers to add to `request` so that it is signed (synchronous: signing does no I/O)."""
        added = {"Host": request.host, "X-Sdk-Date": sdk_date if sdk_date is not None else self._sdk_date()}
        if self.project_id is not None:
            added["X-Project-Id"] = self.project_id
        if self._security_token is not None:
            added["X-Security-Token"] = self._security_token.reveal()
        to_sign = request.with_headers({**request.headers, **added})
        added["Authorization"] = signing.authorization_header(
            ak=self._ak.reveal(), sk=self._sk.reveal(), request=to_sign
        )
        return added

    async def headers(self, request: SignedRequest) -> Mapping[str, str]:
        return self.sign(request)

    async def invalidate(self, sent: Mapping[str, str]) -> bool:
        return False

    def __repr__(self) -> str:
        temporary = self._security_token is not None
        return f"AkSkAuth(project_id={self.project_id!r}, ak={self._ak!r}, sk={self._sk!r}, temporary={temporary})"


class _Token:
    __slots__ = ("refresh_at", "value")

    def __init__(self, value: Secret, refresh_at: float) -> None:
        self.value = value
        self.refresh_at = refresh_at


def parse_instant(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # IAM's times are UTC
    return when.timestamp()


def _consume_outcome(flight: asyncio.Future[Secret]) -> None:
    # When every waiter was cancelled, nobody reads the outcome: read it here so asyncio does not report it.
    if not flight.cancelled():
        flight.exception()


class PasswordAuth:
    """IAM password login, one project-scoped token cached and refreshed (`project_id=None`: domain-scoped).

    The token is refreshed ahead of its expiry, once less than `min(refresh_margin_s, refresh_fraction * lifetime)` of
    it is left. The lifetime is measured from the token's own `issued_at`/`expires_at`, so a skew between this
    machine's clock and IAM's does not matter; `clock` is a monotonic clock (seconds).

    Logins are single-flight: every request that needs a token while a login is under way awaits that one login, and
    shares its outcome (a failed login fails each of them; their retries start a new one). Logins go through
    `session`, the process's shared `aiohttp` session (the same one the client sends with), given at construction.
    """

    __slots__ = (
        "_clock",
        "_domain",
        "_flight",
        "_margin_s",
        "_password",
        "_refresh_fraction",
        "_session",
        "_timeout",
        "_token",
        "_url",
        "_user",
        "iam_endpoint",
        "logins",
        "project_id",
    )

    # Assumed when IAM's answer has no usable `expires_at`: short, so a wrong guess costs a login, not a 401 storm.
    ASSUMED_LIFETIME_S = 3600.0

    def __init__(
        self,
        iam_endpoint: str,
        domain: str,
        user: str,
        password: str | Secret,
        project_id: str | None,
        *,
        session: aiohttp.ClientSession,
        clock: Clock = time.monotonic,
        timeout_s: float = 30.0,
        refresh_margin_s: float = 600.0,
        refresh_fraction: float = 0.1,
    ) -> None:
        check_endpoint(iam_endpoint, what="the IAM endpoint")
        base = URL(iam_endpoint)
        self._password = _secret(password)
        if not domain or not user or not self._password or (project_id is not None and not project_id):
            raise ValueError("domain, user, password and project_id are all required for a password login")
        self.iam_endpoint = iam_endpoint
        prefix = base.path.rstrip("/")
        prefix = prefix.removesuffix("/v3")  # "https://iam.example.com/v3" is a common way to write the endpoint
        self._url = base.with_path(prefix + "/v3/auth/tokens").with_query(None)
        self._domain = domain
        self._user = user
        self.project_id = project_id
        self._clock = clock
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._margin_s = refresh_margin_s
        self._refresh_fraction = refresh_fraction
        self._token: _Token | None = None
        self._flight: asyncio.Future[Secret] | None = None
        self.logins = 0  # logins started, for tests and metrics

    async def headers(self, request: SignedRequest) -> Mapping[str, str]:
        return {"X-Auth-Token": await self.token()}

    async def token(self) -> str:
        """A valid token: the cached one, or the outcome of the (single) login under way or started now."""
        cached = self._token
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value.reveal()
        flight = self._flight
        if flight is None or flight.done():
            flight = asyncio.ensure_future(self._login())
            flight.add_done_callback(_consume_outcome)
            self._flight = flight
        # Shielded: a waiter that is cancelled must not cancel the login the others are waiting for.
        secret = await asyncio.shield(flight)
        return secret.reveal()

    async def invalidate(self, sent: Mapping[str, str]) -> bool:
        used = next((v for k, v in sent.items() if k.lower() == "x-auth-token"), None)
        cached = self._token
        # Only the token that was refused is dropped: when 100 requests get a 401 for it, the first drops it and
        # the other 99 find either the login under way or its fresh token.
        if cached is not None and used is not None and hmac.compare_digest(cached.value.reveal(), used):
            self._token = None
        return True

    def _login_body(self) -> bytes:
        auth = {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "domain": {"name": self._domain},
                        "name": self._user,
                        "password": self._password.reveal(),
                    }
                },
            },
            # No project: a token of the user's own domain (what assume_role needs to act in another account).
            "scope": {"project": {"id": self.project_id}}
            if self.project_id is not None
            else {"domain": {"name": self._domain}},
        }
        return json.dumps({"auth": auth}).encode()

    async def _login(self) -> Secret:
        session = self._session
        self.logins += 1
        started = self._clock()
        try:
            async with session.post(
                self._url,
                data=self._login_body(),
                headers={"Content-Type": _JSON + ";charset=utf8"},
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                status = response.status
                answer_headers = response.headers
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise error_from_transport(IAM_LOGIN_OPERATION, exc) from exc
        if status not in (200, 201):
            raise error_from_response(IAM_LOGIN_OPERATION, status, raw, answer_headers)
        value = answer_headers.get("X-Subject-Token")
        if not value:
            raise AuthError(
                "IAM answered without an X-Subject-Token header", operation=IAM_LOGIN_OPERATION, status=status
            )
        token = Secret(value)
        self._token = _Token(token, started + self._refresh_in(raw))
        return token

    def _refresh_in(self, raw: bytes) -> float:
        """Seconds from the login's start until the token should be refreshed."""
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        details = data.get("token") if isinstance(data, dict) else None
        expires = issued = None
        if isinstance(details, dict):
            expires = parse_instant(details.get("expires_at"))
            issued = parse_instant(details.get("issued_at"))
        if expires is not None and issued is not None and expires > issued:
            lifetime = expires - issued
        elif expires is not None:
            lifetime = max(0.0, expires - time.time())
        else:
            lifetime = self.ASSUMED_LIFETIME_S
        # At least a second: a token that looks already expired (clock skew, a bad answer) must not turn every
        # request into a login; if GES refuses it, the 401 path logs in again.
        return max(1.0, lifetime - min(self._margin_s, self._refresh_fraction * lifetime))

    def __repr__(self) -> str:
        return (
            f"PasswordAuth(iam_endpoint={self.iam_endpoint!r}, domain={self._domain!r}, user={self._user!r}, "
            f"password={self._password!r}, project_id={self.project_id!r})"
        )
