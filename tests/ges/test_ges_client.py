"""The client over mocked HTTP (aioresponses): paging, delete outcomes, retries, 401 refresh, deadlines, pacing,
identifier validation, cancellation, secrets. Time is a fake clock: no test sleeps for real."""

from __future__ import annotations

import asyncio
import random
import re
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aioresponses import CallbackResult
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from ges_retention.ges.auth import AkSkAuth, PasswordAuth, TokenAuth
from ges_retention.ges.client import ClientConfig, GesClient, ProjectClient, open_session, path_segment
from ges_retention.ges.errors import (
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
    TransportError,
    Unauthorized,
)
from ges_retention.ges.pacing import RatePacer

from .fakes import FakeClock, calls, mocked_http

GES = "https://ges.example.test"
PROJECT = "p1"
BACKUPS = f"{GES}/v2/{PROJECT}/graphs/backups"
IAM = "https://iam.example.test"
IAM_TOKENS = f"{IAM}/v3/auth/tokens"
TOKEN = "tok-SECRET-static"
PASSWORD = "pw-SECRET-do-not-show"


def delete_url(graph: str = "g1", backup: str = "b1") -> str:
    return f"{GES}/v2/{PROJECT}/graphs/{graph}/backups/{backup}"


def page_url(offset: int, limit: int = 100, base: str = BACKUPS) -> str:
    return f"{base}?offset={offset}&limit={limit}"


def backup(i: int | str, **extra: Any) -> dict[str, Any]:
    return {"id": f"b{i}", "graph_id": "g1", "status": "success", "start_timestamp": 1_700_000_000_000, **extra}


class RecordingObserver:
    def __init__(self) -> None:
        self.responses: list[tuple[str, int]] = []
        self.retries: list[tuple[str, int, str, float]] = []
        self.throttled: list[tuple[str, int, float]] = []
        self.auth_ok = 0
        self.rates: list[tuple[str, str, float]] = []

    def on_response(self, operation: str, status: int, duration_s: float) -> None:
        assert duration_s >= 0
        self.responses.append((operation, status))

    def on_retry(self, operation: str, attempt: int, error: BaseException, retry_in_s: float) -> None:
        self.retries.append((operation, attempt, type(error).__name__, retry_in_s))

    def on_throttled(self, operation: str, status: int, retry_in_s: float) -> None:
        self.throttled.append((operation, status, retry_in_s))

    def on_auth_ok(self) -> None:
        self.auth_ok += 1

    def on_rate_limit(self, endpoint: str, project_id: str, rate_per_s: float) -> None:
        self.rates.append((endpoint, project_id, rate_per_s))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


MakeProject = Callable[..., ProjectClient]


@pytest.fixture
def make_project(session: aiohttp.ClientSession, clock: FakeClock, observer: RecordingObserver) -> MakeProject:
    def make(auth: Any = None, **config: Any) -> ProjectClient:
        config.setdefault("rate_limit_per_s", 0)
        client = GesClient(
            session,
            ClientConfig(**config),
            observer=observer,
            time_fn=clock.time,
            sleep_fn=clock.sleep,
            rng=random.Random(5),
        )
        return client.project(GES, PROJECT, auth if auth is not None else TokenAuth(TOKEN))

    return make


# --------------------------------------------------------------------------------------------------------------------
# Listing


async def test_list_backups_pages_until_the_count(make_project: MakeProject, observer: RecordingObserver) -> None:
    project = make_project()
    everything = [backup(i) for i in range(250)]
    with mocked_http() as mocked:
        for offset in (0, 100, 200):
            mocked.get(
                page_url(offset), payload={"backup_count": 250, "backup_list": everything[offset : offset + 100]}
            )
        listing = await project.list_backups()
        requested = [url for _, url, _ in calls(mocked)]
    assert listing.records == everything
    assert (listing.reported_count, listing.pages, listing.duplicates, listing.complete) == (250, 3, 0, True)
    assert not listing.count_changed
    assert [u.query["offset"] for u in requested] == ["0", "100", "200"]
    assert observer.responses == [("list_backups", 200)] * 3
    assert observer.auth_ok == 3


async def test_empty_project(make_project: MakeProject) -> None:
    with mocked_http() as mocked:
        mocked.get(page_url(0), payload={"backup_count": 0, "backup_list": []})
        listing = await make_project().list_backups()
    assert (listing.records, listing.reported_count, listing.pages, listing.complete) == ([], 0, 1, True)


async def test_advances_by_what_came_when_the_server_caps_the_page(make_project: MakeProject) -> None:
    with mocked_http() as mocked:
        mocked.get(page_url(0, 500), payload={"backup_count": 5, "backup_list": [backup(i) for i in range(3)]})
        mocked.get(page_url(3, 500), payload={"backup_count": 5, "backup_list": [backup(i) for i in range(3, 5)]})
        listing = await make_project(page_size=500).list_backups()
    assert [r["id"] for r in listing.records] == ["b0", "b1", "b2", "b3", "b4"]
    assert listing.complete


