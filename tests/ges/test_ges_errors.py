"""Every wire failure maps to the documented error class, retryability and context fields."""

from __future__ import annotations

import json
import re
import ssl
from datetime import UTC, datetime
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ges_retention.ges import errors
from ges_retention.ges.errors import (
    ApiError,
    AuthError,
    BackupBusyError,
    BadRequestError,
    DeadlineExceeded,
    Forbidden,
    GesError,
    GraphGoneError,
    InvalidIdentifier,
    ListingError,
    NotFoundError,
    RequestTimeout,
    ServerError,
    ThrottledError,
    TlsError,
    TransportError,
    Unauthorized,
)
from ges_retention.ges.wire_errors import error_from_response, error_from_transport, parse_retry_after

# (status, error_code, class, retryable): the table of ges-api.md plus the issue's retry policy.
RESPONSE_MAPPINGS: list[tuple[int, str | None, type[ApiError], bool]] = [
    (400, "GES.7024", NotFoundError, False),  # delete turns this into already_deleted, elsewhere it is a failure
    (404, "GES.7024", NotFoundError, False),
    (400, "GES.0001", BadRequestError, False),
    (400, "GES.0016", NotFoundError, False),
    (400, "GES.7000", GraphGoneError, False),
    (400, "GES.7054", GraphGoneError, False),
    (400, "GES.7001", BadRequestError, False),
    (400, "GES.7002", BackupBusyError, True),
    (408, "GES.7005", ServerError, True),
    (400, "GES.7005", ServerError, True),  # the code decides, whatever the status
    (400, "GES.7019", BadRequestError, False),
    (400, "GES.7041", Forbidden, False),
    (401, "APIGW.0301", Unauthorized, False),
    (401, "APIGW.0307", Unauthorized, False),
    (429, "APIGW.0308", ThrottledError, True),
    (400, "APIGW.0308", ThrottledError, True),
    (502, "APIGW.0201", ServerError, True),
    (504, "APIGW.0201", ServerError, True),
    (503, "APIGW.0613", ServerError, True),
    (401, None, Unauthorized, False),
    (403, None, Forbidden, False),
    (404, None, NotFoundError, False),
    (404, "APIGW.0101", NotFoundError, False),  # a 404 without GES.7024 is no proof of deletion
    (409, None, BadRequestError, False),
    (408, None, ServerError, True),
    (429, None, ThrottledError, True),
    (500, None, ServerError, True),
    (502, None, ServerError, True),
    (503, None, ServerError, True),
    (504, None, ServerError, True),
    (501, None, ServerError, False),
    (505, None, ServerError, False),
    (302, None, ApiError, False),
]


@pytest.mark.parametrize(("status", "code", "cls", "retryable"), RESPONSE_MAPPINGS)
def test_every_response_mapping(status: int, code: str | None, cls: type[ApiError], retryable: bool) -> None:
    body: dict[str, Any] = {"error_msg": "something happened"}
    if code is not None:
        body["error_code"] = code
    error = error_from_response("delete_backup", status, json.dumps(body).encode(), {"X-Request-Id": "rid-1"})
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.status == status
    assert error.error_code == code
    assert error.error_msg == "something happened"
    assert error.request_id == "rid-1"
    assert error.operation == "delete_backup"


def test_the_issue_retry_policy_is_covered() -> None:
    retryable = {(s, c) for s, c, _, r in RESPONSE_MAPPINGS if r}
    for status in (429, 500, 502, 503, 504):
        assert (status, None) in retryable
    for code in ("GES.7002", "GES.7005", "APIGW.0201", "APIGW.0613"):
        assert any(c == code for _, c in retryable)
    fatal = {(s, c) for s, c, _, r in RESPONSE_MAPPINGS if not r}
    for code in ("GES.0001", "GES.7041"):
        assert any(c == code for _, c in fatal)
    assert (403, None) in fatal
    assert (401, None) in fatal


def test_hierarchy_is_as_drawn() -> None:
    assert issubclass(RequestTimeout, TransportError)
    assert issubclass(TlsError, TransportError)
    for api_cls in (ThrottledError, ServerError, AuthError, NotFoundError, BadRequestError):
        assert issubclass(api_cls, ApiError)
    assert issubclass(Unauthorized, AuthError)
    assert issubclass(Forbidden, AuthError)
    assert issubclass(GraphGoneError, BadRequestError)
    assert issubclass(BackupBusyError, BadRequestError)
    for cls in (TransportError, ApiError, ListingError, InvalidIdentifier, DeadlineExceeded):
        assert issubclass(cls, GesError)
    assert issubclass(InvalidIdentifier, ValueError)
    # Every class named in the docstring's tree exists, and every public class is in the tree.
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, GesError):
            assert re.search(rf"(^|\s){name}\s", doc, re.MULTILINE), name


def test_request_id_header_is_case_insensitive_and_body_is_a_fallback() -> None:
    body = b'{"error_code": "GES.0001", "error_msg": "bad", "request_id": "from-body"}'
    assert error_from_response("op", 400, body, {"x-request-id": "from-header"}).request_id == "from-header"
    proxy = CIMultiDictProxy(CIMultiDict({"X-REQUEST-ID": "ci"}))
    assert error_from_response("op", 400, body, proxy).request_id == "ci"
    assert error_from_response("op", 400, body, {}).request_id == "from-body"


def test_non_json_and_odd_bodies() -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1>\n" + b"x" * 2000 + b"</body></html>"
    error = error_from_response("list_backups", 502, html, {})
    assert type(error) is ServerError
    assert error.retryable
    assert error.error_code is None
    assert error.error_msg is not None
    assert error.error_msg.startswith("<html>")
    assert len(error.error_msg) <= 300
    assert "\n" not in error.error_msg
    for body in (b"", None, b"[1, 2]", b"null", "text"):
        assert type(error_from_response("op", 503, body, {})) is ServerError
    assert error_from_response("op", 400, {"error_code": "GES.7000"}, {}).error_code == "GES.7000"


