"""Every way a GES call can fail, as one exception hierarchy, and the mapping of wire failures onto it.

```
GesError                      operation, status, error_code, error_msg, request_id, attempts, retryable
├── TransportError            no HTTP answer: refused, reset, DNS, broken body        retryable
│   ├── RequestTimeout        no answer within the request timeout                    retryable
│   └── TlsError              the server's certificate failed verification            fatal
├── ApiError                  an HTTP answer that is not a success (+ retry_after_s)
│   ├── ThrottledError        429, APIGW.0308                                         retryable
│   ├── ServerError           5xx, 408, GES.7005, APIGW.0201, APIGW.0613              retryable (not 501, 505)
│   ├── AuthError             the credentials were refused
│   │   ├── Unauthorized      401 (the client refreshes refreshable credentials once) fatal
│   │   ├── Forbidden         403, GES.7041                                           fatal
│   │   └── AgencyRefused     IAM would not assume a policy's agency (agency_refused)  fatal
│   ├── NotFoundError         404 without GES.7024; GES.0016; GES.7024 (not a delete) fatal
│   └── BadRequestError       any other 4xx: GES.0001, GES.7001, ...                  fatal
│       ├── GraphGoneError    GES.7000, GES.7054: the graph is gone or going          fatal
│       └── BackupBusyError   GES.7002: the graph is being backed up                  retryable
├── ListingError              a page of the wrong shape, or a server paging forever   fatal
├── InvalidIdentifier         a path segment refused, before any request (ValueError) fatal
└── DeadlineExceeded          the caller's deadline passed (last failure: __cause__)  fatal
```

Two mapping functions are the only doors from the wire into this hierarchy: `error_from_response` for an HTTP answer and
`error_from_transport` for an aiohttp/OS/timeout exception (the mapped error keeps the original as `__cause__`).

Messages are built from the operation, the HTTP status, the GES error code and the server's message: never from request
headers or bodies, so a token, password or secret key can never reach an error's text or repr.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import aiohttp

__all__ = [
    "AUTH_FAILED_CODES",
    "GRAPH_GONE_CODES",
    "RETRYABLE_CODES",
    "RETRYABLE_STATUSES",
    "THROTTLED_CODES",
    "AgencyRefused",
    "ApiError",
    "AuthError",
    "BackupBusyError",
    "BadRequestError",
    "DeadlineExceeded",
    "Forbidden",
    "GesError",
    "GraphGoneError",
    "InvalidIdentifier",
    "ListingError",
    "NotFoundError",
    "RequestTimeout",
    "ServerError",
    "ThrottledError",
    "TlsError",
    "TransportError",
    "Unauthorized",
    "error_from_response",
    "error_from_transport",
    "parse_retry_after",
]

BACKUP_GONE_CODE = "GES.7024"
GRAPH_GONE_CODES = frozenset({"GES.7000", "GES.7054"})
BACKUP_BUSY_CODE = "GES.7002"
FORBIDDEN_CODES = frozenset({"GES.7041"})
NOT_FOUND_CODES = frozenset({BACKUP_GONE_CODE, "GES.0016"})
THROTTLED_CODES = frozenset({"APIGW.0308"})
AUTH_FAILED_CODES = frozenset({"APIGW.0301", "APIGW.0307"})
# Server-side trouble that the same request may well get past a little later.
SERVER_RETRYABLE_CODES = frozenset({"GES.7005", "APIGW.0201", "APIGW.0613"})
RETRYABLE_CODES = SERVER_RETRYABLE_CODES | THROTTLED_CODES | {BACKUP_BUSY_CODE}
# 408 is the server giving up on waiting (GES.7005 rides on it); 501 and 505 are not transient, so not retried.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# A server's message is quoted in ours; an HTML error page is not worth more than this.
_MAX_MSG = 300


class GesError(Exception):
    """Base of every GES client failure. `attempts` is set by the client once it gives up."""

    retryable_by_default: ClassVar[bool] = False

    def __init__(
        self,
        message: str = "",
        *,
        operation: str,
        status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        request_id: str | None = None,
        attempts: int = 0,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.attempts = attempts
        self.retryable: bool = self.retryable_by_default if retryable is None else retryable

    def __str__(self) -> str:
        # Built on demand so that `attempts`, set after construction, shows.
        parts = [f"{self.operation}: {self.message}" if self.message else self.operation]
        details = []
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        if self.attempts:
            details.append(f"attempts={self.attempts}")
        if details:
            parts.append(f"({', '.join(details)})")
        return " ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword-only context would be lost by Exception's default (it rebuilds from `args`): copy and pickle
        # (e.g. to another process) keep every field.
        return _restore, (type(self), self.message, dict(self.__dict__))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(operation={self.operation!r}, status={self.status!r}, "
            f"error_code={self.error_code!r}, error_msg={self.error_msg!r}, request_id={self.request_id!r}, "
            f"attempts={self.attempts!r}, retryable={self.retryable!r})"
        )


def _restore(cls: type[GesError], message: str, state: dict[str, Any]) -> GesError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class TransportError(GesError):
    """No HTTP answer: the connection failed, was reset, or the answer could not be read."""

    retryable_by_default = True


class RequestTimeout(TransportError):
    """No complete answer within the request timeout."""


class TlsError(TransportError):
    """The server's certificate failed verification: retrying cannot help, the trust setup must change."""

    retryable_by_default = False