async def test_a_page_that_repeats_ids(make_project: MakeProject) -> None:
    # A backup was created at the front while we paged: page two repeats b2, so b5 is beyond the last offset.
    with mocked_http() as mocked:
        mocked.get(page_url(0, 3), payload={"backup_count": 5, "backup_list": [backup(i) for i in range(3)]})
        mocked.get(page_url(3, 3), payload={"backup_count": 6, "backup_list": [backup(2), backup(3), backup(4)]})
        listing = await make_project(page_size=3).list_backups()
    assert [r["id"] for r in listing.records] == ["b0", "b1", "b2", "b3", "b4"]
    assert listing.duplicates == 1
    assert listing.count_changed
    assert listing.reported_count == 6
    assert not listing.complete  # 5 unique ids for 6 reported: the runner must not delete from this


async def test_a_duplicate_with_different_content_is_noted(make_project: MakeProject) -> None:
    with mocked_http() as mocked:
        mocked.get(page_url(0, 2), payload={"backup_count": 3, "backup_list": [backup(0), backup(1)]})
        mocked.get(page_url(2, 2), payload={"backup_count": 3, "backup_list": [backup(1, status="failed"), backup(2)]})
        listing = await make_project(page_size=2).list_backups()
    assert listing.conflicting_ids == ("b1",)
    assert listing.records[1]["status"] == "success"  # first seen wins
    assert listing.complete


async def test_parse_converts_each_page_and_keeps_the_later_copies(make_project: MakeProject) -> None:
    with mocked_http() as mocked:
        mocked.get(page_url(0, 2), payload={"backup_count": 3, "backup_list": [backup(0), backup(1)]})
        mocked.get(page_url(2, 2), payload={"backup_count": 3, "backup_list": [backup(1, status="failed"), backup(2)]})
        listing = await make_project(page_size=2).list_backups(parse=lambda r: (r["id"], r["status"]))
    assert listing.records == [("b0", "success"), ("b1", "success"), ("b2", "success")]
    assert listing.conflicting_ids == ("b1",)
    assert listing.conflicting_records == (("b1", "failed"),)
    assert listing.complete


async def test_a_parse_error_stops_the_listing(make_project: MakeProject) -> None:
    def strict(record: dict[str, Any]) -> str:
        if record["id"] == "b1":
            raise ValueError("bad record")
        return str(record["id"])

    with mocked_http() as mocked:
        mocked.get(page_url(0, 2), payload={"backup_count": 4, "backup_list": [backup(0), backup(1)]})
        with pytest.raises(ValueError, match="bad record"):
            await make_project(page_size=2).list_backups(parse=strict)
        assert len(calls(mocked)) == 1  # no page after the one that failed


async def test_records_without_an_id_are_kept_for_the_runner_to_reject(make_project: MakeProject) -> None:
    with mocked_http() as mocked:
        mocked.get(page_url(0), payload={"backup_count": 3, "backup_list": [backup(0), {"name": "x"}, "junk"]})
        listing = await make_project().list_backups()
    assert listing.records == [backup(0), {"name": "x"}, "junk"]
    assert not listing.complete


async def test_a_server_that_pages_forever_is_an_error(make_project: MakeProject) -> None:
    def growing(url: URL, **kwargs: Any) -> CallbackResult:
        offset = int(url.query["offset"])
        items = [backup(offset + i) for i in range(10)]
        return CallbackResult(payload={"backup_count": offset + 20, "backup_list": items})

    with mocked_http() as mocked:
        mocked.get(re.compile(re.escape(BACKUPS) + r"\?.*"), callback=growing, repeat=True)
        with pytest.raises(ListingError) as caught:
            await make_project(page_size=10).list_backups()
        requests = len(calls(mocked))
    assert caught.value.reason == "endless"
    assert requests <= 20


async def test_max_pages_bounds_a_listing(make_project: MakeProject) -> None:
    def one_new_backup(url: URL, **kwargs: Any) -> CallbackResult:
        return CallbackResult(payload={"backup_count": 10**9, "backup_list": [backup(url.query["offset"])]})

    with mocked_http() as mocked:
        mocked.get(re.compile(re.escape(BACKUPS) + r"\?.*"), callback=one_new_backup, repeat=True)
        with pytest.raises(ListingError) as caught:
            await make_project(max_pages=5).list_backups()
        assert len(calls(mocked)) == 5
    assert caught.value.reason == "endless"


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        b"[]",
        b'{"backup_count": 1}',
        b'{"backup_count": 1, "backup_list": null}',
        b'{"backup_count": 1, "backup_list": {"id": "b1"}}',
        b'{"backup_count": "1", "backup_list": []}',
        b'{"backup_count": true, "backup_list": []}',
        b'{"backup_count": -1, "backup_list": []}',
        b'{"backup_count": 1.5, "backup_list": []}',
        b'{"backup_list": []}',
    ],
)
async def test_a_page_of_the_wrong_shape_is_a_listing_error(make_project: MakeProject, body: bytes) -> None:
    with mocked_http() as mocked:
        mocked.get(page_url(0), status=200, body=body)
        with pytest.raises(ListingError) as caught:
            await make_project().list_backups()
    assert caught.value.reason == "invalid_page"
    assert caught.value.operation == "list_backups"


async def test_a_page_that_fails_after_retries_raises(make_project: MakeProject, clock: FakeClock) -> None:
    with mocked_http() as mocked:
        mocked.get(page_url(0), payload={"backup_count": 150, "backup_list": [backup(i) for i in range(100)]})
        mocked.get(page_url(100), status=503, body=b"busy", repeat=True)
        with pytest.raises(ServerError) as caught:
            await make_project(max_attempts=4).list_backups()
    assert caught.value.attempts == 4
    assert len(clock.sleeps) == 3


