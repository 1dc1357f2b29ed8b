"""Offset paging of GES listings, de-duplication by id, and the facts that decide whether a listing is trusted.

`iter_pages` asks for pages through a `fetch(offset, limit)` callable (the client's, over the transport), checks each
one's shape and stops at the first empty or short page, at the count, or when the server evidently pages forever.
After the first page, pages are fetched in windows of up to `window` at once (the client passes
`GES_RETENTION_CONCURRENCY`), at the offsets that the count reported so far calls for; the transport's in-flight cap
and pacer still hold every request. Pages are handed on in offset order, and nothing after the first short or empty
page of a window is used. A server that caps the page below the `limit` asked for shows it on the first page (short
while the count says more): the windows then step by what it sends.
`collect_backups` / `collect_graphs` de-duplicate the records by id and say whether the listing is complete:

- complete = the unique ids reach the largest count reported by any page;
- a window of pages that brings no new id while that count is not reached means the server repeats itself (it
  ignores `offset`, or reports a count it never lists): paging stops at once with `ListingError(reason="repeating")`,
  rather than asking for the same pages until the run deadline;
- a page that fails (after the transport's retries) fails the listing: the other pages of its window are cancelled;
- an empty listing may be answered as `{"backup_count": 0}` without the list (or with `null`): that is an empty page.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from ges_retention.ges.errors import ListingError

__all__ = [
    "BackupListing",
    "FetchPage",
    "GraphListing",
    "Listing",
    "Page",
    "collect_backups",
    "collect_graphs",
    "iter_pages",
    "parse_page",
]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, raw: `items` as the server sent them, `total` its count field. `window`: the number of
    the window it was fetched in (the first page alone is window 0); `window_end`: the last page used of it."""

    items: list[Any]
    total: int
    offset: int
    number: int
    attempts: int
    window: int = 0
    window_end: bool = True


@dataclass(frozen=True, slots=True)
class Listing:
    """A kind of listing: the operation's name, and the keys of the list and of the count in its pages."""

    operation: str
    list_key: str
    count_key: str


@dataclass(frozen=True, slots=True)
class BackupListing:
    """Every backup record of a listing, de-duplicated by id (first seen wins), still raw.

    `complete` is False when fewer unique ids were collected than the largest `backup_count` reported
    (`reported_count`): the runner must not delete from an incomplete listing. Records without a usable `id` are
    kept as they are, for the runner's validation to reject. `conflicting_ids`: ids seen twice with different
    content (the backup changed while we paged, e.g. finished); `conflicting_records` are those later copies, raw,
    so that they are validated too (an invalid record makes a listing untrustworthy wherever it appears).
    `count_changed`: the count moved between pages.
    """

    records: list[Any]
    reported_count: int
    pages: int
    duplicates: int
    conflicting_ids: tuple[str, ...]
    count_changed: bool
    complete: bool
    requests: int
    conflicting_records: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class GraphListing:
    """Every graph record of a listing, de-duplicated by id (first seen wins), still raw; `complete` as for backups.
    `later_copies`: records of an id already seen that differ from the first copy, for the caller to judge (a graph
    listed under two names cannot be trusted)."""

    graphs: list[Any]
    reported_count: int
    pages: int
    complete: bool
    later_copies: tuple[Any, ...] = ()


# (offset, limit) -> (the page's body, the attempts it took)
FetchPage = Callable[[int, int], Awaitable[tuple[bytes, int]]]


