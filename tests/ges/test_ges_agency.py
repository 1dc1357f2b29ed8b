"""An agency's temporary credentials: assumed with AK/SK or a domain-scoped password login (never a static token),
cached per agency, refreshed 5 minutes before expiry on a moved fake clock, single-flight, dropped on a 401, a
refusal named clearly, and no secret in a repr, an error or a log line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult
from yarl import URL

from ges_retention.ges import signing
from ges_retention.ges.agency import AgencyAuth, AssumeRole
from ges_retention.ges.auth import AkSkAuth, PasswordAuth, TokenAuth
from ges_retention.ges.client import ClientConfig, GesClient
from ges_retention.ges.errors import AgencyRefused, GesError, ServerError, Unauthorized
from ges_retention.logs import REDACTED, forget_secrets, redact_event, register_secrets

from .fakes import FakeClock, calls, mocked_http

IAM = "https://iam.example.test"
STS = f"{IAM}/v3.0/OS-CREDENTIAL/securitytokens"
TOKENS = f"{IAM}/v3/auth/tokens"
GES = "https://ges.example.test"
PROJECT = "0b1c2d3e4f50"
LIST = f"{GES}/v2/{PROJECT}/graphs/backups?limit=100&offset=0"
AK, SK = "CALLERAK", "caller-SECRET-sk"
WALL_START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()


class Clocks:
    """One fake time seen as a monotonic clock and as the wall clock, moved by the test."""

    def __init__(self) -> None:
        self.monotonic = FakeClock(1000.0)

    def wall(self) -> float:
        return WALL_START + self.monotonic.now - 1000.0

    def advance(self, seconds: float) -> None:
        self.monotonic.advance(seconds)


def temp(n: int) -> tuple[str, str, str]:
    return f"TEMPAK{n}", f"temp-SECRET-sk-{n}", f"sts-SECRET-token-{n}"


def sts_answer(clocks: Clocks, n: int, lifetime_s: float = 3600) -> CallbackResult:
    ak, sk, token = temp(n)
    expires = datetime.fromtimestamp(clocks.wall() + lifetime_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"credential": {"access": ak, "secret": sk, "securitytoken": token, "expires_at": expires}}
    return CallbackResult(status=201, body=json.dumps(body))


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def role_for(
    session: aiohttp.ClientSession, clocks: Clocks, caller: Any = None, seen: list[Any] | None = None
) -> AssumeRole:
    return AssumeRole(
        IAM,
        "other-account",
        "ges-retention",
        caller if caller is not None else AkSkAuth(AK, SK, None),
        session=session,
        clock=clocks.monotonic.time,
        wall_clock=clocks.wall,
        on_secret=None if seen is None else (lambda new, old: seen.append((list(new), list(old)))),
    )


def request_to(method: str, url: str) -> signing.SignedRequest:
    target = URL(url)
    return signing.SignedRequest.of(method, target.raw_path, target.query.items(), {}, host=target.host or "")


async def test_assume_role_sends_the_contract_body_signed_with_the_callers_keys(
    session: aiohttp.ClientSession, clocks: Clocks
) -> None:
    role = role_for(session, clocks)
    with mocked_http() as mocked:
        mocked.post(STS, callback=lambda url, **kw: sts_answer(clocks, 1))
        credentials = await role.credentials()
        ((_, _, sent),) = calls(mocked, "POST")
    assert json.loads(sent["data"]) == {
        "auth": {
            "identity": {
                "methods": ["assume_role"],
                "assume_role": {
                    "domain_name": "other-account",
                    "agency_name": "ges-retention",
                    "duration_seconds": 3600,
                },
            }
        }
    }
    headers = sent["headers"]
    assert headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={AK}, ")
    assert "X-Project-Id" not in headers  # IAM is global: no project
    # The signature is the one the emulator (and the gateway) recompute over what was sent.
    sent_request = signing.SignedRequest.of(
        "POST",
        URL(STS).raw_path,
        (),
        {k: v for k, v in headers.items() if k != "Authorization"},
        sent["data"],
        host="iam.example.test",
    )
    assert headers["Authorization"] == signing.authorization_header(ak=AK, sk=SK, request=sent_request)
    assert (credentials.ak, credentials.sk.reveal(), credentials.security_token.reveal()) == temp(1)


async def test_credentials_are_cached_and_refreshed_five_minutes_before_expiry(
    session: aiohttp.ClientSession, clocks: Clocks
) -> None:
    role = role_for(session, clocks)
    answers = iter(range(1, 10))
    with mocked_http() as mocked:
        mocked.post(STS, callback=lambda url, **kw: sts_answer(clocks, next(answers)), repeat=True)
        assert (await role.credentials()).ak == "TEMPAK1"
        clocks.advance(3600 - 300 - 1)  # 54:59 of a 60-minute lifetime: still the cached ones
        assert (await role.credentials()).ak == "TEMPAK1"
        assert role.assumed == 1
        clocks.advance(1)  # 55:00: five minutes before expiry, refreshed
        assert (await role.credentials()).ak == "TEMPAK2"
        assert role.assumed == 2


async def test_a_shorter_expires_at_than_asked_is_honoured(session: aiohttp.ClientSession, clocks: Clocks) -> None:
    role = role_for(session, clocks)
    answers = iter(range(1, 10))
    with mocked_http() as mocked:
        mocked.post(STS, callback=lambda url, **kw: sts_answer(clocks, next(answers), lifetime_s=900), repeat=True)
        await role.credentials()
        clocks.advance(600 - 1)
        assert (await role.credentials()).ak == "TEMPAK1"
        clocks.advance(1)
        assert (await role.credentials()).ak == "TEMPAK2"


async def test_concurrent_requests_share_one_assume(session: aiohttp.ClientSession, clocks: Clocks) -> None:
    role = role_for(session, clocks)
    with mocked_http() as mocked:
        mocked.post(STS, callback=lambda url, **kw: sts_answer(clocks, 1), repeat=True)
        got = await asyncio.gather(*(role.credentials() for _ in range(50)))
    assert {c.ak for c in got} == {"TEMPAK1"}
    assert role.assumed == 1


async def test_one_role_serves_every_project_of_the_account(session: aiohttp.ClientSession, clocks: Clocks) -> None:
    role = role_for(session, clocks)
    first, second = AgencyAuth(role, PROJECT, clock=clocks.wall), AgencyAuth(role, "9f8e7d6c5b4a", clock=clocks.wall)
    with mocked_http() as mocked:
        mocked.post(STS, callback=lambda url, **kw: sts_answer(clocks, 1), repeat=True)
        a = await first.headers(request_to("GET", LIST))
        b = await second.headers(request_to("GET", LIST))
    assert role.assumed == 1
    assert a["X-Security-Token"] == b["X-Security-Token"] == temp(1)[2]
    assert (a["X-Project-Id"], b["X-Project-Id"]) == (PROJECT, "9f8e7d6c5b4a")


async def test_agency_headers_are_aksk_signing_with_the_temporary_keys(
    session: aiohttp.ClientSession, clocks: Clocks
) -> None:
    role = role_for(session, clocks)
    auth = AgencyAuth(role, PROJECT, clock=clocks.wall)
    request = request_to("GET", LIST)
    with mocked_http() as mocked:
        mocked.post(STS, callback=lambda url, **kw: sts_answer(clocks, 1))
        headers = await auth.headers(request)
    ak, sk, token = temp(1)
    expected = AkSkAuth(ak, sk, PROJECT, token, clock=clocks.wall).sign(request)
    assert dict(headers) == expected
    assert headers["X-Security-Token"] == token
    assert headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={ak}, ")


async def test_a_401_drops_the_refused_credentials_once(session: aiohttp.ClientSession, clocks: Clocks) -> None:
    role = role_for(session, clocks)
    auth = AgencyAuth(role, PROJECT, clock=clocks.wall)
    answers = iter(range(1, 10))
    with mocked_http() as mocked:
        mocked.post(STS, callback=lambda url, **kw: sts_answer(clocks, next(answers)), repeat=True)
        sent = await auth.headers(request_to("GET", LIST))
        # Many requests got a 401 for the same credentials: the first drops them, the next ones keep the new ones.
        assert await auth.invalidate(sent) is True
        fresh = await auth.headers(request_to("GET", LIST))
        assert await auth.invalidate(sent) is True
        assert (await auth.headers(request_to("GET", LIST)))["X-Security-Token"] == fresh["X-Security-Token"]
    assert fresh["X-Security-Token"] == temp(2)[2]
    assert role.assumed == 2


async def test_through_the_client_an_expired_token_is_refreshed_once_then_a_clear_failure(
    session: aiohttp.ClientSession, clocks: Clocks
) -> None:
    role = role_for(session, clocks)
    auth = AgencyAuth(role, PROJECT, clock=clocks.wall)
    client = GesClient(session, ClientConfig(rate_limit_per_s=0, max_attempts=2, backoff_base_s=0.01))
    expired = {"error_code": "APIGW.0307", "error_msg": "The token must be updated.", "request_id": "r1"}
    answers = iter(range(1, 10))
    with mocked_http() as mocked:
        mocked.post(STS, callback=lambda url, **kw: sts_answer(clocks, next(answers)), repeat=True)
        mocked.get(LIST, status=401, body=json.dumps(expired), repeat=True)
        with pytest.raises(Unauthorized) as caught:
            await client.project(GES, PROJECT, auth).list_backups(deadline=None)
        sent_tokens = [kw["headers"]["X-Security-Token"] for _, _, kw in calls(mocked, "GET")]
    assert caught.value.error_code == "APIGW.0307"
    assert sent_tokens == [temp(1)[2], temp(2)[2]]  # the refused ones, then fresh ones once; no third try
    assert role.assumed == 2


async def test_through_the_client_a_refresh_after_a_401_succeeds(
    session: aiohttp.ClientSession, clocks: Clocks
) -> None:
    role = role_for(session, clocks)
    auth = AgencyAuth(role, PROJECT, clock=clocks.wall)
    client = GesClient(session, ClientConfig(rate_limit_per_s=0))
    expired = {"error_code": "APIGW.0307", "error_msg": "The token must be updated.", "request_id": "r1"}
    answers = iter(range(1, 10))
    with mocked_http() as mocked:
        mocked.post(STS, callback=lambda url, **kw: sts_answer(clocks, next(answers)), repeat=True)
        mocked.get(LIST, status=401, body=json.dumps(expired))
        mocked.get(LIST, status=200, body=json.dumps({"backup_count": 0, "backup_list": []}))
        listing = await client.project(GES, PROJECT, auth).list_backups(deadline=None)
    assert listing.complete
    assert role.assumed == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_an_iam_refusal_is_agency_refused_naming_the_agency(
    session: aiohttp.ClientSession, clocks: Clocks, status: int
) -> None:
    role = role_for(session, clocks)
    body = {"error": {"code": status, "message": "The agency does not exist.", "title": "Forbidden"}}
    with mocked_http() as mocked:
        mocked.post(STS, status=status, body=json.dumps(body), repeat=True)
        with pytest.raises(AgencyRefused) as caught:
            await role.credentials()
    error = caught.value
    assert error.error_code == "agency_refused" and error.status == status and not error.retryable
    assert "'ges-retention'" in str(error) and "'other-account'" in str(error)
    assert "The agency does not exist." in str(error)


async def test_iam_trouble_is_retryable_not_a_refusal(session: aiohttp.ClientSession, clocks: Clocks) -> None:
    role = role_for(session, clocks)
    with mocked_http() as mocked:
        mocked.post(STS, status=503, body="busy")
        mocked.post(STS, callback=lambda url, **kw: sts_answer(clocks, 1))
        with pytest.raises(ServerError) as caught:
            await role.credentials()
        assert caught.value.retryable
        assert (await role.credentials()).ak == "TEMPAK1"  # the next request asks again


async def test_an_answer_without_credentials_is_an_error_not_a_crash(
    session: aiohttp.ClientSession, clocks: Clocks
) -> None:
    role = role_for(session, clocks)
    with mocked_http() as mocked:
        mocked.post(STS, status=201, body=json.dumps({"credential": {"access": "A"}}))
        with pytest.raises(GesError, match="without credential"):
            await role.credentials()


async def test_a_password_caller_logs_in_domain_scoped_and_sends_its_token(
    session: aiohttp.ClientSession, clocks: Clocks
) -> None:
    caller = PasswordAuth(IAM, "home", "retention", "pw-SECRET", None, session=session, clock=clocks.monotonic.time)
    role = role_for(session, clocks, caller=caller)
    logins = iter(["tok-SECRET-1", "tok-SECRET-2"])

    def login(url: Any, **kwargs: Any) -> CallbackResult:
        return CallbackResult(status=201, headers={"X-Subject-Token": next(logins)}, body="{}")

    with mocked_http() as mocked:
        mocked.post(TOKENS, callback=login, repeat=True)
        # IAM refuses the first user token (expired on its side): one new login, then the agency is assumed.
        mocked.post(STS, status=401, body=json.dumps({"error": {"code": 401, "message": "expired"}}))
        mocked.post(STS, callback=lambda url, **kw: sts_answer(clocks, 1))
        assert (await role.credentials()).ak == "TEMPAK1"
        posts = calls(mocked, "POST")
    login_body = json.loads(posts[0][2]["data"])
    assert login_body["auth"]["scope"] == {"domain": {"name": "home"}}
    sts_headers = [kw["headers"]["X-Auth-Token"] for _, url, kw in posts if url.path.startswith("/v3.0/")]
    assert sts_headers == ["tok-SECRET-1", "tok-SECRET-2"]


async def test_a_static_token_cannot_assume(session: aiohttp.ClientSession, clocks: Clocks) -> None:
    with pytest.raises(ValueError, match="static token"):
        role_for(session, clocks, caller=TokenAuth("a-static-token"))


async def test_no_secret_in_reprs_errors_or_log_lines(session: aiohttp.ClientSession, clocks: Clocks) -> None:
    secrets_seen: list[Any] = []
    role = role_for(session, clocks, seen=secrets_seen)
    auth = AgencyAuth(role, PROJECT, clock=clocks.wall)
    answers = iter(range(1, 10))
    with mocked_http() as mocked:
        mocked.post(STS, callback=lambda url, **kw: sts_answer(clocks, next(answers)), repeat=True)
        credentials = await role.credentials()
        clocks.advance(3600)
        await role.credentials()
    _, sk1, token1 = temp(1)
    _, sk2, token2 = temp(2)
    shown = " ".join([repr(role), repr(auth), repr(credentials), str(credentials)])
    for secret in (SK, sk1, token1, sk2, token2):
        assert secret not in shown
    # The redaction was told of each pair as it arrived, and of the replaced pair when it was replaced.
    assert secrets_seen == [([sk1, token1], []), ([sk2, token2], [sk1, token1])]
    register_secrets([sk2, token2])
    try:
        event = redact_event(None, "error", {"event": "x", "error": f"boom {token2} and {sk2}"})
        assert event["error"] == f"boom {REDACTED} and {REDACTED}"
    finally:
        forget_secrets([sk2, token2])
    # Once forgotten (replaced credentials), nothing is left to collect in a long-lived daemon.
    assert redact_event(None, "error", {"event": "x", "error": token2})["error"] == token2