async def test_iter_graphs_and_one_graphs_backups(make_project: MakeProject) -> None:
    project = make_project()
    graphs_url = f"{GES}/v2/{PROJECT}/graphs"
    one_graph = f"{GES}/v2/{PROJECT}/graphs/g-7/backups"
    with mocked_http() as mocked:
        mocked.get(page_url(0, base=graphs_url), payload={"graph_count": 2, "graphs": [{"id": "g1"}, {"id": "g2"}]})
        mocked.get(page_url(0, base=one_graph), payload={"backup_count": 1, "backup_list": [backup(1)]})
        pages = [page async for page in project.iter_graphs()]
        listing = await project.list_graph_backups("g-7")
    assert [p.items for p in pages] == [[{"id": "g1"}, {"id": "g2"}]]
    assert (pages[0].total, pages[0].offset, pages[0].number, pages[0].attempts) == (2, 0, 1, 1)
    assert listing.records == [backup(1)]


async def test_list_graphs(make_project: MakeProject) -> None:
    graphs_url = f"{GES}/v2/{PROJECT}/graphs"
    with mocked_http() as mocked:
        mocked.get(page_url(0, 1, base=graphs_url), payload={"graph_count": 3, "graphs": [{"id": "g1"}]})
        mocked.get(page_url(1, 1, base=graphs_url), payload={"graph_count": 3, "graphs": [{"id": "g2"}, {"id": "g1"}]})
        # Fetched in the same window as offset 1, and not used: offset 1 already reached the count.
        mocked.get(page_url(2, 1, base=graphs_url), payload={"graph_count": 3, "graphs": [{"id": "g3"}]})
        listing = await make_project(page_size=1).list_graphs()
    graphs = [{"id": "g1"}, {"id": "g2"}]
    # Offset 3 reaches the count: two unique ids of three reported is incomplete.
    assert (listing.graphs, listing.reported_count, listing.pages, listing.complete) == (graphs, 3, 2, False)


async def test_a_graph_listing_that_repeats_itself_is_an_error(make_project: MakeProject) -> None:
    graphs_url = f"{GES}/v2/{PROJECT}/graphs"
    with mocked_http() as mocked:
        mocked.get(page_url(0, 1, base=graphs_url), payload={"graph_count": 2, "graphs": [{"id": "g1"}]})
        mocked.get(page_url(1, 1, base=graphs_url), payload={"graph_count": 2, "graphs": [{"id": "g1"}]})
        with pytest.raises(ListingError) as caught:
            await make_project(page_size=1).list_graphs()
    assert (caught.value.reason, caught.value.operation, caught.value.offset) == ("repeating", "list_graphs", 1)


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_a_server_repeating_the_same_page_is_stopped_at_once(make_project: MakeProject, concurrency: int) -> None:
    # Issue 11 #4: it ignores `offset` and reports more than it lists; before, it was paged until the deadline.
    # Stopped after the first window of pages (issue 17: up to `concurrency` at once) that brings nothing new.
    first_page = {"backup_count": 1_000_000, "backup_list": [backup(i) for i in range(100)]}
    with mocked_http() as mocked:
        mocked.get(re.compile(re.escape(BACKUPS) + r"\?.*"), payload=first_page, repeat=True)
        with pytest.raises(ListingError) as caught:
            await make_project(concurrency=concurrency).list_backups()
        requests = len(calls(mocked))
    # The first page and its first window; the pages after the window already in flight (at most one window less one)
    # are wasted, not awaited.
    assert 1 + concurrency <= requests <= 2 * concurrency
    assert caught.value.reason == "repeating"
    assert caught.value.offset == 100
    message = str(caught.value)
    assert "repeats itself" in message and "100 of the 1000000" in message and "not trusted" in message


async def test_a_page_with_some_known_ids_is_not_a_repetition(make_project: MakeProject) -> None:
    # A backup created at the head while paging shifts one record onto the next page: that page still brings news.
    with mocked_http() as mocked:
        mocked.get(page_url(0, 2), payload={"backup_count": 4, "backup_list": [backup(0), backup(1)]})
        mocked.get(page_url(2, 2), payload={"backup_count": 5, "backup_list": [backup(1), backup(2)]})
        mocked.get(page_url(4, 2), payload={"backup_count": 5, "backup_list": [backup(3), backup(4)]})
        listing = await make_project(page_size=2).list_backups()
    assert [r["id"] for r in listing.records] == ["b0", "b1", "b2", "b3", "b4"]
    assert (listing.complete, listing.duplicates, listing.reported_count, listing.count_changed) == (True, 1, 5, True)


async def test_the_largest_reported_count_decides_completeness(make_project: MakeProject) -> None:
    with mocked_http() as mocked:
        mocked.get(page_url(0, 2), payload={"backup_count": 5, "backup_list": [backup(0), backup(1)]})
        mocked.get(page_url(2, 2), payload={"backup_count": 3, "backup_list": [backup(2)]})
        mocked.get(page_url(4, 2), payload={"backup_count": 3, "backup_list": []})  # same window, after the short page
        listing = await make_project(page_size=2).list_backups()
    assert (listing.reported_count, listing.complete, listing.pages) == (5, False, 2)


