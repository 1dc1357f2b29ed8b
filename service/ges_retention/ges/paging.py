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
    graphs: list[Any]
    reported_count: int
    pages: int
    complete: bool


# (offset, limit) -> (the page's body, the attempts it took)
FetchPage = Callable[[int, int], Awaitable[tuple[bytes, int]]]


async def iter_pages(
    listing: Listing, fetch: FetchPage, *, limit: int, max_pages: int, window: int = 1
) -> AsyncGenerator[Page, None]:
    """The pages of `listing` from offset 0, raw, in offset order; after the first, up to `window` pages are fetched
    at once. Raises `ListingError` for a malformed page or endless paging, and whatever `fetch` raises."""
    if not 1 <= limit <= 1000:
        raise ValueError(f"page_size must be within 1..1000, got {limit}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    body, attempts = await fetch(0, limit)
    items, total = parse_page(listing, body, 0)
    first_total = total
    yield Page(items, total, 0, 1, attempts, 0, True)
    if not items or len(items) >= total:
        return
    # A first page shorter than asked while the count says more: the server caps its pages; step by what it sends.
    step = min(limit, len(items))
    offset = len(items)
    number = 1
    largest = total
    windows = 0
    while True:
        if number >= max_pages:
            raise ListingError(
                f"more than {max_pages} pages: the server pages forever",
                operation=listing.operation,
                reason="endless",
                offset=offset,
            )
        if offset > 2 * first_total + 10 * limit:
            # The count keeps growing ahead of us: items are created faster than we page, or the server lies.
            raise ListingError(
                f"{listing.count_key} grew from {first_total} to {largest} while paging: the server pages forever",
                operation=listing.operation,
                reason="endless",
                offset=offset,
            )
        windows += 1
        wanted = max(1, -(-(largest - offset) // step))  # the pages the largest count calls for, at least one
        offsets = [offset + i * step for i in range(min(window, wanted, max_pages - number))]
        answers = await _fetch_window(fetch, offsets, limit)
        pages: list[Page] = []
        done = False
        for at, (body, attempts) in zip(offsets, answers, strict=True):
            items, total = parse_page(listing, body, at)
            number += 1
            largest = max(largest, total)
            pages.append(Page(items, total, at, number, attempts, windows, False))
            offset = at + len(items)
            # Advance by what came; stop at the first empty or short page, or at the count.
            if len(items) < step or offset >= total:
                done = True
                break
        last = pages[-1]
        pages[-1] = Page(last.items, last.total, last.offset, last.number, last.attempts, last.window, True)
        for page in pages:
            yield page
        if done:
            return


async def _fetch_window(fetch: FetchPage, offsets: list[int], limit: int) -> list[tuple[bytes, int]]:
    """Every page of a window, fetched at once; the first failure cancels the others and is raised."""
    if len(offsets) == 1:
        return [await fetch(offsets[0], limit)]
    tasks = [asyncio.ensure_future(fetch(at, limit)) for at in offsets]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        # On failure (or cancellation), no request of the window outlives it.
        for task in tasks:
            task.cancel()
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
                    if graph_id in progress.seen:
                        continue
                    new_ids += 1
                    progress.seen[graph_id] = None
                graphs.append(graph)
            progress.check(page, new_ids, ids_on_page)
    return GraphListing(graphs, progress.largest, page_count, len(progress.seen) >= progress.largest)
