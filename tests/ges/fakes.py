"""Test doubles for the GES client: a fake clock whose sleep advances time, and aioresponses made to work.

aioresponses 0.7.9 builds `ClientResponse` without the `stream_writer` argument that aiohttp 3.14 requires
(pnuckowski/aioresponses#289); `mocked_http()` hands it a response class that supplies one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any
from unittest import mock

import aiohttp
import aioresponses.core
from aioresponses import aioresponses as _aioresponses
from yarl import URL


class FakeClock:
    """Monotonic time that only moves when someone sleeps (or the test advances it). Never sleeps for real."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self.now += seconds
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _CompatResponse(aiohttp.ClientResponse):
    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@contextmanager
def mocked_http() -> Iterator[_aioresponses]:
    with mock.patch.object(aioresponses.core, "ClientResponse", _CompatResponse), _aioresponses() as mocked:
        yield mocked


def calls(mocked: _aioresponses, method: str | None = None) -> list[tuple[str, URL, dict[str, Any]]]:
    """Every request aioresponses saw, in order: (method, url, kwargs)."""
    seen: list[tuple[str, URL, dict[str, Any]]] = []
    for (verb, url), requests in mocked.requests.items():
        if method is None or verb == method:
            seen.extend((verb, url, request.kwargs) for request in requests)
    return seen