@pytest.mark.parametrize(
    "body",
    [b'{"backup_count": 0}', b'{"backup_count": 0, "backup_list": null}', b'{"backup_count": 0, "backup_list": []}'],
)
async def test_an_empty_project_may_leave_the_list_out(make_project: MakeProject, body: bytes) -> None:
    with mocked_http() as mocked:
        mocked.get(page_url(0), status=200, body=body)
        listing = await make_project().list_backups()
    assert (listing.records, listing.reported_count, listing.complete, listing.pages) == ([], 0, True, 1)


async def test_a_gone_graph_is_graph_gone_when_listing_it(make_project: MakeProject) -> None:
    url = page_url(0, base=f"{GES}/v2/{PROJECT}/graphs/g9/backups")
    with mocked_http() as mocked:
        mocked.get(url, status=400, payload={"error_code": "GES.7000", "error_msg": "graph does not exist"})
        with pytest.raises(GraphGoneError):
            await make_project().list_graph_backups("g9")


# --------------------------------------------------------------------------------------------------------------------
# Delete outcomes


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, b"{}", "deleted"),
        (200, b"", "deleted"),
        (204, b"", "deleted"),
        (400, b'{"error_code": "GES.7024", "error_msg": "backup does not exist"}', "already_deleted"),
        (404, b'{"error_code": "GES.7024", "error_msg": "backup does not exist"}', "already_deleted"),
    ],
)
async def test_delete_outcomes(make_project: MakeProject, status: int, body: bytes, outcome: str) -> None:
    with mocked_http() as mocked:
        mocked.delete(delete_url(), status=status, body=body, headers={"X-Request-Id": "req-7"})
        result = await make_project().delete_backup("g1", "b1")
    assert result.outcome == outcome
    assert result.attempts == 1
    assert result.status == status
    assert result.request_id == "req-7"
    assert result.error_code == (None if outcome == "deleted" else "GES.7024")
    assert result.duration_s >= 0


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (404, b"", NotFoundError),  # a 404 without GES.7024: wrong endpoint or project, not a deletion
        (404, b'{"error_code": "APIGW.0101", "error_msg": "API not found"}', NotFoundError),
        (403, b'{"error_code": "APIGW.0302", "error_msg": "forbidden"}', Forbidden),
        (400, b'{"error_code": "GES.0001", "error_msg": "incorrect parameter"}', BadRequestError),
        (400, b'{"error_code": "GES.7041", "error_msg": "insufficient permission"}', Forbidden),
        (400, b'{"error_code": "GES.7054", "error_msg": "graph being deleted"}', GraphGoneError),
        (401, b'{"error_code": "APIGW.0301", "error_msg": "bad token"}', Unauthorized),
        (501, b"", ServerError),
    ],
)
async def test_fatal_delete_failures_are_not_retried(
    make_project: MakeProject, clock: FakeClock, status: int, body: bytes, cls: type[GesError]
) -> None:
    with mocked_http() as mocked:
        mocked.delete(delete_url(), status=status, body=body)
        with pytest.raises(cls) as caught:
            await make_project().delete_backup("g1", "b1")
        assert len(calls(mocked)) == 1
    assert type(caught.value) is cls
    assert caught.value.attempts == 1
    assert caught.value.operation == "delete_backup"
    assert caught.value.status == status
    assert clock.sleeps == []


async def test_busy_backup_is_retried_then_given_up(make_project: MakeProject) -> None:
    with mocked_http() as mocked:
        mocked.delete(delete_url(), status=400, payload={"error_code": "GES.7002"}, repeat=True)
        with pytest.raises(BackupBusyError) as caught:
            await make_project(max_attempts=3).delete_backup("g1", "b1")
    assert caught.value.attempts == 3
    assert caught.value.retryable


# --------------------------------------------------------------------------------------------------------------------
# Retries


async def test_server_errors_are_retried_with_backoff(
    make_project: MakeProject, clock: FakeClock, observer: RecordingObserver
) -> None:
    with mocked_http() as mocked:
        mocked.delete(delete_url(), status=503, body=b"busy")
        mocked.delete(delete_url(), status=502, payload={"error_code": "APIGW.0201"})
        mocked.delete(delete_url(), status=408, payload={"error_code": "GES.7005"})
        mocked.delete(delete_url(), status=200, body=b"{}")
        result = await make_project(backoff_base_s=1.0).delete_backup("g1", "b1")
    assert (result.outcome, result.attempts) == ("deleted", 4)
    assert [r[1] for r in observer.retries] == [1, 2, 3]
    assert [r[2] for r in observer.retries] == ["ServerError"] * 3
    for n, slept in enumerate(clock.sleeps, start=1):
        assert 0 <= slept <= 2 ** (n - 1)  # full jitter under base * 2**(n-1)
    assert result.duration_s == pytest.approx(sum(clock.sleeps))


async def test_a_429_storm(make_project: MakeProject, clock: FakeClock, observer: RecordingObserver) -> None:
    project = make_project(rate_limit_per_s=10)
    throttle = {"error_code": "APIGW.0308", "error_msg": "policy user over ratelimit,limit:10,time:1 minute"}
    with mocked_http() as mocked:
        for _ in range(4):
            mocked.delete(delete_url(), status=429, payload=throttle, headers={"Retry-After": "2"})
        mocked.delete(delete_url(), status=200)
        result = await project.delete_backup("g1", "b1")
    assert result.attempts == 5
    assert len(observer.throttled) == 4
    assert all(status == 429 and 2.0 <= wait <= 2.4 for _, status, wait in observer.throttled)
    assert all(slept >= 2.0 for slept in clock.sleeps if slept > 0.1)
    # Each 429 answered a request sent after the previous slow-down: four halvings (with some recovery between).
    pacer = project.pacer
    assert isinstance(pacer, RatePacer)
    assert pacer.generation == 4
    assert pacer.rate < 10 / 4