def test_iam_error_body() -> None:
    body = b'{"error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}}'
    error = error_from_response("iam_login", 401, body, {})
    assert type(error) is Unauthorized
    assert error.error_code == "401"
    assert error.error_msg == "The username or password is wrong."


def test_message_repr_and_attempts() -> None:
    error = error_from_response(
        "delete_backup", 400, b'{"error_code":"GES.0001","error_msg":"incorrect parameter"}', {"X-Request-Id": "r9"}
    )
    assert str(error) == "delete_backup: HTTP 400 GES.0001: incorrect parameter (request_id=r9)"
    error.attempts = 3
    assert str(error) == "delete_backup: HTTP 400 GES.0001: incorrect parameter (request_id=r9, attempts=3)"
    assert repr(error).startswith("BadRequestError(operation='delete_backup', status=400, error_code='GES.0001'")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 0.5 ", 0.5),
        ("0", 0.0),
        ("-4", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2026, 11, 27, 12, 0, 7, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(7.0)
    earlier = format_datetime(datetime(2026, 11, 27, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    error = error_from_response("op", 429, b"", {"Retry-After": later}, now=now)
    assert isinstance(error, ThrottledError)
    assert error.retry_after_s == pytest.approx(7.0)


def _connection_key() -> Any:
    return SimpleNamespace(host="ges.example.test", port=443, is_ssl=True, ssl=True)


def _request_info() -> aiohttp.RequestInfo:
    url = URL("https://ges.example.test/v2/p/graphs")
    return aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)


TRANSPORT_MAPPINGS: list[tuple[BaseException, type[GesError], bool]] = [
    (TimeoutError(), RequestTimeout, True),
    (TimeoutError("read timed out"), RequestTimeout, True),
    (aiohttp.ServerTimeoutError("Timeout on reading data from socket"), RequestTimeout, True),
    (aiohttp.ConnectionTimeoutError("Connection timeout"), RequestTimeout, True),
    (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), RequestTimeout, True),
    (aiohttp.ServerDisconnectedError(), TransportError, True),
    (aiohttp.ClientOSError(104, "Connection reset by peer"), TransportError, True),
    (ConnectionResetError(104, "Connection reset by peer"), TransportError, True),
    (BrokenPipeError(32, "Broken pipe"), TransportError, True),
    (OSError(113, "No route to host"), TransportError, True),
    (aiohttp.ClientConnectorError(_connection_key(), OSError(111, "Connection refused")), TransportError, True),
    (aiohttp.ClientPayloadError("Response payload is not completed"), TransportError, True),
    (aiohttp.ClientResponseError(_request_info(), (), status=400, message="invalid HTTP"), TransportError, True),
    (aiohttp.ClientError("something"), TransportError, True),
    (
        aiohttp.ClientConnectorCertificateError(
            _connection_key(), ssl.SSLCertVerificationError(1, "certificate verify failed")
        ),
        TlsError,
        False,
    ),
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), TlsError, False),
    (aiohttp.InvalidURL("ges:/nowhere"), TransportError, False),
]


@pytest.mark.parametrize(("exc", "cls", "retryable"), TRANSPORT_MAPPINGS, ids=lambda v: type(v).__name__)
def test_every_transport_mapping(exc: BaseException, cls: type[GesError], retryable: bool) -> None:
    error = error_from_transport("list_backups", exc)
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.__cause__ is exc
    assert error.__suppress_context__
    assert error.operation == "list_backups"
    assert error.status is None
    assert str(error).startswith("list_backups: ")


def test_transport_mapping_passes_ges_errors_through() -> None:
    original = ServerError("x", operation="op", status=503)
    assert error_from_transport("other", original) is original


def test_context_fields_on_every_class() -> None:
    for cls in (
        GesError,
        TransportError,
        RequestTimeout,
        TlsError,
        ApiError,
        ThrottledError,
        ServerError,
        Unauthorized,
        Forbidden,
        NotFoundError,
        BadRequestError,
        GraphGoneError,
        BackupBusyError,
        DeadlineExceeded,
    ):
        error = cls("m", operation="op", status=418, error_code="X.1", error_msg="msg", request_id="r", attempts=2)
        assert (error.operation, error.status, error.error_code, error.error_msg, error.request_id, error.attempts) == (
            "op",
            418,
            "X.1",
            "msg",
            "r",
            2,
        )
        assert isinstance(error.retryable, bool)
    listing = ListingError("m", operation="op", reason="endless", offset=10)
    assert (listing.reason, listing.offset, listing.retryable) == ("endless", 10, False)
    invalid = InvalidIdentifier("m", operation="op", field="backup_id")
    assert (invalid.field, invalid.retryable) == ("backup_id", False)


def test_errors_survive_copy_and_pickle() -> None:
    import copy
    import pickle

    originals: list[GesError] = [
        error_from_response("delete_backup", 429, b'{"error_code":"APIGW.0308"}', {"Retry-After": "3"}),
        ListingError("m", operation="list_backups", reason="endless", offset=7, attempts=2),
        InvalidIdentifier("m", operation="delete_backup", field="graph_id"),
        error_from_transport("op", ConnectionResetError(104, "reset")),
    ]
    for original in originals:
        for clone in (copy.copy(original), pickle.loads(pickle.dumps(original))):
            assert type(clone) is type(original)
            assert str(clone) == str(original)
            assert repr(clone) == repr(original)
            assert vars(clone) == vars(original)
