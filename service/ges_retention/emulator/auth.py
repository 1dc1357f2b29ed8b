"""Authentication as the cloud's API gateway does it: IAM tokens and AK/SK `SDK-HMAC-SHA256` signatures.

Signatures are verified by recomputing them with `ges_retention.ges.signing` (the same pure functions the service
signs with; the official SDK referee test keeps both honest) over what arrived on the wire, as one `SignedRequest`: the
raw path, the query pairs, the headers named in `SignedHeaders` and the body. The scheme name is matched without regard
to case (RFC 7235).

Answers: no or unknown credential, bad signature, `X-Sdk-Date` more than 15 minutes off, a temporary key without its
security token: 401 `APIGW.0301`; expired token or expired security token (an agency's temporary credentials): 401
`APIGW.0307` ("The token must be updated.", ges-api.md); a credential valid for another project (or an `X-Project-Id`
naming another one): 403.

Temporary credentials (`iam.py`, assume_role) live in the `TokenRegistry` beside the issued tokens: an AK, its SK and
security token, the agency's projects and an expiry on the emulator's clock.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from ges_retention.emulator.config import AccessKey, Agency, EmulatorConfig, IamUser
from ges_retention.emulator.errors import auth_failed, forbidden, token_expired
from ges_retention.ges.signing import SignedRequest, canonical_request, parse_authorization, signature

__all__ = [
    "MAX_CLOCK_SKEW_S",
    "IssuedToken",
    "TemporaryKey",
    "TokenRegistry",
    "authenticate",
    "iso_z",
    "verify_signature",
]

MAX_CLOCK_SKEW_S = 15 * 60
_SDK_DATE_RE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")


def iso_z(epoch_s: float) -> str:
    """IAM's timestamp format: `2026-11-27T12:35:00.123000Z`."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    user: IamUser
    project_id: str | None  # None: a domain-scoped token (it may call IAM, not GES)
    issued_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class TemporaryKey:
    """An agency's temporary credentials, as IAM issued them."""

    ak: str
    sk: str
    security_token: str
    agency: Agency
    expires_at: float


class TokenRegistry:
    """Tokens issued by the emulated IAM (static tokens live in the config and never expire)."""

    def __init__(self) -> None:
        self._issued: dict[str, IssuedToken] = {}
        self._temporary: dict[str, TemporaryKey] = {}

    def issue(self, user: IamUser, project_id: str | None, *, now: float, lifetime_s: float) -> tuple[str, IssuedToken]:
        # Real tokens are long opaque strings starting with "MII"; the shape matters only for header sizes.
        token = "MIIemu" + secrets.token_urlsafe(48)
        issued = IssuedToken(user=user, project_id=project_id, issued_at=now, expires_at=now + lifetime_s)
        self._issued[token] = issued
        return token, issued

    def lookup(self, token: str) -> IssuedToken | None:
        return self._issued.get(token)

    def issue_temporary(self, agency: Agency, *, expires_at: float) -> TemporaryKey:
        # Shapes of the cloud's: a 20-character upper-case AK, a 40-character SK, a long opaque security token.
        ak = "EMUTMP" + secrets.token_hex(7).upper()
        key = TemporaryKey(ak, secrets.token_urlsafe(30), "gQ" + secrets.token_urlsafe(240), agency, expires_at)
        self._temporary[ak] = key
        return key

    def temporary(self, ak: str) -> TemporaryKey | None:
        return self._temporary.get(ak)

    def temporary_keys(self) -> list[TemporaryKey]:
        """Every temporary credential issued (tests look for their secrets where none may be)."""
        return list(self._temporary.values())

    def expire_temporary(self, now: float) -> int:
        """Every temporary credential expires now (tests: a security token that expires in the middle of a run)."""
        for ak, key in self._temporary.items():
            self._temporary[ak] = TemporaryKey(key.ak, key.sk, key.security_token, key.agency, min(key.expires_at, now))
        return len(self._temporary)

    def clear(self) -> None:
        self._issued.clear()
        self._temporary.clear()