async def test_a_429_storm_that_does_not_end(make_project: MakeProject) -> None:
    with mocked_http() as mocked:
        mocked.delete(delete_url(), status=429, body=b"", repeat=True)
        with pytest.raises(ThrottledError) as caught:
            await make_project(max_attempts=5).delete_backup("g1", "b1")
    assert caught.value.attempts == 5


async def test_a_429_burst_on_many_requests_slows_the_pacer_once(make_project: MakeProject) -> None:
    project = make_project(rate_limit_per_s=100, concurrency=64)
    first_round: list[int] = []
    all_in_flight = asyncio.Event()

    async def gateway(url: URL, **kwargs: Any) -> CallbackResult:
        if len(first_round) < 40:
            # Latency: the 429s of this burst come back only once all 40 requests are in flight.
            first_round.append(1)
            if len(first_round) == 40:
                all_in_flight.set()
            await all_in_flight.wait()
            return CallbackResult(status=429)
        return CallbackResult(status=200)

    with mocked_http() as mocked:
        mocked.delete(
            re.compile(re.escape(f"{GES}/v2/{PROJECT}/graphs/g1/backups/") + ".*"), callback=gateway, repeat=True
        )
        results = await asyncio.gather(*(project.delete_backup("g1", f"b{i}") for i in range(40)))
    assert all(r.outcome == "deleted" and r.attempts == 2 for r in results)
    # 40 requests in flight at once got a 429 for the same burst: one halving, not forty.
    pacer = project.pacer
    assert isinstance(pacer, RatePacer)
    assert pacer.generation == 1
    assert pacer.rate < 100  # halved to 50, recovering since


async def test_connection_reset_is_retried(make_project: MakeProject) -> None:
    with mocked_http() as mocked:
        mocked.delete(delete_url(), exception=aiohttp.ServerDisconnectedError())
        mocked.delete(delete_url(), exception=aiohttp.ClientOSError(104, "Connection reset by peer"))
        mocked.delete(delete_url(), status=200)
        result = await make_project().delete_backup("g1", "b1")
    assert result.attempts == 3


async def test_connection_reset_every_time(make_project: MakeProject) -> None:
    reset = ConnectionResetError(104, "Connection reset by peer")
    with mocked_http() as mocked:
        mocked.delete(delete_url(), exception=reset, repeat=True)
        with pytest.raises(TransportError) as caught:
            await make_project(max_attempts=3).delete_backup("g1", "b1")
    assert caught.value.attempts == 3
    assert caught.value.__cause__ is reset


async def test_a_timeout_is_retried_then_raised(make_project: MakeProject, observer: RecordingObserver) -> None:
    with mocked_http() as mocked:
        mocked.delete(delete_url(), exception=TimeoutError(), repeat=True)
        with pytest.raises(RequestTimeout) as caught:
            await make_project(max_attempts=2).delete_backup("g1", "b1")
    assert caught.value.attempts == 2
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert observer.retries[0][2] == "RequestTimeout"


# --------------------------------------------------------------------------------------------------------------------
# 401 and token refresh


def iam_answer(token: str, lifetime: timedelta = timedelta(hours=24)) -> CallbackResult:
    issued = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    expires = issued + lifetime
    body = {"token": {"issued_at": issued.isoformat(), "expires_at": expires.isoformat()}}
    return CallbackResult(status=201, payload=body, headers={"X-Subject-Token": token})


def password_auth(clock: FakeClock, session: aiohttp.ClientSession) -> PasswordAuth:
    return PasswordAuth(IAM, "dom", "alice", PASSWORD, PROJECT, clock=clock.time, session=session)


async def test_token_revoked_mid_listing_is_refreshed_once(
    session: aiohttp.ClientSession, make_project: MakeProject, clock: FakeClock
) -> None:
    auth = password_auth(clock, session)
    project = make_project(auth, page_size=2)
    tokens = iter(["tok-SECRET-1", "tok-SECRET-2"])
    valid = {"tok-SECRET-1"}

    def ges(url: URL, **kwargs: Any) -> CallbackResult:
        if kwargs["headers"]["X-Auth-Token"] not in valid:
            return CallbackResult(status=401, payload={"error_code": "APIGW.0307", "error_msg": "token expired"})
        offset = int(url.query["offset"])
        if offset == 2:
            valid.clear()  # the token expires (or is revoked) server-side after this page
            valid.add("tok-SECRET-2")
        return CallbackResult(payload={"backup_count": 6, "backup_list": [backup(offset), backup(offset + 1)]})

    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer(next(tokens)), repeat=True)
        mocked.get(re.compile(re.escape(BACKUPS) + r"\?.*"), callback=ges, repeat=True)
        pages = [page async for page in project.iter_backup_pages()]
    assert [p.attempts for p in pages] == [1, 1, 2]
    assert auth.logins == 2
    assert sum(len(p.items) for p in pages) == 6


