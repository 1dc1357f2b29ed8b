"""The emulated IAM agency API: `POST /v3.0/OS-CREDENTIAL/securitytokens` (assume_role) issues temporary AK/SK and a
security token that act in the agency's projects only, until they expire on the emulator's clock; then the gateway
answers 401 APIGW.0307 ("The token must be updated."). Unknown agencies and domains are refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from emulator_helpers import NOW_S, OTHER_PROJECT, PROJECT, TOKEN_HEADERS, FakeClock, call, ges_url
from yarl import URL

from ges_retention.emulator.app import (
    DEFAULT_AK,
    DEFAULT_IAM_DOMAIN,
    DEFAULT_IAM_PASSWORD,
    DEFAULT_IAM_USER,
    DEFAULT_SK,
    EmulatorConfig,
    RunningEmulator,
)
from ges_retention.emulator.config import Agency
from ges_retention.ges.signing import SignedRequest, authorization_header, format_sdk_date

STS_PATH = "/v3.0/OS-CREDENTIAL/securitytokens"
DOMAIN, AGENCY = "other-account", "ges-retention"


@pytest.fixture
def config() -> EmulatorConfig:
    config = EmulatorConfig()
    config.project_ids.append(OTHER_PROJECT)
    config.agencies.append(Agency(DOMAIN, AGENCY, (OTHER_PROJECT,)))
    return config


def assume_body(domain: str = DOMAIN, agency: str = AGENCY, duration: Any = 3600) -> dict[str, Any]:
    role: dict[str, Any] = {"domain_name": domain, "agency_name": agency}
    if duration is not None:
        role["duration_seconds"] = duration
    return {"auth": {"identity": {"methods": ["assume_role"], "assume_role": role}}}


def signed(
    method: str,
    url: str,
    *,
    ak: str,
    sk: str,
    body: bytes = b"",
    project_id: str | None = None,
    security_token: str | None = None,
    at: float = NOW_S,
) -> dict[str, str]:
    parsed = URL(url, encoded=True)
    headers = {
        "Host": f"{parsed.host}:{parsed.port}",
        "X-Sdk-Date": format_sdk_date(datetime.fromtimestamp(at, UTC)),
        "Content-Type": "application/json",
    }
    if project_id is not None:
        headers["X-Project-Id"] = project_id
    if security_token is not None:
        headers["X-Security-Token"] = security_token
    request = SignedRequest.of(method, parsed.raw_path, parsed.query.items(), headers, body)
    headers["Authorization"] = authorization_header(ak=ak, sk=sk, request=request)
    return headers


async def assume(
    emulator: RunningEmulator, session: aiohttp.ClientSession, body: Any = None, **sign: str
) -> tuple[int, Any, Any]:
    raw = json.dumps(assume_body() if body is None else body).encode()
    url = emulator.url + STS_PATH
    headers = signed("POST", url, ak=sign.get("ak", DEFAULT_AK), sk=sign.get("sk", DEFAULT_SK), body=raw)
    return await call(session, "POST", url, data=raw, headers=headers)


async def list_with(
    emulator: RunningEmulator, session: aiohttp.ClientSession, credential: dict[str, str], project_id: str, **kw: Any
) -> tuple[int, Any, Any]:
    url = ges_url(emulator, "/graphs/backups", project_id)
    headers = signed(
        "GET",
        url,
        ak=credential["access"],
        sk=credential["secret"],
        project_id=project_id,
        security_token=kw.get("security_token", credential["securitytoken"]),
        at=kw.get("at", NOW_S),
    )
    if kw.get("drop_token"):
        del headers["X-Security-Token"]  # (then the signature no longer matches either; both are refusals)
    return await call(session, "GET", url, headers=headers)


async def test_assume_role_with_aksk_issues_temporary_credentials_for_the_asked_duration(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    status, body, _ = await assume(emulator, session)
    assert status == 201
    credential = body["credential"]
    assert set(credential) == {"access", "secret", "securitytoken", "expires_at"}
    assert credential["expires_at"] == "2026-11-27T13:00:00.000000Z"  # now + 3600 s on the emulator's clock
    assert len(credential["access"]) == 20
    assert emulator.stats.to_json()["requests"]["iam_securitytokens"]["201"] == 1


async def test_temporary_credentials_act_in_the_agencys_projects_only(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.store.seed(OTHER_PROJECT, graphs=1, backups_per_graph=3, now_ms=int(NOW_S * 1000), seed=1)
    _, body, _ = await assume(emulator, session)
    credential = body["credential"]
    status, listing, _ = await list_with(emulator, session, credential, OTHER_PROJECT)
    assert status == 200 and listing["backup_count"] == 3
    status, error, _ = await list_with(emulator, session, credential, PROJECT)
    assert status == 403 and error["error_code"] == "APIGW.0302"


async def test_a_temporary_key_without_its_security_token_is_refused(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    _, body, _ = await assume(emulator, session)
    credential = body["credential"]
    for kwargs in ({"security_token": "wrong"}, {"drop_token": True}):
        status, error, headers = await list_with(emulator, session, credential, OTHER_PROJECT, **kwargs)
        assert status == 401 and error["error_code"] == "APIGW.0301"
        assert error["request_id"] == headers["X-Request-Id"]


async def test_an_expired_security_token_gets_the_gateways_token_must_be_updated(
    emulator: RunningEmulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    _, body, _ = await assume(emulator, session)
    credential = body["credential"]
    clock.advance(3599)
    assert (await list_with(emulator, session, credential, OTHER_PROJECT, at=clock.now))[0] == 200
    clock.advance(1)
    # (The X-Sdk-Date follows the emulator's clock: the refusal is the expiry, nothing else.)
    status, error, headers = await list_with(emulator, session, credential, OTHER_PROJECT, at=clock.now)
    assert status == 401
    assert error == {
        "error_code": "APIGW.0307",
        "error_msg": "The token must be updated.",
        "request_id": headers["X-Request-Id"],
    }


async def test_security_token_lifetime_knob_and_expire_control(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    status, config, _ = await call(
        session, "PUT", emulator.url + "/_emulator/config", json={"security_token_lifetime_s": 0}
    )
    assert status == 200 and config["security_token_lifetime_s"] == 0
    _, body, _ = await assume(emulator, session)
    assert body["credential"]["expires_at"] == "2026-11-27T12:00:00.000000Z"
    assert (await list_with(emulator, session, body["credential"], OTHER_PROJECT))[1]["error_code"] == "APIGW.0307"

    await call(session, "PUT", emulator.url + "/_emulator/config", json={"security_token_lifetime_s": None})
    _, body, _ = await assume(emulator, session)
    assert (await list_with(emulator, session, body["credential"], OTHER_PROJECT))[0] == 200
    status, expired, _ = await call(session, "POST", emulator.url + "/_emulator/security_tokens/expire")
    assert status == 200 and expired == {"expired": 2}
    assert (await list_with(emulator, session, body["credential"], OTHER_PROJECT))[1]["error_code"] == "APIGW.0307"


@pytest.mark.parametrize(("domain", "agency"), [(DOMAIN, "no-such-agency"), ("no-such-domain", AGENCY)])
async def test_an_unknown_agency_or_domain_is_refused_as_iam_does(
    emulator: RunningEmulator, session: aiohttp.ClientSession, domain: str, agency: str
) -> None:
    status, body, _ = await assume(emulator, session, assume_body(domain, agency))
    assert status == 403
    assert body["error"]["code"] == 403 and body["error"]["title"] == "Forbidden"
    assert agency in body["error"]["message"] and domain in body["error"]["message"]


async def test_the_caller_must_be_an_iam_identity(emulator: RunningEmulator, session: aiohttp.ClientSession) -> None:
    url = emulator.url + STS_PATH
    raw = json.dumps(assume_body()).encode()
    for headers in ({}, TOKEN_HEADERS, {"X-Auth-Token": "MIIunknown"}):
        status, body, _ = await call(session, "POST", url, data=raw, headers=headers)
        assert status == 401 and body["error"]["title"] == "Unauthorized"
    status, body, _ = await assume(emulator, session, sk="not-the-secret-key")
    assert status == 401 and "signature" in body["error"]["message"]


async def test_a_domain_scoped_password_token_can_assume_until_it_expires(
    emulator: RunningEmulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    user = {"domain": {"name": DEFAULT_IAM_DOMAIN}, "name": DEFAULT_IAM_USER, "password": DEFAULT_IAM_PASSWORD}
    login = {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"domain": {"name": DEFAULT_IAM_DOMAIN}},
        }
    }
    status, body, headers = await call(session, "POST", emulator.url + "/v3/auth/tokens", json=login)
    assert status == 201 and body["token"]["domain"]["name"] == DEFAULT_IAM_DOMAIN and "project" not in body["token"]
    token = headers["X-Subject-Token"]
    # A domain token is for IAM: GES refuses it.
    status, _, _ = await call(session, "GET", ges_url(emulator, "/graphs/backups"), headers={"X-Auth-Token": token})
    assert status == 403
    url = emulator.url + STS_PATH
    status, body, _ = await call(session, "POST", url, json=assume_body(), headers={"X-Auth-Token": token})
    assert status == 201 and body["credential"]["securitytoken"]
    clock.advance(emulator.config.token_lifetime_s)
    status, _, _ = await call(session, "POST", url, json=assume_body(), headers={"X-Auth-Token": token})
    assert status == 401


async def test_a_domain_scope_must_be_the_users_own_domain(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    user = {"domain": {"name": DEFAULT_IAM_DOMAIN}, "name": DEFAULT_IAM_USER, "password": DEFAULT_IAM_PASSWORD}
    login = {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"domain": {"name": DOMAIN}},
        }
    }
    status, _, _ = await call(session, "POST", emulator.url + "/v3/auth/tokens", json=login)
    assert status == 401


@pytest.mark.parametrize(
    "body",
    [
        {"auth": {"identity": {"methods": ["token"], "assume_role": {}}}},
        {"auth": {"identity": {"methods": ["assume_role"]}}},
        assume_body(duration=60),
        assume_body(duration=100_000),
        assume_body(duration="3600"),
        assume_body(domain=""),
        [],
    ],
)
async def test_malformed_assume_requests_are_400(
    emulator: RunningEmulator, session: aiohttp.ClientSession, body: Any
) -> None:
    status, answer, _ = await assume(emulator, session, body)
    assert status == 400 and answer["error"]["code"] == 400


async def test_agencies_are_a_config_knob(emulator: RunningEmulator, session: aiohttp.ClientSession) -> None:
    url = emulator.url + "/_emulator/config"
    status, config, _ = await call(session, "GET", url)
    assert config["agencies"] == [{"domain": DOMAIN, "name": AGENCY, "project_ids": [OTHER_PROJECT]}]
    status, _, _ = await call(session, "PUT", url, json={"agencies": []})
    assert status == 200
    assert (await assume(emulator, session))[0] == 403  # the other account withdrew the agency
    for bad in ([{"domain": DOMAIN, "name": AGENCY}], [{"domain": DOMAIN, "name": AGENCY, "project_ids": ["a/b"]}]):
        status, body, _ = await call(session, "PUT", url, json={"agencies": bad})
        assert status == 400 and "agencies" in body["error_msg"]