def authenticate(
    *,
    config: EmulatorConfig,
    tokens: TokenRegistry,
    project_id: str,
    request: SignedRequest,
    now: float,
) -> None:
    """Raise the gateway's `ApiError` unless `request` may act on `project_id`. Its `headers` are case-insensitive."""
    headers = request.headers
    token = headers.get("X-Auth-Token")
    if token is not None:
        _check_token(config, tokens, token, project_id, now)
        return
    authorization = headers.get("Authorization")
    if authorization is None:
        raise auth_failed("no X-Auth-Token and no Authorization header")
    key = verify_signature(config, tokens, request, authorization, now)
    if isinstance(key, TemporaryKey):
        if project_id not in key.agency.project_ids:
            raise forbidden("the agency does not reach this project")
    elif key.project_id != project_id:
        raise forbidden("the access key belongs to another project")
    header_project = headers.get("X-Project-Id")
    if header_project is not None and header_project != project_id:
        raise forbidden("X-Project-Id does not match the project in the path")


def _check_token(config: EmulatorConfig, tokens: TokenRegistry, token: str, project_id: str, now: float) -> None:
    scope = config.tokens.get(token)
    if scope is None:
        issued = tokens.lookup(token)
        if issued is None:
            raise auth_failed("decrypt token fail")
        if now >= issued.expires_at:
            raise token_expired()
        scope = issued.project_id
    if scope != project_id:
        raise forbidden("the token is scoped to another project")


def _sdk_date_epoch(value: str) -> float | None:
    match = _SDK_DATE_RE.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
    except ValueError:
        return None


def verify_signature(
    config: EmulatorConfig, tokens: TokenRegistry, request: SignedRequest, authorization: str, now: float
) -> AccessKey | TemporaryKey:
    """The key that signed `request` (a configured one, or an agency's temporary one with its valid security token);
    the gateway's `ApiError` otherwise. Whom the key may act for is the caller's to check."""
    headers = request.headers
    parsed = parse_authorization(authorization)
    if parsed is None:
        raise auth_failed("the Authorization header is not an SDK-HMAC-SHA256 signature")
    ak, signed_names, received = parsed
    key: AccessKey | TemporaryKey | None = config.access_key(ak) or tokens.temporary(ak)
    if key is None:
        raise auth_failed(f"Get secretKey failed,ak:{ak},err:ak not exist")
    if "host" not in signed_names or "x-sdk-date" not in signed_names:
        raise auth_failed("SignedHeaders must include host and x-sdk-date")
    signed_headers: dict[str, str] = {}
    for name in signed_names:
        value = headers.get(name)
        if value is None:
            raise auth_failed(f"the signed header {name!r} is missing")
        signed_headers[name] = value
    sdk_date = signed_headers["x-sdk-date"]
    sent_at = _sdk_date_epoch(sdk_date)
    if sent_at is None:
        raise auth_failed("X-Sdk-Date must look like 20260101T120000Z")
    if abs(now - sent_at) > MAX_CLOCK_SKEW_S:
        raise auth_failed("the X-Sdk-Date is more than 15 minutes away from the server's time")
    canonical, recomputed_names = canonical_request(request.with_headers(signed_headers))
    if recomputed_names != signed_names:
        raise auth_failed("SignedHeaders must be lower-case, sorted and separated by ';'")
    expected = signature(key.sk, sdk_date, canonical)
    if not hmac.compare_digest(expected, received):
        raise auth_failed("verify aksk signature fail")
    if key.security_token is not None and headers.get("X-Security-Token") != key.security_token:
        raise auth_failed("the security token of this temporary access key is missing or wrong")
    if isinstance(key, TemporaryKey) and now >= key.expires_at:
        raise token_expired()
    return key