async def test_token_expiring_mid_stream_is_refreshed_before_the_next_page(
    session: aiohttp.ClientSession, make_project: MakeProject, clock: FakeClock
) -> None:
    auth = password_auth(clock, session)
    project = make_project(auth, page_size=1)
    tokens = iter(["tok-SECRET-1", "tok-SECRET-2"])
    seen: list[str] = []

    def ges(url: URL, **kwargs: Any) -> CallbackResult:
        seen.append(kwargs["headers"]["X-Auth-Token"])
        return CallbackResult(payload={"backup_count": 2, "backup_list": [backup(url.query["offset"])]})

    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer(next(tokens), timedelta(hours=1)), repeat=True)
        mocked.get(re.compile(re.escape(BACKUPS) + r"\?.*"), callback=ges, repeat=True)
        async for _ in project.iter_backup_pages():
            clock.advance(55 * 60)  # past the refresh point (6 min before expiry) while the caller works on a page
    assert seen == ["tok-SECRET-1", "tok-SECRET-2"]
    assert auth.logins == 2


async def test_a_second_401_is_fatal(
    session: aiohttp.ClientSession, make_project: MakeProject, clock: FakeClock
) -> None:
    auth = password_auth(clock, session)
    tokens = iter(["tok-SECRET-1", "tok-SECRET-2", "tok-SECRET-3"])
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer(next(tokens)), repeat=True)
        mocked.delete(delete_url(), status=401, payload={"error_code": "APIGW.0301"}, repeat=True)
        with pytest.raises(Unauthorized) as caught:
            await make_project(auth).delete_backup("g1", "b1")
    assert caught.value.attempts == 2
    assert auth.logins == 2
    assert clock.sleeps == []  # the refresh retry does not back off


async def test_the_refresh_retry_does_not_spend_a_try(
    session: aiohttp.ClientSession, make_project: MakeProject, clock: FakeClock
) -> None:
    auth = password_auth(clock, session)
    tokens = iter(["tok-SECRET-1", "tok-SECRET-2"])
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer(next(tokens)), repeat=True)
        mocked.delete(delete_url(), status=401, payload={"error_code": "APIGW.0307"})
        mocked.delete(delete_url(), status=200)
        result = await make_project(auth, max_attempts=1).delete_backup("g1", "b1")
    assert result.attempts == 2


async def test_a_static_token_401_is_final(make_project: MakeProject) -> None:
    with mocked_http() as mocked:
        mocked.delete(delete_url(), status=401, payload={"error_code": "APIGW.0301"}, repeat=True)
        with pytest.raises(Unauthorized) as caught:
            await make_project().delete_backup("g1", "b1")
        assert len(calls(mocked)) == 1
    assert caught.value.attempts == 1


async def test_a_refused_login_is_fatal_and_sends_nothing_to_ges(
    session: aiohttp.ClientSession, make_project: MakeProject, clock: FakeClock
) -> None:
    auth = password_auth(clock, session)
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, status=401, payload={"error": {"code": 401, "message": "wrong password"}}, repeat=True)
        with pytest.raises(Unauthorized) as caught:
            await make_project(auth).delete_backup("g1", "b1")
        assert [verb for verb, _, _ in calls(mocked)] == ["POST"]
    assert caught.value.operation == "iam_login"
    assert caught.value.attempts == 1


async def test_an_unavailable_iam_is_retried(
    session: aiohttp.ClientSession, make_project: MakeProject, clock: FakeClock
) -> None:
    auth = password_auth(clock, session)
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, status=503, payload={"error_code": "APIGW.0613", "error_msg": "IAM unavailable"})
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer("tok-SECRET-1"))
        mocked.delete(delete_url(), status=200)
        result = await make_project(auth).delete_backup("g1", "b1")
    assert result.attempts == 2
    assert auth.logins == 2


async def test_a_hundred_concurrent_deletes_log_in_once(
    session: aiohttp.ClientSession, make_project: MakeProject, clock: FakeClock
) -> None:
    auth = password_auth(clock, session)
    project = make_project(auth, concurrency=100)
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer("tok-SECRET-1"), repeat=True)
        mocked.delete(re.compile(re.escape(f"{GES}/v2/{PROJECT}/graphs/g1/backups/") + ".*"), status=200, repeat=True)
        results = await asyncio.gather(*(project.delete_backup("g1", f"b{i}") for i in range(100)))
    assert len(results) == 100
    assert auth.logins == 1


async def test_aksk_requests_are_signed(make_project: MakeProject) -> None:
    project = make_project(AkSkAuth("AK1", "sk-SECRET", PROJECT, clock=lambda: 1_700_000_000.0))
    with mocked_http() as mocked:
        mocked.delete(delete_url(), status=200)
        await project.delete_backup("g1", "b1")
        ((_, _, kwargs),) = calls(mocked)
    headers = kwargs["headers"]
    assert headers["X-Project-Id"] == PROJECT
    assert headers["X-Sdk-Date"] == "20231114T221320Z"
    assert headers["Host"] == "ges.example.test"
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"].startswith("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=content-type;host;")
    assert kwargs["allow_redirects"] is False


# --------------------------------------------------------------------------------------------------------------------
# Deadlines


async def test_no_attempt_starts_after_the_deadline(make_project: MakeProject, clock: FakeClock) -> None:
    with mocked_http() as mocked:
        with pytest.raises(DeadlineExceeded) as caught:
            await make_project().delete_backup("g1", "b1", deadline=clock.now)
        assert calls(mocked) == []
    assert caught.value.attempts == 0


