"""Offset paging of GES listings, de-duplication by id, and the facts that decide whether a listing is trusted.

`iter_pages` asks for pages through a `fetch(offset, limit)` callable (the client's, over the transport), checks each
one's shape and stops at the first empty page, at the count, or when the server evidently pages forever.
`collect_backups` / `collect_graphs` de-duplicate the records by id and say whether the listing is complete:

- complete = the unique ids reach the largest count reported by any page;
- a page that brings no new id while that count is not reached means the server repeats itself (it ignores `offset`,
  or reports a count it never lists): paging stops at once with `ListingError(reason="repeating")`, rather than
  asking for the same page until the run deadline;
- an empty listing may be answered as `{"backup_count": 0}` without the list (or with `null`): that is an empty page.
"""

from __future__ import annotations

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
    """One page of a listing, raw: `items` as the server sent them, `total` its count field."""

    items: list[Any]
    total: int
    offset: int
    number: int
    attempts: int


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


async def iter_pages(listing: Listing, fetch: FetchPage, *, limit: int, max_pages: int) -> AsyncGenerator[Page, None]:
    """The pages of `listing` from offset 0, raw. Raises `ListingError` for a malformed page or endless paging."""
    if not 1 <= limit <= 1000:
        raise ValueError(f"page_size must be within 1..1000, got {limit}")
    offset = 0
    number = 0
    first_total: int | None = None
    while True:
        if number >= max_pages:
            raise ListingError(
                f"more than {max_pages} pages: the server pages forever",
                operation=listing.operation,
                reason="endless",
                offset=offset,
            )
        body, attempts = await fetch(offset, limit)
        items, total = parse_page(listing, body, offset)
        number += 1
        if first_total is None:
            first_total = total
        yield Page(items, total, offset, number, attempts)
        # Advance by what came, not by `limit`: a server may cap the page size below what we asked for.
        offset += len(items)
        if not items or offset >= total:
            return
        if offset > 2 * first_total + 10 * limit:
            # The count keeps growing ahead of us: items are created faster than we page, or the server lies.
            raise ListingError(
                f"{listing.count_key} grew from {first_total} to {total} while paging: the server pages forever",
                operation=listing.operation,
                reason="endless",
                offset=offset,
            )


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

    __slots__ = ("largest", "operation", "seen")

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.seen: dict[str, Any] = {}
        self.largest = 0

    def check(self, page: Page, new_ids: int, ids_on_page: int) -> None:
        """Stop paging a server that repeats itself: a page of known ids while the count is not reached."""
        self.largest = max(self.largest, page.total)
        if ids_on_page and not new_ids and len(self.seen) < self.largest:
            raise ListingError(
                f"the server repeats itself: the page at offset {page.offset} brought no new id while "
                f"{len(self.seen)} of the {self.largest} reported were collected; the listing is not trusted",
                operation=self.operation,
                reason="repeating",
                offset=page.offset,
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