async def iter_pages(
    listing: Listing, fetch: FetchPage, *, limit: int, max_pages: int, window: int = 1
) -> AsyncGenerator[Page, None]:
    """The pages of `listing` from offset 0, raw, in offset order; after the first, up to `window` pages are in flight
    at once. Raises `ListingError` for a malformed page or endless paging, and whatever `fetch` raises."""
    if not 1 <= limit <= 1000:
        raise ValueError(f"page_size must be within 1..1000, got {limit}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    body, attempts = await fetch(0, limit)
    items, total = parse_page(listing, body, 0)
    yield Page(items, total, 0, 1, attempts, 0, True)
    if not items or len(items) >= total:
        return
    # A first page shorter than asked while the count says more: the server caps its pages; step by what it sends.
    pages = _Windows(listing, fetch, limit=limit, step=min(limit, len(items)), first_total=total, window=window)
    try:
        pages.fill(max_pages)
        while True:
            page, last = await pages.next_page()
            if not (last or page.window_end):
                # Before the page is handed on, and sent (the loop runs the new request up to the wire): the next
                # page is on its way while this one is read.
                pages.fill(max_pages)
                await asyncio.sleep(0)
            yield page
            if last:
                return
            pages.fill(max_pages)
    finally:
        await pages.cancel()


class _Windows:
    """The pages after the first: in flight in offset order (at most `window` at once, never past the largest count
    reported), each handed on once it and every page before it are in. The pages after the first are numbered in
    windows of `window` (the unit of the `repeating` rule); the first short or empty page, or the count, ends it."""

    __slots__ = (
        "fetch",
        "first_total",
        "largest",
        "limit",
        "listing",
        "next_offset",
        "number",
        "pending",
        "requested",
        "step",
        "window",
    )

    def __init__(
        self, listing: Listing, fetch: FetchPage, *, limit: int, step: int, first_total: int, window: int
    ) -> None:
        self.listing = listing
        self.fetch = fetch
        self.limit = limit
        self.step = step
        self.window = window
        self.first_total = first_total
        self.largest = first_total
        self.next_offset = step
        self.requested = 1  # the first page
        self.number = 1
        self.pending: deque[tuple[int, asyncio.Task[tuple[bytes, int]]]] = deque()

    def fill(self, max_pages: int) -> None:
        """Request pages up to the window, within the largest count and `max_pages`; raise for endless paging."""
        while len(self.pending) < self.window and self.next_offset < self.largest:
            if self.requested >= max_pages:
                break
            if self.next_offset > 2 * self.first_total + 10 * self.limit:
                # The count keeps growing ahead of us: items are created faster than we page, or the server lies.
                raise ListingError(
                    f"{self.listing.count_key} grew from {self.first_total} to {self.largest} while paging: the "
                    "server pages forever",
                    operation=self.listing.operation,
                    reason="endless",
                    offset=self.next_offset,
                )
            self.pending.append((self.next_offset, asyncio.ensure_future(self.fetch(self.next_offset, self.limit))))
            self.requested += 1
            self.next_offset += self.step
        if not self.pending:
            # Called only while the count is not reached: the pages it still calls for are more than `max_pages`.
            raise ListingError(
                f"more than {max_pages} pages: the server pages forever",
                operation=self.listing.operation,
                reason="endless",
                offset=self.next_offset,
            )

    async def next_page(self) -> tuple[Page, bool]:
        """The lowest page, once in (a failure of any page in flight is raised at once); and whether it is the last."""
        at, head = self.pending[0]
        while not head.done():
            await asyncio.wait([task for _, task in self.pending], return_when=asyncio.FIRST_COMPLETED)
            for _, task in self.pending:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    task.result()  # raises it
        self.pending.popleft()
        body, attempts = head.result()
        items, total = parse_page(self.listing, body, at)
        self.number += 1
        self.largest = max(self.largest, total)
        end = at + len(items)
        # Advance by what came; stop at the first empty or short page, or at the count.
        last = len(items) < self.step or end >= total
        index = self.number - 1  # 1 for the page after the first
        window_end = last or index % self.window == 0
        page = Page(items, total, at, self.number, attempts, (index - 1) // self.window + 1, window_end)
        return page, last

    async def cancel(self) -> None:
        """No request outlives the listing (it ended, failed, or its consumer stopped)."""
        tasks = [task for _, task in self.pending]
        self.pending.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def parse_page(listing: Listing, body: bytes, offset: int) -> tuple[list[Any], int]:
    """(items, count) of one page's body, or `ListingError(reason="invalid_page")`."""

    def invalid(why: str) -> ListingError:
        return ListingError(
            f"page at offset {offset} is not a valid listing: {why}",
            operation=listing.operation,
            reason="invalid_page",
            offset=offset,
        )

    try:
        data = json.loads(body)
    except ValueError:
        raise invalid("the body is not JSON") from None
    if not isinstance(data, dict):
        raise invalid(f"the body is a JSON {type(data).__name__}, not an object")
    total = data.get(listing.count_key)
    # bool is an int in Python; a JSON true is not a count.
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise invalid(f"{listing.count_key!r} is {total!r}, not a count")
    items = data.get(listing.list_key)
    if items is None and total == 0:
        return [], 0  # an empty project may leave the list out, or send null: nothing to list is not a failure
    if not isinstance(items, list):
        raise invalid(f"{listing.list_key!r} is {type(items).__name__}, not a list")
    return items, total


class _Progress:
    """The unique ids seen so far and the largest count reported: the facts that decide trust."""

    __slots__ = ("ids_in_window", "largest", "new_in_window", "operation", "seen", "window_offset")

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.seen: dict[str, Any] = {}
        self.largest = 0
        self.new_in_window = 0
        self.ids_in_window = 0
        self.window_offset: int | None = None

    def check(self, page: Page, new_ids: int, ids_on_page: int) -> None:
        """Stop paging a server that repeats itself: a window of known ids while the count is not reached."""
        self.largest = max(self.largest, page.total)
        if self.window_offset is None:
            self.window_offset = page.offset
        self.new_in_window += new_ids
        self.ids_in_window += ids_on_page
        if not page.window_end:
            return
        offset = self.window_offset
        repeating = self.ids_in_window and not self.new_in_window and len(self.seen) < self.largest
        self.new_in_window = self.ids_in_window = 0
        self.window_offset = None
        if repeating:
            raise ListingError(
                f"the server repeats itself: the pages from offset {offset} brought no new id while "
                f"{len(self.seen)} of the {self.largest} reported were collected; the listing is not trusted",
                operation=self.operation,
                reason="repeating",
                offset=offset,
            )


async def collect_backups(
    operation: str, pages: AsyncGenerator[Page, None], parse: Callable[[Any], Any] | None = None
) -> BackupListing:
    """Every record of `pages`, de-duplicated by id; with `parse`, each converted as its page arrives."""
    records: list[Any] = []
    progress = _Progress(operation)
    seen = progress.seen
    conflicts: dict[str, None] = {}  # ordered set
    conflicting: list[Any] = []
    duplicates = 0
    counts: set[int] = set()
    page_count = 0
    requests = 0
    async with aclosing(pages):
        async for page in pages:
            page_count += 1
            requests += page.attempts
            counts.add(page.total)
            new_ids = ids_on_page = 0
            for raw in page.items:
                backup_id = raw.get("id") if isinstance(raw, dict) else None
                record = raw if parse is None else parse(raw)
                if not isinstance(backup_id, str) or not backup_id:
                    records.append(record)  # kept for the runner to reject: it makes the listing invalid
                    continue
                ids_on_page += 1
                first = seen.get(backup_id)
                if first is None:
                    new_ids += 1
                    seen[backup_id] = record
                    records.append(record)
                    continue
                duplicates += 1
                if first != record:
                    conflicts[backup_id] = None
                    conflicting.append(record)
            progress.check(page, new_ids, ids_on_page)
    return BackupListing(
        records=records,
        reported_count=progress.largest,
        pages=page_count,
        duplicates=duplicates,
        conflicting_ids=tuple(conflicts),
        count_changed=len(counts) > 1,
        complete=len(seen) >= progress.largest,
        requests=requests,
        conflicting_records=tuple(conflicting),
    )


async def collect_graphs(operation: str, pages: AsyncGenerator[Page, None]) -> GraphListing:
    """Every graph of `pages`, de-duplicated by id (records without a usable id are kept as they are)."""
    graphs: list[Any] = []
    later: list[Any] = []
    progress = _Progress(operation)
    page_count = 0
    async with aclosing(pages):
        async for page in pages:
            page_count += 1
            new_ids = ids_on_page = 0
            for graph in page.items:
                graph_id = graph.get("id") if isinstance(graph, dict) else None
                if isinstance(graph_id, str) and graph_id:
                    ids_on_page += 1
                    first = progress.seen.get(graph_id, progress)
                    if first is not progress:
                        if first != graph:
                            later.append(graph)
                        continue
                    new_ids += 1
                    progress.seen[graph_id] = graph
                graphs.append(graph)
            progress.check(page, new_ids, ids_on_page)
    complete = len(progress.seen) >= progress.largest
    return GraphListing(graphs, progress.largest, page_count, complete, tuple(later))
