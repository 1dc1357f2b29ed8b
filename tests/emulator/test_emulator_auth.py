"""Authentication like the cloud's: IAM-issued tokens that expire, static tokens, AK/SK signatures, project scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from emulator_helpers import NOW_S, OTHER_PROJECT, PROJECT, TOKEN_HEADERS, FakeClock, call, ges_url, signed_headers

from ges_retention.emulator.app import (
    DEFAULT_IAM_DOMAIN,
    DEFAULT_IAM_PASSWORD,
    DEFAULT_IAM_USER,
    AccessKey,
    EmulatorConfig,
    RunningEmulator,
)


@pytest.fixture
def config() -> EmulatorConfig:
    config = EmulatorConfig()
    config.project_ids.append(OTHER_PROJECT)
    config.access_keys.append(AccessKey("OTHERAK", "other-sk", OTHER_PROJECT))
    config.access_keys.append(AccessKey("TEMPAK", "temp-sk", PROJECT, security_token="sts-token"))
    config.tokens["other-token"] = OTHER_PROJECT
    config.token_lifetime_s = 3600
    return config


def _password_body(password: str = DEFAULT_IAM_PASSWORD, project_id: str = PROJECT) -> dict[str, Any]:
    user = {"domain": {"name": DEFAULT_IAM_DOMAIN}, "name": DEFAULT_IAM_USER, "password": password}
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"id": project_id}},
        }
    }


def _gateway_error(body: Any, headers: Any, code: str) -> None:
    assert body["error_code"] == code
    assert body["request_id"] == headers["X-Request-Id"]


async def _issue(emulator: RunningEmulator, session: aiohttp.ClientSession, **kwargs: str) -> tuple[int, Any, Any]:
    return await call(session, "POST", f"{emulator.url}/v3/auth/tokens", json=_password_body(**kwargs))


async def test_iam_issues_a_token_that_works_until_it_expires(
    emulator: RunningEmulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    status, body, headers = await _issue(emulator, session)
    assert status == 201
    token = headers["X-Subject-Token"]
    issued = body["token"]
    assert issued["issued_at"] == "2026-11-27T12:00:00.000000Z"
    assert issued["expires_at"] == "2026-11-27T13:00:00.000000Z"
    assert issued["project"]["id"] == PROJECT
    assert issued["user"]["name"] == DEFAULT_IAM_USER
    url = ges_url(emulator, "/graphs/backups")
    assert (await call(session, "GET", url, headers={"X-Auth-Token": token}))[0] == 200
    clock.advance(3599)
    assert (await call(session, "GET", url, headers={"X-Auth-Token": token}))[0] == 200
    clock.advance(1)
    status, body, headers = await call(session, "GET", url, headers={"X-Auth-Token": token})
    assert status == 401
    _gateway_error(body, headers, "APIGW.0307")
    assert body["error_msg"] == "The token must be updated."


async def test_iam_refuses_a_wrong_password_and_an_unknown_project(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    status, body, headers = await _issue(emulator, session, password="wrong")
    assert status == 401
    assert "X-Subject-Token" not in headers
    assert body == {"error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}}
    status, body, _ = await _issue(emulator, session, project_id="ffffffffffffffffffffffffffffffff")
    assert (status, body["error"]["code"]) == (401, 401)


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"", b"[]", b'{"auth": {}}', b'{"auth": {"identity": {"methods": "password"}}}', b"\xff\xfe"],
)
async def test_iam_refuses_malformed_requests_with_a_400(
    emulator: RunningEmulator, session: aiohttp.ClientSession, payload: bytes
) -> None:
    url = f"{emulator.url}/v3/auth/tokens"
    status, body, _ = await call(session, "POST", url, data=payload, headers={"Content-Type": "application/json"})
    assert status == 400
    assert body["error"]["code"] == 400
    assert body["error"]["title"] == "Bad Request"


async def test_a_token_of_another_project_is_forbidden(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    status, _, headers = await _issue(emulator, session, project_id=OTHER_PROJECT)
    assert status == 201
    for token in (headers["X-Subject-Token"], "other-token"):
        status, body, resp_headers = await call(
            session, "GET", ges_url(emulator, "/graphs/backups"), headers={"X-Auth-Token": token}
        )
        assert status == 403
        _gateway_error(body, resp_headers, "APIGW.0302")
        assert (
            await call(session, "GET", ges_url(emulator, "/graphs", OTHER_PROJECT), headers={"X-Auth-Token": token})
        )[0] == 200


async def test_no_or_unknown_credentials_are_401(emulator: RunningEmulator, session: aiohttp.ClientSession) -> None:
    url = ges_url(emulator, "/graphs/backups")
    for headers in ({}, {"X-Auth-Token": "forged"}, {"Authorization": "Bearer x"}):
        status, body, resp_headers = await call(session, "GET", url, headers=headers)
        assert status == 401
        _gateway_error(body, resp_headers, "APIGW.0301")
        assert body["error_msg"].startswith("Incorrect IAM authentication information")
    assert (await call(session, "GET", url, headers=TOKEN_HEADERS))[0] == 200


async def test_a_good_signature_passes(emulator: RunningEmulator, session: aiohttp.ClientSession) -> None:
    url = ges_url(emulator, "/graphs/backups?offset=2&limit=3")
    status, body, _ = await call(session, "GET", url, headers=signed_headers("GET", url))
    assert (status, len(body["backup_list"])) == (200, 3)
    backup = emulator.store.backups(PROJECT)[-1]
    url = ges_url(emulator, f"/graphs/{backup['graph_id']}/backups/{backup['id']}")
    assert (await call(session, "DELETE", url, headers=signed_headers("DELETE", url)))[0] == 200


async def test_a_temporary_key_needs_its_security_token(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    url = ges_url(emulator, "/graphs")
    with_token = signed_headers("GET", url, ak="TEMPAK", sk="temp-sk", extra={"X-Security-Token": "sts-token"})
    assert (await call(session, "GET", url, headers=with_token))[0] == 200
    without = signed_headers("GET", url, ak="TEMPAK", sk="temp-sk")
    status, body, _ = await call(session, "GET", url, headers=without)
    assert (status, body["error_code"]) == (401, "APIGW.0301")


def _skewed(minutes: float) -> datetime:
    return datetime.fromtimestamp(NOW_S, UTC) + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong sk", 401),
        ("unknown ak", 401),
        ("date 16 min late", 401),
        ("date 16 min early", 401),
        ("date 14 min early", 200),
        ("query tampered", 401),
        ("header tampered", 401),
        ("host not signed", 401),
        ("bad date", 401),
        ("key of another project", 403),
        ("x-project-id of another project", 403),
    ],
)
async def test_signature_checks(
    emulator: RunningEmulator, session: aiohttp.ClientSession, case: str, expected: int
) -> None:
    url = ges_url(emulator, "/graphs/backups?limit=3")
    headers: dict[str, str]
    match case:
        case "wrong sk":
            headers = signed_headers("GET", url, sk="not-the-sk")
        case "unknown ak":
            headers = signed_headers("GET", url, ak="NOSUCHAK")
        case "date 16 min late":
            headers = signed_headers("GET", url, when=_skewed(16))
        case "date 16 min early":
            headers = signed_headers("GET", url, when=_skewed(-16))
        case "date 14 min early":
            headers = signed_headers("GET", url, when=_skewed(-14))
        case "query tampered":
            headers = signed_headers("GET", url, query=[("limit", "4")])
        case "header tampered":
            headers = signed_headers("GET", url)
            headers["Content-Type"] = "text/plain"
        case "host not signed":
            headers = signed_headers("GET", url)
            headers["Authorization"] = headers["Authorization"].replace("host;", "")
        case "bad date":
            headers = signed_headers("GET", url)
            headers["X-Sdk-Date"] = "yesterday"
        case "key of another project":
            headers = signed_headers("GET", url, ak="OTHERAK", sk="other-sk")
        case _:
            headers = signed_headers("GET", url, project_id=OTHER_PROJECT)
    status, body, resp_headers = await call(session, "GET", url, headers=headers)
    assert status == expected, body
    if expected == 401:
        _gateway_error(body, resp_headers, "APIGW.0301")
    elif expected == 403:
        _gateway_error(body, resp_headers, "APIGW.0302")


async def test_the_date_window_follows_the_emulators_clock(
    emulator: RunningEmulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    url = ges_url(emulator, "/graphs")
    headers = signed_headers("GET", url)
    assert (await call(session, "GET", url, headers=headers))[0] == 200
    clock.advance(15 * 60 + 1)
    status, body, _ = await call(session, "GET", url, headers=headers)
    assert (status, body["error_code"]) == (401, "APIGW.0301")
    assert "15 minutes" in body["error_msg"]