async def test_a_backoff_ending_after_the_deadline_raises(make_project: MakeProject, clock: FakeClock) -> None:
    with mocked_http() as mocked:
        mocked.delete(delete_url(), status=429, headers={"Retry-After": "10"}, repeat=True)
        with pytest.raises(DeadlineExceeded) as caught:
            await make_project().delete_backup("g1", "b1", deadline=clock.now + 5)
        assert len(calls(mocked)) == 1
    assert caught.value.attempts == 1
    assert isinstance(caught.value.__cause__, ThrottledError)
    assert caught.value.status == 429
    assert clock.sleeps == []


async def test_a_deadline_that_passes_while_paced(make_project: MakeProject, clock: FakeClock) -> None:
    project = make_project(rate_limit_per_s=1)
    with mocked_http() as mocked:
        mocked.delete(re.compile(".*"), status=200, repeat=True)
        await project.delete_backup("g1", "b1", deadline=clock.now + 0.5)
        with pytest.raises(DeadlineExceeded) as caught:
            await project.delete_backup("g1", "b2", deadline=clock.now + 0.5)  # its slot is 1 s away
        assert len(calls(mocked)) == 1
    assert caught.value.attempts == 0


# --------------------------------------------------------------------------------------------------------------------
# Pacing through the client


async def test_requests_are_paced_per_project(make_project: MakeProject, clock: FakeClock) -> None:
    project = make_project(rate_limit_per_s=10, concurrency=8)
    sent: list[float] = []

    def record(url: URL, **kwargs: Any) -> CallbackResult:
        sent.append(clock.now)
        return CallbackResult(status=200)

    with mocked_http() as mocked:
        mocked.delete(re.compile(".*"), callback=record, repeat=True)
        await asyncio.gather(*(project.delete_backup("g1", f"b{i}") for i in range(50)))
    sent.sort()
    assert max(sum(1 for t in sent if start <= t < start + 1) for start in sent) <= 11
    assert sent[-1] - sent[0] == pytest.approx(4.9, abs=0.1)


async def test_concurrency_is_capped(session: aiohttp.ClientSession) -> None:
    client = GesClient(session, ClientConfig(concurrency=3, rate_limit_per_s=0))
    project = client.project(GES, PROJECT, TokenAuth(TOKEN))
    in_flight = peak = 0

    async def slow(url: URL, **kwargs: Any) -> CallbackResult:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        in_flight -= 1
        return CallbackResult(status=200)

    with mocked_http() as mocked:
        mocked.delete(re.compile(".*"), callback=slow, repeat=True)
        await asyncio.gather(*(project.delete_backup("g1", f"b{i}") for i in range(20)))
    assert peak == 3


# --------------------------------------------------------------------------------------------------------------------
# Identifiers


@pytest.mark.parametrize(
    "bad",
    ["", ".", "..", "a/b", "/", "../b1", "%2F", "a%2Fb", "b1?x=1", "b1#f", "a b", "b\n1", "é", "x" * 129, "a\\b"],
)
async def test_bad_ids_are_refused_before_any_request(make_project: MakeProject, bad: str) -> None:
    project = make_project()
    with mocked_http() as mocked:
        with pytest.raises(InvalidIdentifier) as caught:
            await project.delete_backup("g1", bad)
        assert caught.value.field == "backup_id"
        with pytest.raises(InvalidIdentifier) as caught:
            await project.delete_backup(bad, "b1")
        assert caught.value.field == "graph_id"
        with pytest.raises(InvalidIdentifier):
            project.iter_graph_backup_pages(bad)
        assert calls(mocked) == []


@pytest.mark.parametrize("bad", ["", "p/1", "p-1", "..", "p%2F", "x" * 65])
async def test_bad_project_ids_are_refused(session: aiohttp.ClientSession, bad: str) -> None:
    with pytest.raises(InvalidIdentifier):
        GesClient(session).project(GES, bad, TokenAuth(TOKEN))


@settings(max_examples=500)
@given(st.text(max_size=140))
def test_a_segment_can_never_change_the_path(value: str) -> None:
    try:
        segment = path_segment(value, field="backup_id", operation="delete_backup")
    except InvalidIdentifier:
        return
    url = URL.build(scheme="https", host="h", path=f"/v2/p/graphs/g/backups/{segment}", encoded=True)
    assert url.parts == ("/", "v2", "p", "graphs", "g", "backups", value)
    assert unquote(url.raw_parts[-1]) == value
    assert url.raw_query_string == ""
    assert url.raw_fragment == ""


async def test_ids_with_every_allowed_character(make_project: MakeProject) -> None:
    with mocked_http() as mocked:
        mocked.delete(delete_url("G_1.x~y-z", "ada3e720-1b2c.v2"), status=200)
        result = await make_project().delete_backup("G_1.x~y-z", "ada3e720-1b2c.v2")
    assert result.outcome == "deleted"


# --------------------------------------------------------------------------------------------------------------------
# Secrets, cancellation, configuration


