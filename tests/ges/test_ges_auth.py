"""Credentials: the signer agrees with the official SDK's, password logins are single-flight and refreshed ahead of
expiry, and no secret shows in a repr, a str or an error."""

from __future__ import annotations

import asyncio
import json
import pickle
import string
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aioresponses import CallbackResult
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from ges_retention.ges import signing
from ges_retention.ges.auth import AkSkAuth, AuthProvider, PasswordAuth, Secret, TokenAuth
from ges_retention.ges.errors import AuthError, GesError, ServerError, TransportError, Unauthorized

from .fakes import FakeClock, mocked_http

IAM = "https://iam.example.test"
IAM_TOKENS = f"{IAM}/v3/auth/tokens"
PASSWORD = "pw-SECRET-do-not-show"
TOKEN_1 = "tok-SECRET-one"
TOKEN_2 = "tok-SECRET-two"
SK = "sk-SECRET-do-not-show"
SECURITY_TOKEN = "sts-SECRET-do-not-show"
SECRETS = (PASSWORD, TOKEN_1, TOKEN_2, SK, SECURITY_TOKEN)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def request_to(method: str, url: str, headers: dict[str, str] | None = None) -> signing.SignedRequest:
    """The request a client would send to `url`, as the signer sees it."""
    target = URL(url)
    host = target.host_port_subcomponent or ""
    return signing.SignedRequest.of(method, target.raw_path, target.query.items(), headers or {}, host=host)


def sdk_authorization(
    *,
    ak: str,
    sk: str,
    project_id: str,
    method: str,
    host: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    security_token: str | None = None,
) -> str:
    """What the official SDK's signer puts in `Authorization` for this request."""
    credentials = BasicCredentials(ak, sk, project_id)
    if security_token is not None:
        credentials = credentials.with_security_token(security_token)
    request = SdkRequest(
        method=method,
        schema="https",
        host=host,
        resource_path=path,
        query_params=list(query),
        header_params=dict(headers),
        body=body,
    )
    signed = credentials.sign_request(request)
    return str(signed.header_params["Authorization"])


# --------------------------------------------------------------------------------------------------------------------
# Secrets


def test_secret_never_shows() -> None:
    secret = Secret(PASSWORD)
    assert PASSWORD not in repr(secret)
    assert PASSWORD not in str(secret)
    assert PASSWORD not in f"{secret}"
    assert secret.reveal() == PASSWORD
    assert secret == Secret(PASSWORD)
    assert secret != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        hash(secret)


async def test_providers_reprs_hide_secrets(session: aiohttp.ClientSession) -> None:
    providers: list[AuthProvider] = [
        TokenAuth(TOKEN_1),
        AkSkAuth("AKEXAMPLE", SK, "p1", security_token=SECURITY_TOKEN),
        PasswordAuth(IAM, "dom", "alice", PASSWORD, "p1", session=session),
    ]
    for provider in providers:
        for text in (repr(provider), str(provider)):
            for secret in SECRETS:
                assert secret not in text
        assert not hasattr(provider, "__dict__")  # nothing to dump with vars()
    assert "alice" in repr(providers[2])


async def test_providers_refuse_empty_credentials(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError, match="token"):
        TokenAuth("")
    with pytest.raises(ValueError, match="key"):
        AkSkAuth("", SK, "p1")
    with pytest.raises(ValueError, match="project"):
        AkSkAuth("ak", SK, "")
    with pytest.raises(ValueError, match="required"):
        PasswordAuth(IAM, "dom", "alice", "", "p1", session=session)
    with pytest.raises(ValueError, match="IAM endpoint"):
        PasswordAuth("iam.example.test", "dom", "alice", PASSWORD, "p1", session=session)


async def test_token_auth() -> None:
    auth = TokenAuth(TOKEN_1)
    headers = await auth.headers(request_to("GET", "https://ges.example.test/v2/p/graphs"))
    assert headers == {"X-Auth-Token": TOKEN_1}
    assert await auth.invalidate(headers) is False  # a static token cannot be refreshed
    assert isinstance(auth, AuthProvider)
    with pytest.raises(TypeError):
        headers["X-Auth-Token"] = "changed"  # type: ignore[index]  # shared between requests: read-only


# --------------------------------------------------------------------------------------------------------------------
# AK/SK: the referee test against the official SDK


