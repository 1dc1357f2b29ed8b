"""The mapping of wire failures onto the GES error tree (`errors`): the only doors from the wire into it.

`error_from_response` maps an HTTP answer that is not a success (GES, the API gateway or IAM), by error code first
(GES answers most errors with 400) and then by status; `error_from_transport` maps an aiohttp/OS/timeout exception
(the mapped error keeps the original as `__cause__`). `parse_retry_after` reads a `Retry-After` header.

Messages are built from the operation, the HTTP status, the GES error code and the server's message: never from request
headers or bodies, so a token, password or secret key can never reach an error's text or repr.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from ges_retention.ges.errors import (
    ApiError,
    BackupBusyError,
    BadRequestError,
    Forbidden,
    GesError,
    GraphGoneError,
    NotFoundError,
    RequestTimeout,
    ServerError,
    ThrottledError,
    TlsError,
    TransportError,
    Unauthorized,
)

__all__ = [
    "AUTH_FAILED_CODES",
    "BACKUP_GONE_CODE",
    "GRAPH_GONE_CODES",
    "RETRYABLE_CODES",
    "RETRYABLE_STATUSES",
    "THROTTLED_CODES",
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