async def test_secrets_never_reach_errors_or_reprs(
    session: aiohttp.ClientSession, make_project: MakeProject, clock: FakeClock
) -> None:
    errors: list[BaseException] = []
    projects = [
        make_project(TokenAuth(TOKEN), max_attempts=2),
        make_project(password_auth(clock, session), max_attempts=2),
        make_project(AkSkAuth("AK1", "sk-SECRET-aksk", PROJECT, "sts-SECRET-token"), max_attempts=2),
    ]
    answers: list[dict[str, Any]] = [
        {"status": 401, "payload": {"error_code": "APIGW.0301", "error_msg": "bad"}},
        {"status": 403, "body": b"forbidden"},
        {"exception": aiohttp.ClientOSError(104, "Connection reset by peer")},
        {"exception": TimeoutError()},
        {"status": 500, "body": b"<html>boom</html>"},
    ]
    with mocked_http() as mocked:
        mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer("tok-SECRET-iam"), repeat=True)
        for project in projects:
            for answer in answers:
                mocked.delete(delete_url(), repeat=True, **answer)
                try:
                    await project.delete_backup("g1", "b1")
                except GesError as exc:
                    errors.append(exc)
                mocked.clear()
                mocked.post(IAM_TOKENS, callback=lambda url, **kw: iam_answer("tok-SECRET-iam"), repeat=True)
    assert len(errors) == len(projects) * len(answers)
    texts = [repr(p) for p in projects] + [repr(p._transport) for p in projects]
    for error in errors:
        cause: BaseException | None = error
        while cause is not None:
            texts += [str(cause), repr(cause)]
            cause = cause.__cause__
    for text in texts:
        assert "SECRET" not in text, text


async def test_cancel_in_flight_and_while_waiting_leaks_nothing(session: aiohttp.ClientSession) -> None:
    client = GesClient(session, ClientConfig(concurrency=1, rate_limit_per_s=0))
    project = client.project(GES, PROJECT, TokenAuth(TOKEN))
    started = asyncio.Event()

    async def hang(url: URL, **kwargs: Any) -> CallbackResult:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    with mocked_http() as mocked:
        mocked.delete(delete_url("g1", "b1"), callback=hang)
        mocked.delete(delete_url("g1", "b3"), status=200)
        in_flight = asyncio.create_task(project.delete_backup("g1", "b1"))
        await started.wait()
        waiting = asyncio.create_task(project.delete_backup("g1", "b2"))  # waits for the only slot
        await asyncio.sleep(0)
        waiting.cancel()
        in_flight.cancel()
        for task in (waiting, in_flight):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert not client.pacing.in_flight.locked()
        assert (await project.delete_backup("g1", "b3")).outcome == "deleted"


async def test_cancel_during_backoff_leaks_nothing(session: aiohttp.ClientSession) -> None:
    sleeping = asyncio.Event()

    async def endless_sleep(seconds: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    client = GesClient(session, ClientConfig(concurrency=1, rate_limit_per_s=5), sleep_fn=endless_sleep)
    project = client.project(GES, PROJECT, TokenAuth(TOKEN))
    with mocked_http() as mocked:
        mocked.delete(delete_url(), status=503)
        task = asyncio.create_task(project.delete_backup("g1", "b1"))
        await sleeping.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not client.pacing.in_flight.locked()
    pacer = project.pacer
    assert isinstance(pacer, RatePacer)
    assert not pacer._lock.locked()


async def test_project_views_are_cached_and_checked(session: aiohttp.ClientSession) -> None:
    client = GesClient(session)
    auth = TokenAuth(TOKEN)
    assert client.project(GES, PROJECT, auth) is client.project(GES, PROJECT, auth)
    assert client.project(GES, PROJECT, auth).pacer is client.project(GES, PROJECT, TokenAuth(TOKEN)).pacer
    assert client.project(GES, "p2", auth).pacer is not client.project(GES, PROJECT, auth).pacer
    with pytest.raises(ValueError, match="project"):
        client.project(GES, "p2", AkSkAuth("AK1", "sk", PROJECT))
    for endpoint in ("ges.example.test", "ftp://ges.example.test", "https://u:p@ges.example.test", f"{GES}/?q=1"):
        with pytest.raises(ValueError, match="endpoint"):
            client.project(endpoint, PROJECT, auth)


async def test_an_endpoint_with_a_path_prefix(session: aiohttp.ClientSession) -> None:
    project = GesClient(session).project("http://127.0.0.1:8080/ges/", PROJECT, TokenAuth(TOKEN))
    with mocked_http() as mocked:
        mocked.delete(f"http://127.0.0.1:8080/ges/v2/{PROJECT}/graphs/g1/backups/b1", status=200)
        assert (await project.delete_backup("g1", "b1")).outcome == "deleted"


def test_config_is_validated() -> None:
    ClientConfig()
    cases: list[dict[str, Any]] = [
        {"concurrency": 0},
        {"rate_limit_per_s": -1},
        {"page_size": 0},
        {"page_size": 1001},
        {"max_attempts": 0},
        {"request_timeout_s": 0},
        {"max_pages": 0},
    ]
    for bad in cases:
        with pytest.raises(ValueError):
            ClientConfig(**bad)


async def test_open_session_verifies_tls_and_pools(tmp_path: Any) -> None:
    session = open_session(ClientConfig(concurrency=16, request_timeout_s=7))
    try:
        connector = session.connector
        assert isinstance(connector, aiohttp.TCPConnector)
        assert connector.limit >= 16
        context = connector._ssl
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
        assert session.timeout.total == 7
        assert not session.trust_env
        assert session._retry_connection is False  # no silent resend outside our paced, counted retries
    finally:
        await session.close()
    with pytest.raises((FileNotFoundError, ssl.SSLError)):
        open_session(ClientConfig(ca_bundle=str(tmp_path / "missing.pem")))