@pytest.mark.parametrize("security_token", [None, SECURITY_TOKEN])
@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("DELETE", "https://ges.cn-north-4.myhuaweicloud.com/v2/0a1b2c3d/graphs/4c5f-77/backups/ada3e720-1"),
        ("GET", "https://ges.cn-north-4.myhuaweicloud.com/v2/0a1b2c3d/graphs/backups?offset=200&limit=100"),
        ("GET", "http://127.0.0.1:8123/v2/0a1b2c3d/graphs?offset=0&limit=10"),
    ],
)
def test_signer_matches_the_official_sdk(method: str, url: str, security_token: str | None) -> None:
    auth = AkSkAuth("AKEXAMPLE0123", SK, "0a1b2c3d", security_token=security_token)
    target = URL(url)
    ours = auth.sign(request_to(method, url, {"Content-Type": "application/json"}), sdk_date="20261127T120000Z")
    expected_headers = {"Host", "X-Sdk-Date", "X-Project-Id", "Authorization"}
    if security_token:
        expected_headers.add("X-Security-Token")
    assert set(ours) == expected_headers
    assert ours["Host"] == target.host_port_subcomponent
    theirs = sdk_authorization(
        ak="AKEXAMPLE0123",
        sk=SK,
        project_id="0a1b2c3d",
        method=method,
        host=ours["Host"],
        path=target.raw_path,
        query=list(target.query.items()),
        headers={"Content-Type": "application/json", "X-Sdk-Date": "20261127T120000Z"},
        body=b"",
        security_token=security_token,
    )
    assert ours["Authorization"] == theirs


def test_signer_fixed_vector() -> None:
    # A golden value (checked against the SDK by the test above), so that the signer cannot drift unnoticed.
    auth = AkSkAuth("AKEXAMPLE0123", SK, "0a1b2c3d")
    url = "https://ges.cn-north-4.myhuaweicloud.com/v2/0a1b2c3d/graphs/g1/backups/b1"
    value = auth.sign(request_to("DELETE", url, {"Content-Type": "application/json"}), sdk_date="20261127T120000Z")
    assert value["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AKEXAMPLE0123, SignedHeaders=content-type;host;x-project-id;x-sdk-date, "
        "Signature=c349e9163f3a02b05b75b6531f91ad94fb7b4eae86ffebc34a320d6fd91430ce"
    )


_SEGMENT = st.text(alphabet=string.ascii_letters + string.digits + "-._~", min_size=1, max_size=20)
_ANY_TEXT = st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "DELETE", "POST", "PUT"]),
    segments=st.lists(_SEGMENT | _ANY_TEXT.filter(lambda s: "/" not in s), min_size=1, max_size=5),
    query=st.lists(st.tuples(_ANY_TEXT, _ANY_TEXT), max_size=4),
    extra=st.dictionaries(
        st.text(alphabet=string.ascii_letters + "-_", min_size=1, max_size=12).filter(
            lambda k: k.lower() not in {"host", "x-sdk-date", "authorization", "x-project-id", "content-type"}
        ),
        st.text(alphabet=string.printable.strip() + " ", max_size=30),
        max_size=3,
    ),
    body=st.binary(max_size=64),
    date=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    security_token=st.none() | st.just(SECURITY_TOKEN),
)
def test_signer_equals_the_sdk_signer_for_random_requests(
    method: str,
    segments: list[str],
    query: list[tuple[str, str]],
    extra: dict[str, str],
    body: bytes,
    date: datetime,
    security_token: str | None,
) -> None:
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    sdk_date = signing.format_sdk_date(date)
    headers = {"Content-Type": "application/json", "X-Sdk-Date": sdk_date, **extra}
    lowered = [k.lower() for k in headers]
    if len(set(lowered)) != len(lowered):
        return  # two spellings of one header name: not a request anyone sends
    ours_headers = {
        **headers,
        "Host": "ges.example.test",
        "X-Project-Id": "proj1",
        **({"X-Security-Token": security_token} if security_token else {}),
    }
    ours = signing.authorization_header(
        ak="AK1", sk=SK, request=signing.SignedRequest.of(method, path, query, ours_headers, body)
    )
    theirs = sdk_authorization(
        ak="AK1",
        sk=SK,
        project_id="proj1",
        method=method,
        host="ges.example.test",
        path=path,
        query=query,
        headers=headers,
        body=body,
        security_token=security_token,
    )
    assert ours == theirs


