"""Helpers of the emulator's tests: a movable clock, URLs, signing with the project's signer, one-call requests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from ges_retention.emulator.app import DEFAULT_AK, DEFAULT_PROJECT_ID, DEFAULT_SK, DEFAULT_TOKEN, RunningEmulator
from ges_retention.ges.signing import SignedRequest, authorization_header, format_sdk_date

# 2026-11-27T12:00:00Z: every test's "now" unless it moves the clock.
NOW_S = 1_795_780_800.0
NOW_MS = int(NOW_S * 1000)
PROJECT = DEFAULT_PROJECT_ID
OTHER_PROJECT = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
TOKEN_HEADERS = {"X-Auth-Token": DEFAULT_TOKEN}


@dataclass(slots=True)
class FakeClock:
    """The emulator's wall clock, moved by tests instead of sleeping."""

    now: float = NOW_S

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def ges_url(emulator: RunningEmulator, path: str, project_id: str = PROJECT) -> str:
    return f"{emulator.url}/v2/{project_id}{path}"


def raw_url(emulator: RunningEmulator, path: str) -> URL:
    """A URL sent exactly as written: no normalization of `..`, no re-encoding of `%2F`."""
    return URL(emulator.url + path, encoded=True)


def signed_headers(
    method: str,
    url: str | URL,
    *,
    ak: str = DEFAULT_AK,
    sk: str = DEFAULT_SK,
    project_id: str | None = PROJECT,
    when: datetime | None = None,
    query: Iterable[tuple[str, str]] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Headers of a request signed with the project's own signer (the SDK referee test keeps it honest)."""
    parsed = url if isinstance(url, URL) else URL(url, encoded=True)
    headers = {
        "Host": f"{parsed.host}:{parsed.port}",
        "X-Sdk-Date": format_sdk_date(when or datetime.fromtimestamp(NOW_S, UTC)),
        "Content-Type": "application/json",
        **(extra or {}),
    }
    if project_id is not None:
        headers["X-Project-Id"] = project_id
    signed = SignedRequest.of(method, parsed.raw_path, parsed.query.items() if query is None else query, headers)
    headers["Authorization"] = authorization_header(ak=ak, sk=sk, request=signed)
    return headers


async def call(
    session: aiohttp.ClientSession, method: str, url: str | URL, **kwargs: Any
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """(status, JSON body or None, headers) of one request."""
    async with session.request(method, url, **kwargs) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else None, resp.headers
