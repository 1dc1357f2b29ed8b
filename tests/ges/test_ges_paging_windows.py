"""Listing pages in concurrent windows (issue 17, contract "Round 2: Rate"): after the first page, up to
`GES_RETENTION_CONCURRENCY` pages at once at the offsets the count calls for, handed on in offset order, stopping at
the first short or empty page; complete only when the unique ids reach the largest count reported; a window that
brings no new id while that count is not reached makes the listing untrusted. HTTP is aioresponses; no real sleep."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult
from yarl import URL

from ges_retention.ges.auth import TokenAuth
from ges_retention.ges.client import ClientConfig, GesClient, ProjectClient
from ges_retention.ges.errors import ListingError, ServerError
from ges_retention.ges.paging import Listing, iter_pages

from .fakes import FakeClock, calls, mocked_http

GES = "https://ges.example.test"
PROJECT = "p1"
BACKUPS = f"{GES}/v2/{PROJECT}/graphs/backups"
ANY_PAGE = re.compile(re.escape(BACKUPS) + r"\?.*")


def backup(i: int) -> dict[str, Any]:
    return {"id": f"b{i}", "graph_id": "g1", "status": "success", "start_timestamp": 1_700_000_000_000}


def page_url(offset: int, limit: int) -> str:
    return f"{BACKUPS}?offset={offset}&limit={limit}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


MakeProject = Callable[..., ProjectClient]


@pytest.fixture
def make_project(session: aiohttp.ClientSession) -> MakeProject:
    clock = FakeClock()

    def make(**config: Any) -> ProjectClient:
        config.setdefault("rate_limit_per_s", 0)
        client = GesClient(
            session, ClientConfig(**config), time_fn=clock.time, sleep_fn=clock.sleep, rng=random.Random(1)
        )
        return client.project(GES, PROJECT, TokenAuth("tok-SECRET"))

    return make


def offsets_of(mocked: Any) -> list[int]:
    return [int(url.query["offset"]) for _, url, _ in calls(mocked)]


def serving(records: list[dict[str, Any]], count: Callable[[int], int] | None = None) -> Callable[..., CallbackResult]:
    """A server listing `records` honestly (its count may be given per offset)."""

    def answer(url: URL, **_kwargs: Any) -> CallbackResult:
        offset, limit = int(url.query["offset"]), int(url.query["limit"])
        total = len(records) if count is None else count(offset)
        return CallbackResult(payload={"backup_count": total, "backup_list": records[offset : offset + limit]})

    return answer


async def test_pages_after_the_first_come_in_windows_of_the_concurrency_in_offset_order(
    make_project: MakeProject,
) -> None:
    everything = [backup(i) for i in range(1000)]
    with mocked_http() as mocked:
        mocked.get(ANY_PAGE, callback=serving(everything), repeat=True)
        pages = [page async for page in make_project(concurrency=4).iter_backup_pages()]
        requested = sorted(offsets_of(mocked))
    assert requested == list(range(0, 1000, 100))  # each offset once, none past the count
    assert [p.offset for p in pages] == list(range(0, 1000, 100))
    assert [p.window for p in pages] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert [p.window_end for p in pages] == [True, False, False, False, True, False, False, False, True, True]
    assert [item for p in pages for item in p.items] == everything


async def test_a_window_really_has_its_pages_in_flight_together(make_project: MakeProject) -> None:
    everything = [backup(i) for i in range(40)]
    in_flight = peak = 0
    all_in = asyncio.Event()

    async def answer(url: URL, **kwargs: Any) -> CallbackResult:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if int(url.query["offset"]) > 0:
            if in_flight == 3:
                all_in.set()
            await asyncio.wait_for(all_in.wait(), timeout=5)  # held until the whole window is in
        in_flight -= 1
        return serving(everything)(url, **kwargs)

    with mocked_http() as mocked:
        mocked.get(ANY_PAGE, callback=answer, repeat=True)
        listing = await make_project(concurrency=3, page_size=10).list_backups()
    assert listing.complete and listing.records == everything
    assert peak == 3


async def test_the_listing_is_complete_when_the_ids_reach_the_count(make_project: MakeProject) -> None:
    everything = [backup(i) for i in range(950)]
    with mocked_http() as mocked:
        mocked.get(ANY_PAGE, callback=serving(everything), repeat=True)
        listing = await make_project(concurrency=8).list_backups()
    assert (listing.complete, listing.reported_count, listing.pages, listing.duplicates) == (True, 950, 10, 0)
    assert listing.records == everything


async def test_a_window_of_repeated_pages_is_untrusted(make_project: MakeProject) -> None:
    # Honest for the first window, then every page answers the first page again (it ignores `offset`).
    everything = [backup(i) for i in range(2000)]

    def answer(url: URL, **kwargs: Any) -> CallbackResult:
        if int(url.query["offset"]) >= 500:
            url = url.update_query(offset=0)
        return serving(everything)(url, **kwargs)

    with mocked_http() as mocked:
        mocked.get(ANY_PAGE, callback=answer, repeat=True)
        with pytest.raises(ListingError) as caught:
            await make_project(concurrency=4).list_backups()
        requested = offsets_of(mocked)
    assert (caught.value.reason, caught.value.offset) == ("repeating", 500)
    assert "500 of the 2000" in str(caught.value) and "not trusted" in str(caught.value)
    # Stopped after the window that brought nothing (the pages of the next one already in flight are not awaited).
    assert 1 + 4 + 4 <= len(requested) <= 1 + 4 + 4 + 3


async def test_a_window_with_one_repeated_page_is_no_repetition_but_the_listing_is_incomplete(
    make_project: MakeProject,
) -> None:
    everything = [backup(i) for i in range(500)]

    def answer(url: URL, **kwargs: Any) -> CallbackResult:
        if int(url.query["offset"]) == 200:
            url = url.update_query(offset=0)  # one page of the window repeats the first
        return serving(everything)(url, **kwargs)

    with mocked_http() as mocked:
        mocked.get(ANY_PAGE, callback=answer, repeat=True)
        listing = await make_project(concurrency=4).list_backups()
    assert listing.duplicates == 100
    assert (listing.complete, len(listing.records), listing.reported_count) == (False, 400, 500)


async def test_a_count_that_shrinks_while_paging_stops_at_the_empty_page_and_is_incomplete(
    make_project: MakeProject,
) -> None:
    # 500 reported on the first page; 300 are left when the window is fetched: its last pages are empty.
    remaining = [backup(i) for i in range(500)]

    def answer(url: URL, **kwargs: Any) -> CallbackResult:
        records = remaining if int(url.query["offset"]) == 0 else remaining[:300]
        return serving(records)(url, **kwargs)

    with mocked_http() as mocked:
        mocked.get(ANY_PAGE, callback=answer, repeat=True)
        listing = await make_project(concurrency=8).list_backups()
        requested = sorted(offsets_of(mocked))
    assert requested == [0, 100, 200, 300, 400]  # the window the first count called for, nothing after the empty page
    assert (listing.reported_count, listing.count_changed, listing.complete) == (500, True, False)
    assert len(listing.records) == 300


async def test_a_count_that_grows_while_paging_is_followed_to_its_end(make_project: MakeProject) -> None:
    # 300 on the first page, 700 by the time the window is fetched: the next window reaches the new count.
    everything = [backup(i) for i in range(700)]
    with mocked_http() as mocked:
        mocked.get(
            ANY_PAGE,
            callback=serving(everything, count=lambda offset: 300 if offset == 0 else 700),
            repeat=True,
        )
        listing = await make_project(concurrency=2).list_backups()
        requested = offsets_of(mocked)
    assert sorted(requested) == [0, 100, 200, 300, 400, 500, 600]
    assert (listing.complete, listing.reported_count, listing.count_changed) == (True, 700, True)
    assert listing.records == everything


async def test_nothing_after_the_first_short_page_of_a_window_is_used(make_project: MakeProject) -> None:
    with mocked_http() as mocked:
        mocked.get(page_url(0, 100), payload={"backup_count": 400, "backup_list": [backup(i) for i in range(100)]})
        mocked.get(
            page_url(100, 100), payload={"backup_count": 400, "backup_list": [backup(i) for i in range(100, 150)]}
        )
        mocked.get(
            page_url(200, 100), payload={"backup_count": 400, "backup_list": [backup(i) for i in range(200, 300)]}
        )
        mocked.get(
            page_url(300, 100), payload={"backup_count": 400, "backup_list": [backup(i) for i in range(300, 400)]}
        )
        listing = await make_project(concurrency=8).list_backups()
    assert [r["id"] for r in listing.records] == [f"b{i}" for i in range(150)]
    assert (listing.pages, listing.complete) == (2, False)


async def test_a_failed_page_fails_the_listing_and_cancels_its_window(make_project: MakeProject) -> None:
    everything = [backup(i) for i in range(500)]
    started: list[int] = []
    finished: list[int] = []

    async def answer(url: URL, **kwargs: Any) -> CallbackResult:
        offset = int(url.query["offset"])
        started.append(offset)
        if offset == 200:
            return CallbackResult(status=503, body=b"busy")
        if offset > 0:
            await asyncio.Event().wait()  # the rest of the window never answers: it must be cancelled
        finished.append(offset)
        return serving(everything)(url, **kwargs)

    with mocked_http() as mocked:
        mocked.get(ANY_PAGE, callback=answer, repeat=True)
        with pytest.raises(ServerError) as caught:
            await asyncio.wait_for(make_project(concurrency=4, max_attempts=2).list_backups(), timeout=10)
    assert caught.value.attempts == 2
    assert finished == [0]
    assert sorted(set(started)) == [0, 100, 200, 300, 400]
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert leftovers == []


async def test_windows_step_by_a_page_size_the_server_caps(make_project: MakeProject) -> None:
    # Asked for 500, the server sends 3 at most: the first page shows it, and the windows step by 3.
    everything = [backup(i) for i in range(10)]

    def capped(url: URL, **_kwargs: Any) -> CallbackResult:
        offset = int(url.query["offset"])
        return CallbackResult(payload={"backup_count": 10, "backup_list": everything[offset : offset + 3]})

    with mocked_http() as mocked:
        mocked.get(ANY_PAGE, callback=capped, repeat=True)
        listing = await make_project(page_size=500, concurrency=8).list_backups()
        requested = offsets_of(mocked)
        limits = {url.query["limit"] for _, url, _ in calls(mocked)}
    assert sorted(requested) == [0, 3, 6, 9]
    assert limits == {"500"}
    assert listing.complete and listing.records == everything


async def test_a_window_never_goes_past_max_pages(make_project: MakeProject) -> None:
    def one_new(url: URL, **_kwargs: Any) -> CallbackResult:
        return CallbackResult(payload={"backup_count": 10**9, "backup_list": [backup(int(url.query["offset"]))]})

    with mocked_http() as mocked:
        mocked.get(ANY_PAGE, callback=one_new, repeat=True)
        with pytest.raises(ListingError) as caught:
            await make_project(max_pages=6, concurrency=4).list_backups()
        assert len(calls(mocked)) == 6
    assert caught.value.reason == "endless"


async def test_iter_pages_refuses_a_window_below_one() -> None:
    async def fetch(offset: int, limit: int) -> tuple[bytes, int]:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="window"):
        await anext(iter_pages(Listing("op", "items", "count"), fetch, limit=10, max_pages=5, window=0))


async def test_a_page_is_handed_on_while_the_pages_after_it_are_still_in_flight(make_project: MakeProject) -> None:
    # The window slides: page 100 is read while page 400 is unanswered, and the page after the window (500) is asked
    # for as soon as page 100 is in, not once the whole window is.
    everything = [backup(i) for i in range(600)]
    page_100_read = asyncio.Event()

    async def answer(url: URL, **kwargs: Any) -> CallbackResult:
        if int(url.query["offset"]) == 400:
            await asyncio.wait_for(page_100_read.wait(), timeout=5)
        return serving(everything)(url, **kwargs)

    seen: list[int] = []
    with mocked_http() as mocked:
        mocked.get(ANY_PAGE, callback=answer, repeat=True)
        async for page in make_project(concurrency=4).iter_backup_pages():
            seen.append(page.offset)
            if page.offset == 100:
                page_100_read.set()
    assert seen == [0, 100, 200, 300, 400, 500]