def test_aksk_date_comes_from_the_injected_wall_clock() -> None:
    auth = AkSkAuth("AK1", SK, "p1", clock=lambda: 1_700_000_000.9)
    headers = auth.sign(request_to("GET", "https://ges.example.test/v2/p1/graphs"))
    assert headers["X-Sdk-Date"] == "20231114T221320Z"
    assert datetime.strptime(headers["X-Sdk-Date"], signing.DATE_FORMAT).replace(tzinfo=UTC) == datetime(
        2023, 11, 14, 22, 13, 20, tzinfo=UTC
    )


async def test_aksk_cannot_refresh() -> None:
    auth = AkSkAuth("AK1", SK, "p1")
    sent = await auth.headers(request_to("GET", "https://ges.example.test/v2/p1/graphs"))
    assert "Authorization" in sent
    assert await auth.invalidate(sent) is False


# --------------------------------------------------------------------------------------------------------------------
# IAM password login


def iam_answer(token: str, lifetime: timedelta = timedelta(hours=24), status: int = 201) -> CallbackResult:
    issued = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    body = {
        "token": {
            "issued_at": issued.isoformat().replace("+00:00", ".000000Z"),
            "expires_at": (issued + lifetime).isoformat().replace("+00:00", ".000000Z"),
        }
    }
    return CallbackResult(status=status, payload=body, headers={"X-Subject-Token": token})


async def test_login_request_and_cached_token(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    auth = PasswordAuth(IAM, "dom", "alice", PASSWORD, "p1", clock=clock.time, session=session)
    bodies: list[Any] = []

    def answer(url: URL, **kwargs: Any) -> CallbackResult:
        bodies.append(json.loads(kwargs["data"]))
        return iam_answer(TOKEN_1)

    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=answer, repeat=True)
        assert await auth.headers(request_to("GET", "https://ges.example.test/")) == {"X-Auth-Token": TOKEN_1}
        assert await auth.token() == TOKEN_1
    assert auth.logins == 1
    assert bodies == [
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"domain": {"name": "dom"}, "name": "alice", "password": PASSWORD}},
                },
                "scope": {"project": {"id": "p1"}},
            }
        }
    ]


async def test_a_hundred_concurrent_requests_trigger_one_login(session: aiohttp.ClientSession) -> None:
    auth = PasswordAuth(IAM, "dom", "alice", PASSWORD, "p1", clock=FakeClock().time, session=session)
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer(TOKEN_1), repeat=True)
        tokens = await asyncio.gather(*(auth.token() for _ in range(100)))
    assert set(tokens) == {TOKEN_1}
    assert auth.logins == 1


async def test_token_is_refreshed_ahead_of_expiry(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    auth = PasswordAuth(IAM, "dom", "alice", PASSWORD, "p1", clock=clock.time, session=session)
    answers = iter([TOKEN_1, TOKEN_2])
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer(next(answers), timedelta(hours=1)), repeat=True)
        assert await auth.token() == TOKEN_1
        # 1 h token: refreshed once less than min(10 min, 10% = 6 min) is left, i.e. after 54 minutes.
        clock.advance(53 * 60)
        assert await auth.token() == TOKEN_1
        clock.advance(2 * 60)
        assert await auth.token() == TOKEN_2
    assert auth.logins == 2


async def test_a_24h_token_is_refreshed_ten_minutes_ahead(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    auth = PasswordAuth(IAM, "dom", "alice", PASSWORD, "p1", clock=clock.time, session=session)
    answers = iter([TOKEN_1, TOKEN_2])
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer(next(answers)), repeat=True)
        await auth.token()
        clock.advance(24 * 3600 - 11 * 60)
        assert await auth.token() == TOKEN_1
        clock.advance(2 * 60)
        assert await auth.token() == TOKEN_2


async def test_invalidate_drops_only_the_refused_token(session: aiohttp.ClientSession) -> None:
    auth = PasswordAuth(IAM, "dom", "alice", PASSWORD, "p1", clock=FakeClock().time, session=session)
    answers = iter([TOKEN_1, TOKEN_2])
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer(next(answers)), repeat=True)
        assert await auth.token() == TOKEN_1
        # 50 requests got a 401 for TOKEN_1: the first invalidation drops it, the rest find the new one.
        assert await auth.invalidate({"X-Auth-Token": TOKEN_1}) is True
        tokens = await asyncio.gather(*(auth.token() for _ in range(50)))
        for _ in range(49):
            assert await auth.invalidate({"x-auth-token": TOKEN_1}) is True
        assert set(tokens) == {TOKEN_2}
        assert await auth.token() == TOKEN_2
    assert auth.logins == 2