class ApiError(GesError):
    """The server answered with an error. `retry_after_s` is its `Retry-After`, when it sent one."""

    def __init__(self, message: str = "", *, retry_after_s: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after_s = retry_after_s


class ThrottledError(ApiError):
    """429: the gateway counts calls per second and this client went over."""

    retryable_by_default = True


class ServerError(ApiError):
    """The server (or the gateway in front of it) failed or timed out."""


class AuthError(ApiError):
    """The credentials were refused."""


class Unauthorized(AuthError):
    """401: bad, expired or revoked credentials, or a signature the gateway rejects (clock skew?)."""


class Forbidden(AuthError):
    """403 or GES.7041: the credentials are fine but lack the permission."""


class AgencyRefused(AuthError):
    """IAM refused to assume an agency (unknown domain or agency, not trusted, the caller's credentials refused):
    `error_code` is `agency_refused`, the message names the agency and quotes IAM."""

    CODE: ClassVar[str] = "agency_refused"


class NotFoundError(ApiError):
    """404 (wrong endpoint or project?) or a GES "does not exist" code. Never proof of a deletion by itself."""


class BadRequestError(ApiError):
    """A 4xx that the same request will get again."""


class GraphGoneError(BadRequestError):
    """GES.7000 / GES.7054: the graph does not exist or is being deleted; that graph's work fails, others go on."""


class BackupBusyError(BadRequestError):
    """GES.7002: the graph is being backed up; later is fine."""

    retryable_by_default = True


class ListingError(GesError):
    """A listing cannot be trusted: a page of the wrong shape, or paging that does not end.

    `reason` is one of `invalid_page`, `endless`, `repeating` (a page of ids already seen before the count).
    """

    def __init__(self, message: str = "", *, reason: str, offset: int | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.reason = reason
        self.offset = offset


class InvalidIdentifier(GesError, ValueError):
    """An identifier that cannot be a single, literal URL path segment. Raised before any request."""

    def __init__(self, message: str = "", *, field: str, **context: Any) -> None:
        super().__init__(message, **context)
        self.field = field


class DeadlineExceeded(GesError):
    """The caller's deadline passed (or a backoff wait would end after it) before the work finished.

    The last failure, if any, is `__cause__`.
    """


# --------------------------------------------------------------------------------------------------------------------
# Mapping of HTTP answers


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        # aiohttp gives a case-insensitive mapping; a plain dict (tests, other callers) may not be.
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or an HTTP date); None when absent or unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or infinite: not a usable hint
        return None
    return max(0.0, seconds)


def _decode_body(body: bytes | str | Mapping[str, Any] | None) -> tuple[Mapping[str, Any] | None, str | None]:
    """(the JSON object if the body is one, else a short text excerpt)."""
    if body is None:
        return None, None
    if isinstance(body, Mapping):
        return body, None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        excerpt = " ".join(text.split())[:_MAX_MSG]
        return None, excerpt or None
    if isinstance(parsed, dict):
        return parsed, None
    return None, " ".join(text.split())[:_MAX_MSG] or None


def _str_field(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text[:_MAX_MSG] or None


def _error_fields(data: Mapping[str, Any] | None) -> tuple[str | None, str | None, str | None]:
    """(error_code, error_msg, request_id) from a GES/gateway body or an IAM (`{"error": {...}}`) body."""
    if data is None:
        return None, None, None
    code = _str_field(data, "error_code")
    msg = _str_field(data, "error_msg")
    request_id = _str_field(data, "request_id")
    nested = data.get("error")
    if isinstance(nested, Mapping):
        # IAM: {"error": {"code": 401, "message": "...", "title": "Unauthorized"}} (GES's own codes are strings).
        code = code or _str_field(nested, "error_code") or _str_field(nested, "code")
        msg = msg or _str_field(nested, "error_msg") or _str_field(nested, "message")
    return code, msg, request_id


def _api_error_class(status: int, code: str | None) -> tuple[type[ApiError], bool | None]:
    """The class for (status, code) and, where it differs from the class default, whether it is retryable."""
    # GES codes are more precise than statuses (GES answers most errors with 400), so they are looked at first.
    by_code = None if code is None else _api_error_class_for_code(code)
    return by_code if by_code is not None else _api_error_class_for_status(status)


def _api_error_class_for_code(code: str) -> tuple[type[ApiError], bool | None] | None:
    """The class a GES/IAM error code names, or None when the code alone does not decide it."""
    if code in GRAPH_GONE_CODES:
        return GraphGoneError, None
    if code == BACKUP_BUSY_CODE:
        return BackupBusyError, None
    if code in FORBIDDEN_CODES:
        return Forbidden, None
    if code in NOT_FOUND_CODES:
        return NotFoundError, None
    if code in THROTTLED_CODES:
        return ThrottledError, None
    if code in SERVER_RETRYABLE_CODES:
        return ServerError, True
    return None


def _api_error_class_for_status(status: int) -> tuple[type[ApiError], bool | None]:
    if status == 429:
        return ThrottledError, None
    if status >= 500 or status == 408:
        return ServerError, status in RETRYABLE_STATUSES
    if status == 401:
        return Unauthorized, None
    if status == 403:
        return Forbidden, None
    if status == 404:
        return NotFoundError, None
    if 400 <= status < 500:
        return BadRequestError, None
    # 1xx/3xx (redirects are not followed: they could carry credentials elsewhere) and anything unheard of.
    return ApiError, False


def error_from_response(
    operation: str,
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
) -> ApiError:
    """The error for an HTTP answer that is not a success (the caller decides what counts as success)."""
    data, excerpt = _decode_body(body)
    code, msg, body_request_id = _error_fields(data)
    request_id = _header(headers, "X-Request-Id") or body_request_id
    retry_after = parse_retry_after(_header(headers, "Retry-After"), now=now)
    cls, retryable = _api_error_class(status, code)
    text = msg if msg is not None else excerpt
    message = f"HTTP {status}" + (f" {code}" if code else "") + (f": {text}" if text else "")
    return cls(
        message,
        operation=operation,
        status=status,
        error_code=code,
        error_msg=text,
        request_id=request_id,
        retryable=retryable,
        retry_after_s=retry_after,
    )


# --------------------------------------------------------------------------------------------------------------------
# Mapping of transport failures


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_from_transport(operation: str, exc: BaseException) -> GesError:
    """The error for an exception raised while sending or reading (aiohttp, OSError, timeouts).

    The result has `exc` as its `__cause__`, as `raise mapped from exc` would; a `GesError` is returned unchanged.
    `asyncio.CancelledError` must never come here: cancellation is not a failure.
    """
    if isinstance(exc, GesError):
        return exc
    error: GesError
    # Order matters: aiohttp's timeout errors are also connection errors, its certificate error also an OSError.
    if isinstance(exc, TimeoutError):
        error = RequestTimeout("no answer within the request timeout", operation=operation)
    elif isinstance(exc, (aiohttp.ClientConnectorCertificateError, ssl.SSLCertVerificationError)):
        error = TlsError(f"TLS certificate verification failed: {_describe(exc)}", operation=operation)
    elif isinstance(exc, aiohttp.InvalidURL):
        error = TransportError(f"invalid URL: {_describe(exc)}", operation=operation, retryable=False)
    elif isinstance(exc, (aiohttp.ClientConnectionError, OSError)):
        error = TransportError(f"connection failed: {_describe(exc)}", operation=operation)
    elif isinstance(exc, aiohttp.ClientPayloadError):
        error = TransportError(f"answer body broken: {_describe(exc)}", operation=operation)
    elif isinstance(exc, aiohttp.ClientResponseError):
        error = TransportError(f"malformed answer: {_describe(exc)}", operation=operation)
    else:
        error = TransportError(f"request failed: {_describe(exc)}", operation=operation)
    error.__cause__ = exc
    error.__suppress_context__ = True
    return error
