"""The client's graph listing (paged like the backups, later copies kept for the runner to judge) and the quota read
(`backup_quota`): an answer without a `backup` entry is None, one of another shape a `QuotaError`."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from ges_retention.ges.auth import TokenAuth
from ges_retention.ges.client import ClientConfig, GesClient, ProjectClient
from ges_retention.ges.errors import ListingError, ServerError
from ges_retention.ges.quotas import QuotaError, backup_quota_available

from .fakes import FakeClock, calls, mocked_http

GES = "https://ges.example.test"
PROJECT = "p1"
GRAPHS = f"{GES}/v2/{PROJECT}/graphs"
QUOTAS = f"{GES}/v2/{PROJECT}/graphs/quotas"


@pytest.fixture
async def project() -> AsyncIterator[ProjectClient]:
    clock = FakeClock()
    async with aiohttp.ClientSession() as session:
        client = GesClient(
            session,
            ClientConfig(rate_limit_per_s=0, page_size=2, max_attempts=2),
            time_fn=clock.time,
            sleep_fn=clock.sleep,
            rng=random.Random(1),
        )
        yield client.project(GES, PROJECT, TokenAuth("t"))


def graphs_page(count: int, *ids: str, name: str = "g") -> dict[str, Any]:
    return {"graph_count": count, "graphs": [{"id": i, "name": f"{name}-{i}"} for i in ids]}


async def test_graphs_are_paged_and_later_copies_that_differ_are_kept(project: ProjectClient) -> None:
    second = {"graph_count": 5, "graphs": [{"id": "b", "name": "x"}, {"id": "c"}]}
    with mocked_http() as mocked:
        mocked.get(f"{GRAPHS}?offset=0&limit=2", payload=graphs_page(5, "a", "b"))
        mocked.get(f"{GRAPHS}?offset=2&limit=2", payload=second)
        mocked.get(f"{GRAPHS}?offset=4&limit=2", payload=graphs_page(5, "d", "e"))
        listing = await project.list_graphs()
        assert [g["id"] for g in listing.graphs] == ["a", "b", "c", "d", "e"]
        assert listing.complete and listing.reported_count == 5 and listing.pages == 3
        assert listing.later_copies == ({"id": "b", "name": "x"},)
        assert len(calls(mocked)) == 3


async def test_an_incomplete_or_repeating_graph_listing_is_said_so(project: ProjectClient) -> None:
    with mocked_http() as mocked:
        mocked.get(f"{GRAPHS}?offset=0&limit=2", payload=graphs_page(3, "a", "b"))
        mocked.get(f"{GRAPHS}?offset=2&limit=2", payload=graphs_page(3))
        assert not (await project.list_graphs()).complete
    with mocked_http() as mocked:
        mocked.get(f"{GRAPHS}?offset=0&limit=2", payload=graphs_page(5, "a", "b"), repeat=True)
        mocked.get(f"{GRAPHS}?offset=2&limit=2", payload=graphs_page(5, "a", "b"))
        mocked.get(f"{GRAPHS}?offset=4&limit=2", payload=graphs_page(5, "a", "b"))  # the same window (issue 17)
        with pytest.raises(ListingError) as repeating:
            await project.list_graphs()
        assert repeating.value.reason == "repeating"


async def test_a_graph_listing_reports_the_largest_count_of_any_page(project: ProjectClient) -> None:
    # The count grows on the second page (issue 17's windows must follow it): the listing is judged by the largest.
    with mocked_http() as mocked:
        mocked.get(f"{GRAPHS}?offset=0&limit=2", payload=graphs_page(4, "a", "b"))
        mocked.get(f"{GRAPHS}?offset=2&limit=2", payload=graphs_page(6, "c", "d"))
        mocked.get(f"{GRAPHS}?offset=4&limit=2", payload=graphs_page(6))
        listing = await project.list_graphs()
        assert listing.reported_count == 6 and not listing.complete
        assert [g["id"] for g in listing.graphs] == ["a", "b", "c", "d"]


async def test_the_backup_quota_is_read(project: ProjectClient) -> None:
    body = {"quotas": {"resources": [{"type": "graph", "available": 3}, {"type": "backup", "available": 17}]}}
    with mocked_http() as mocked:
        mocked.get(QUOTAS, payload=body)
        assert await project.backup_quota() == 17
    with mocked_http() as mocked:
        mocked.get(QUOTAS, status=503, payload={"error_code": "APIGW.0201", "error_msg": "down"}, repeat=True)
        with pytest.raises(ServerError):
            await project.backup_quota()


@pytest.mark.parametrize(
    ("body", "available"),
    [
        ({"quotas": {"resources": [{"type": "backup", "available": -1}]}}, -1),
        ({"quotas": {"resources": [{"type": "backup", "available": 0}, {"type": "metadata", "available": 4}]}}, 0),
        ({"quotas": {"resources": [{"type": "graph", "available": 4}]}}, None),
        ({"quotas": {"resources": []}}, None),
    ],
)
def test_backup_quota_available(body: Any, available: int | None) -> None:
    assert backup_quota_available(json.dumps(body).encode()) == available


@pytest.mark.parametrize(
    "body",
    [
        b"<html>",
        b"[]",
        b"{}",
        json.dumps({"quotas": {"resources": {}}}).encode(),
        json.dumps({"quotas": {"resources": [{"type": "backup", "available": -2}]}}).encode(),
        json.dumps({"quotas": {"resources": [{"type": "backup", "available": "5"}]}}).encode(),
        json.dumps({"quotas": {"resources": [{"type": "backup", "available": True}]}}).encode(),
        json.dumps({"quotas": {"resources": [{"type": "backup"}]}}).encode(),
        json.dumps(
            {"quotas": {"resources": [{"type": "backup", "available": 1}, {"type": "backup", "available": 2}]}}
        ).encode(),
    ],
)
def test_a_quota_answer_of_another_shape_is_a_quota_error(body: bytes) -> None:
    with pytest.raises(QuotaError, match="quota answer"):
        backup_quota_available(body)