async def test_a_failed_login_fails_every_waiter_once(session: aiohttp.ClientSession) -> None:
    auth = PasswordAuth(IAM, "dom", "alice", PASSWORD, "p1", clock=FakeClock().time, session=session)
    iam_error = {"error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}}
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, status=401, payload=iam_error)
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer(TOKEN_1))
        results = await asyncio.gather(*(auth.token() for _ in range(10)), return_exceptions=True)
        assert auth.logins == 1
        for result in results:
            assert isinstance(result, Unauthorized)
            assert result.operation == "iam_login"
            assert not result.retryable
            for secret in SECRETS:
                assert secret not in str(result)
                assert secret not in repr(result)
        # The next call starts a new login.
        assert await auth.token() == TOKEN_1
    assert auth.logins == 2


@pytest.mark.parametrize(
    ("answer", "cls", "retryable"),
    [
        ({"status": 503, "body": "busy"}, ServerError, True),
        ({"status": 201, "payload": {"token": {}}}, AuthError, False),  # no X-Subject-Token
        ({"exception": aiohttp.ServerDisconnectedError()}, TransportError, True),
    ],
)
async def test_login_failures_are_mapped(
    session: aiohttp.ClientSession, answer: dict[str, Any], cls: type[GesError], retryable: bool
) -> None:
    auth = PasswordAuth(IAM, "dom", "alice", PASSWORD, "p1", session=session)
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, **answer)
        with pytest.raises(cls) as caught:
            await auth.token()
    assert caught.value.retryable is retryable
    assert caught.value.operation == "iam_login"
    assert PASSWORD not in str(caught.value)


async def test_unparseable_expiry_assumes_a_short_lifetime(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    auth = PasswordAuth(IAM, "dom", "alice", PASSWORD, "p1", clock=clock.time, session=session)
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, status=201, body=b"not json", headers={"X-Subject-Token": TOKEN_1})
        mocked.post(IAM_TOKENS, status=201, payload={}, headers={"X-Subject-Token": TOKEN_2})
        assert await auth.token() == TOKEN_1
        clock.advance(PasswordAuth.ASSUMED_LIFETIME_S)
        assert await auth.token() == TOKEN_2


async def test_a_cancelled_waiter_does_not_cancel_the_login(session: aiohttp.ClientSession) -> None:
    auth = PasswordAuth(IAM, "dom", "alice", PASSWORD, "p1", session=session)
    release = asyncio.Event()
    login_started = asyncio.Event()

    async def slow_answer(url: URL, **kwargs: Any) -> CallbackResult:
        login_started.set()
        await release.wait()
        return iam_answer(TOKEN_1)

    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=slow_answer)
        first = asyncio.create_task(auth.token())
        second = asyncio.create_task(auth.token())
        # Both are waiting on the one login once IAM has the request: an event, not a real sleep.
        await asyncio.wait_for(login_started.wait(), 5)
        first.cancel()
        release.set()
        assert await second == TOKEN_1
        with pytest.raises(asyncio.CancelledError):
            await first
    assert auth.logins == 1


async def test_a_token_that_looks_expired_does_not_cause_a_login_per_request(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    auth = PasswordAuth(IAM, "dom", "alice", PASSWORD, "p1", clock=clock.time, session=session)
    past = {"token": {"expires_at": "2001-01-01T00:00:00Z"}}  # no issued_at, and long gone by this clock
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, status=201, payload=past, headers={"X-Subject-Token": TOKEN_1}, repeat=True)
        for _ in range(50):
            await auth.token()
        assert auth.logins == 1
        clock.advance(1.0)
        await auth.token()
    assert auth.logins == 2


@pytest.mark.parametrize("endpoint", [IAM, IAM + "/", IAM + "/v3", IAM + "/v3/"])
async def test_iam_endpoint_spellings(session: aiohttp.ClientSession, endpoint: str) -> None:
    auth = PasswordAuth(endpoint, "dom", "alice", PASSWORD, "p1", session=session)
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer(TOKEN_1))
        assert await auth.token() == TOKEN_1
