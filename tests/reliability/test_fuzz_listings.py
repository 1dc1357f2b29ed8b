"""Fuzzing the API's answers: hypothesis-generated list-backups responses served to the real runner.

`ListingServer` (a tiny aiohttp server on 127.0.0.1) serves generated pages: valid listings (records of every
status, unknown fields, pages bigger than asked for, identical duplicates) spoiled by defects (truncated or non-JSON
bodies, invalid UTF-8, wrong types for `backup_count`, `backup_list` or any field, missing fields, negative or
out-of-range timestamps, counts that do not add up, duplicate ids with different content). The emulator serves the
same kind of broken records stored raw (`complete=False`).

Whatever is served: the run returns (no traceback, no exception), and when anything the client was served fails
validation, not one DELETE is sent; when everything is valid, exactly the planner's deletions are sent.
Validity is judged by an oracle written here, from what the server really served, read as the contract reads a
listing (pages in offset order, up to the first short or empty page).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest
import structlog
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from reliability_helpers import TOKEN, ListingServer, assert_no_secrets, expected_plan, record, run_in_process

from ges_retention.emulator.app import running_emulator
from ges_retention.emulator.config import EmulatorConfig
from ges_retention.emulator.store import Store
from ges_retention.exit_codes import ExitCode
from ges_retention.log_context import clear_context
from ges_retention.logs import configure_logging

PROJECT = "0f1e2d3c4b5a"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000
MAX_TS_MS = 253_402_300_799_999
PAGE_SIZE = 50
POLICY = f"""\
version: 1
policies:
  - name: fuzz
    project_id: {PROJECT}
    keep: {{last: 2, daily: 3}}
    failed: {{delete_after: 1d}}
    safety: {{max_deletes: 100000, change_budget: unlimited}}
"""

# --- the oracle: what a trustworthy listing is, judged from the bodies the server really served -------------------


def record_is_valid(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    for key in ("id", "graph_id", "status"):
        if not isinstance(record.get(key), str) or not record[key]:
            return False
    ts = record.get("start_timestamp")
    if type(ts) is not int or not 0 <= ts <= MAX_TS_MS:
        return False
    size = record.get("size")
    # A size may be absent or null (not known yet); a negative or non-numeric one makes the record invalid.
    if size is not None and (type(size) not in (int, float) or not math.isfinite(size) or size < 0):
        return False
    if record.get("encrypted") is not None and type(record["encrypted"]) is not bool:
        return False
    return all(
        record.get(key) is None or isinstance(record[key], str) for key in ("name", "graph_name", "backup_method")
    )


def trustworthy(served: list[tuple[int, bytes]], limit: int) -> tuple[bool, list[dict[str, Any]], set[str]]:
    """Judge the bodies the server really served, each with the offset it answered: (every body and every record
    valid, and the listing complete; its records, first copy of each id; the ids seen twice with different, valid,
    content).

    Every body served must be valid, wherever it falls: one invalid body or record fails the listing. The listing
    itself is read as the contract reads it: its pages in offset order, up to the first short or empty page or the
    page that reaches its count (contract, "Rate": "stopping at the first short or empty page"; ges-api: page until
    `offset >= backup_count`). A first page shorter than `limit` while the count says more shows the server's page
    size, and "short" is then shorter than that. Records served after the end are not part of the listing: it is
    complete when its unique ids reach the largest count it reported (retention rule 9), so a short page in the middle
    of a listing leaves it incomplete (refused), whatever pages the window fetched after it.

    A record is invalid wherever it appears, a later copy of an id included (contract, retention rule 9). Two valid
    copies that differ only as paging can honestly see it (a `backing_up` backup that finished meanwhile) are not a
    failure: the first is used. Copies that disagree on graph, start, method or name, or a non-running backup whose
    status changed, mean the server is inconsistent: the listing is untrusted."""
    pages: list[tuple[int, list[Any], int]] = []
    for offset, raw in sorted(served, key=lambda served_page: served_page[0]):
        page = page_of(raw)
        if page is None or not all(record_is_valid(item) for item in page[0]):
            return False, [], set()
        pages.append((offset, *page))
    seen: dict[str, dict[str, Any]] = {}
    conflicts: set[str] = set()
    largest = None
    step = limit
    for index, (offset, items, total) in enumerate(pages):
        largest = total if largest is None else max(largest, total)
        for item in items:
            first = seen.setdefault(item["id"], item)
            if modeled(first) != modeled(item):
                if not honest_change(first, item):
                    return False, [], conflicts
                conflicts.add(item["id"])
        if index == 0:
            step = min(limit, len(items))
        if not items or len(items) < step or offset + len(items) >= total:
            break
    return largest is not None and len(seen) >= largest, list(seen.values()), conflicts


def page_of(raw: bytes) -> tuple[list[Any], int] | None:
    """(records, count) of a body, or None when it is no list-backups page. A count of 0 without a list (absent or
    null) is an empty page: how an empty project may answer (`ges/paging.py`), nothing listed, nothing to delete."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    total = data.get("backup_count")
    if type(total) is not int or total < 0:
        return None
    items = data.get("backup_list")
    if items is None and total == 0:
        return [], 0
    return (items, total) if isinstance(items, list) else None


def modeled(record: dict[str, Any]) -> tuple[Any, ...]:
    """What the service reads of a record: copies that differ only elsewhere (size, tags, a null name or an absent
    one) are the same backup to it, and no conflict."""
    optional = tuple(record.get(key) or "" for key in ("name", "graph_name", "backup_method"))
    return (record["graph_id"], record["status"], record["start_timestamp"], *optional)


def honest_change(first: dict[str, Any], later: dict[str, Any]) -> bool:
    def identity(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["graph_id"], r["start_timestamp"], r.get("backup_method") or "", r.get("name") or "")

    same_status = first["status"] == later["status"]
    return identity(first) == identity(later) and (same_status or first["status"] == "backing_up")


# --- generated listings ---------------------------------------------------------------------------------------------

GRAPHS = ("g-1", "g-2", "g-3")
NOT_STRINGS = [0, -1, 1.5, True, False, [], {}, 2**63, -(2**63), ["id"], {"$gt": ""}]
BAD_REQUIRED = st.sampled_from([None, "", *NOT_STRINGS])  # for id, graph_id, status
BAD_OPTIONAL = st.sampled_from(NOT_STRINGS)  # for name, graph_name, backup_method (null is fine)
BAD_TIMESTAMPS = st.sampled_from(
    [-1, -(10**13), MAX_TS_MS + 1, 10**20, 1.7e12, float(NOW_MS), "1700000000000", True, None, [NOW_MS]]
)
BAD_SIZES = st.sampled_from([-1, -0.001, -(10**12), "12", "", True, False, [1], {"mb": 1}, float("nan"), float("inf")])
DEFECTS = (
    "bad size",
    "truncated",
    "not json",
    "invalid utf-8",
    "array body",
    "backup_list wrong type",
    "backup_list missing",
    "backup_count wrong type",
    "count above the records",
    "record field wrong type",
    "record field missing",
    "bad timestamp",
    "record not an object",
    "invalid later copy of an id",
)


@st.composite
def valid_record(draw: st.DrawFn, index: int) -> dict[str, Any]:
    graph = draw(st.sampled_from(GRAPHS))
    record: dict[str, Any] = {
        "id": f"b-{index:05d}",
        "graph_id": graph,
        "status": draw(st.sampled_from(["success"] * 6 + ["failed", "backing_up", "restoring"])),
        # from 60 days ago to 10 minutes in the future (future ones are kept)
        "start_timestamp": NOW_MS - draw(st.integers(min_value=-600_000, max_value=60 * DAY_MS)),
    }
    optional = {
        "name": st.one_of(st.none(), st.just(f"{graph}-{index}"), st.text(max_size=12)),
        "graph_name": st.one_of(st.none(), st.just(f"prod-{graph}")),
        "backup_method": st.sampled_from([None, "auto", "manual", "import"]),
        "size": st.integers(0, 10**6),
        "encrypted": st.booleans(),
        "tags": st.lists(st.text(max_size=5), max_size=2),
        "start_time": st.just("2026-01-01T00:00:00"),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        record[key] = draw(optional[key])
    return record


def body(count: Any, items: Any) -> bytes:
    return json.dumps({"backup_count": count, "backup_list": items}).encode()


class Pages:
    """A listing being spoiled: the records of each page, each page's count, bodies replaced outright."""

    def __init__(self, pages: list[list[Any]], count: int) -> None:
        self.pages = pages
        self.counts: list[Any] = [count] * len(pages)
        self.tail_count = count
        self.bodies: dict[int, bytes] = {}

    def apply(self, draw: st.DrawFn, kind: str) -> bool:
        """Spoil the listing with one defect of `kind`; False when this listing has nothing to spoil that way."""
        pages = self.pages
        filled = [k for k, page in enumerate(pages) if page]
        k = draw(st.integers(0, len(pages) - 1))
        if kind == "count above the records":
            extra = draw(st.sampled_from([1, 2, 10**12]))
            self.counts = [c + extra if type(c) is int else c for c in self.counts]
            self.tail_count += extra
        elif kind == "backup_count wrong type":
            self.counts[k] = draw(st.sampled_from(["5", 5.0, True, None, -1, [], {}]))
        elif kind in ("truncated", "not json", "invalid utf-8", "array body", "backup_list wrong type"):
            self.bodies[k] = self._spoiled_body(draw, kind, k)
        elif kind == "backup_list missing":
            self.bodies[k] = json.dumps({"backup_count": self.counts[k], "backups": pages[k]}).encode()
        elif not filled:
            return False
        elif kind in ("invalid later copy of an id", "changed copy of an id"):
            return self._insert_twin(draw, kind, filled)
        else:
            k = draw(st.sampled_from(filled))
            i = draw(st.integers(0, len(pages[k]) - 1))
            target = pages[k][i] = dict(pages[k][i]) if isinstance(pages[k][i], dict) else pages[k][i]
            if kind == "record not an object" or not isinstance(target, dict):
                pages[k][i] = draw(st.sampled_from([None, "b-00000", 17, [], [target]]))
            elif kind == "record field missing":
                target.pop(draw(st.sampled_from(["id", "graph_id", "status", "start_timestamp"])), None)
            elif kind == "bad timestamp":
                target["start_timestamp"] = draw(BAD_TIMESTAMPS)
            elif kind == "bad size":
                target["size"] = draw(BAD_SIZES)
            else:
                key = draw(st.sampled_from(["id", "graph_id", "status", "name", "graph_name", "backup_method"]))
                target[key] = draw(BAD_REQUIRED if key in ("id", "graph_id", "status") else BAD_OPTIONAL)
        return True

    def _spoiled_body(self, draw: st.DrawFn, kind: str, k: int) -> bytes:
        """Page k's body spoiled as a whole (a defect of the body, not of a record)."""
        whole = body(self.counts[k], self.pages[k])
        if kind == "truncated":
            return whole[: draw(st.integers(0, len(whole) - 1))]
        if kind == "not json":
            return draw(st.sampled_from([b"<html>502 Bad Gateway</html>", b"", b"null", b"{", b"\x00"]))
        if kind == "invalid utf-8":
            return b"\xff\xfe\xfd" + whole
        if kind == "array body":
            return json.dumps(self.pages[k]).encode()
        bad_lists: list[object] = [{}, "[]", None, 3, {"0": {}}]
        bad_list = draw(st.sampled_from(bad_lists))
        return json.dumps({"backup_count": self.counts[k], "backup_list": bad_list}).encode()

    def _insert_twin(self, draw: st.DrawFn, kind: str, filled: list[int]) -> bool:
        """A later copy of a listed id, invalid or validly changed; False when there is no record to copy."""
        pages = self.pages
        k = draw(st.sampled_from(filled))
        records: list[dict[str, Any] | None] = [r for p in pages[: k + 1] for r in p if isinstance(r, dict)]
        original = draw(st.sampled_from(records or [None]))
        if original is None or not isinstance(original.get("id"), str):
            return False
        twin = dict(original)
        fields = ["status", "start_timestamp", "graph_id", "name", "backup_method"]
        field = draw(st.sampled_from(fields if kind == "changed copy of an id" else [*fields, "size"]))
        if kind == "changed copy of an id":  # valid, different: e.g. a backup that finished meanwhile
            values = {
                "status": st.sampled_from(["success", "failed", "backing_up"]),
                "start_timestamp": st.integers(NOW_MS - 60 * DAY_MS, NOW_MS),
                "graph_id": st.sampled_from(GRAPHS),
                "name": st.text(max_size=8),
                "backup_method": st.sampled_from(["auto", "manual"]),
            }
            twin[field] = draw(values[field])
            if twin == original:
                return False
        elif field == "start_timestamp":
            twin[field] = draw(BAD_TIMESTAMPS)
        elif field == "size":
            twin[field] = draw(BAD_SIZES)
        else:
            twin[field] = draw(BAD_REQUIRED if field in ("status", "graph_id") else BAD_OPTIONAL)
        later = draw(st.integers(k, len(pages) - 1))
        pages[later].insert(draw(st.integers(0, len(pages[later]))), twin)
        return True

    def served_bodies(self) -> list[bytes]:
        return [self.bodies.get(k, body(self.counts[k], page)) for k, page in enumerate(self.pages)]


@st.composite
def listings(draw: st.DrawFn, forced: str | None = None) -> tuple[list[bytes], int, list[str]]:
    """(page bodies in the order they are served, the count of the empty page served after them, defects)."""
    records = [draw(valid_record(i)) for i in range(draw(st.integers(2 if forced else 0, 40)))]
    if draw(st.integers(0, 12)) == 0:
        # A huge page: a server that sends far more than the `limit` asked for (kept: running backups).
        base = len(records)
        records += [
            {"id": f"h-{i:05d}", "graph_id": GRAPHS[i % 3], "status": "backing_up", "start_timestamp": NOW_MS - i}
            for i in range(base, base + draw(st.integers(500, 2500)))
        ]
    pages: list[list[Any]] = []
    rest = list(records)
    while rest:
        size = draw(st.one_of(st.integers(1, PAGE_SIZE), st.integers(PAGE_SIZE, 3 * PAGE_SIZE)))
        pages.append(rest[:size])
        rest = rest[size:]
    if not pages:
        pages.append([])
    defects: list[str] = []
    if len(pages) > 1 and draw(st.integers(0, 5)) == 0:
        # Identical duplicate: paging shifted by one (still trustworthy, unless the shift hides a record).
        k = draw(st.integers(1, len(pages) - 1))
        pages[k].insert(0, dict(pages[k - 1][-1]))
        defects.append("identical duplicate")
    listing = Pages(pages, len(records))
    if len(records) > 1 and draw(st.integers(0, 4)) == 0 and listing.apply(draw, "changed copy of an id"):
        defects.append("changed copy of an id")
    kinds = [forced] if forced else draw(st.lists(st.sampled_from(DEFECTS), max_size=2))
    for kind in kinds:
        if listing.apply(draw, kind):
            defects.append(kind)
    assert forced is None or forced in defects
    return listing.served_bodies(), listing.tail_count if type(listing.tail_count) is int else 0, defects


# --- the property ---------------------------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.trustworthy = 0
        self.untrustworthy = 0
        self.deletes_from_invalid = 0
        self.deletes = 0
        self.conflicts = 0
        self.defects: dict[str, int] = {}


def fuzz(strategy: st.SearchStrategy[Any], examples: int, derandomize: bool, check: Callable[[Any], None]) -> None:
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=derandomize,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        # No shrinking: a listing of thousands of records shrinks for minutes; the failure message names the defects.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    @given(strategy)
    def property_holds(value: Any) -> None:
        check(value)

    property_holds()


def logged_run(scenario: Callable[[], Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Run `scenario()` in a fresh loop with the service's real log pipeline (debug level) into a buffer; every
    line is scanned for the test credentials."""
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    try:
        result = asyncio.run(scenario())
    finally:
        structlog.reset_defaults()
        clear_context()
    lines = stream.getvalue().splitlines()
    assert_no_secrets(lines, where="the runner's log")
    return result, [json.loads(line) for line in lines]


def check_listing(value: tuple[list[bytes], int, list[str]], tally: Tally) -> None:
    pages, tail_count, defects = value

    async def scenario() -> tuple[Any, list[tuple[int, bytes]], list[Any]]:
        async with ListingServer() as server:
            server.load(pages, tail_count)
            summary = await run_in_process(server.url, POLICY, now=NOW, page_size=PAGE_SIZE)
            return summary, list(zip(server.served_offsets, server.served, strict=True)), server.deletes

    (summary, served, deletes), events = logged_run(scenario)
    assert not [e for e in events if e["event"] == "run_crashed" or "exception" in e]
    ok, records, conflicts = trustworthy(served, PAGE_SIZE)
    for defect in defects:
        tally.defects[defect] = tally.defects.get(defect, 0) + 1
    listing_failed = [e for e in events if e["event"] == "listing_failed"]
    if not ok:
        tally.untrustworthy += 1
        tally.deletes_from_invalid += len(deletes)
        assert deletes == [], f"DELETE sent from a listing that failed validation ({defects})"
        assert len(listing_failed) == 1 and listing_failed[0]["project_id"] == PROJECT
        assert summary.skipped_projects == [PROJECT]
        assert summary.exit_code() == ExitCode.FAILED
        return
    tally.trustworthy += 1
    assert listing_failed == [], f"a valid listing was refused: {listing_failed}"
    warned = {i for e in events if e["event"] == "listing_conflict" for i in e["backup_ids"]}
    assert warned == conflicts
    tally.conflicts += len(conflicts)
    delete, _, backups = expected_plan(records, POLICY, NOW)
    graph_of = {b.id: b.graph_id for b in backups}
    sent = [tuple(unquote(part) for part in d.raw_path.split("/")[4::2]) for d in deletes]
    assert sorted(sent) == sorted((graph_of[b], b) for b in delete)
    assert summary.exit_code() == ExitCode.OK
    tally.deletes += len(deletes)


SIZES = [
    pytest.param(50, True, id="50-listings"),
    pytest.param(1000, False, id="1000-listings", marks=[pytest.mark.slow, pytest.mark.timeout(600)]),
]


def report(tally: Tally) -> None:
    record("fuzz: listings served", tally.trustworthy + tally.untrustworthy)
    record("fuzz: listings served: failing validation", tally.untrustworthy)
    record("fuzz: listings served: valid", tally.trustworthy)
    record("fuzz: DELETEs sent from listings failing validation", tally.deletes_from_invalid)
    record("fuzz: DELETEs sent from valid listings (all planned)", tally.deletes)
    record("fuzz: valid listings with an id listed twice, changed (warned, first copy used)", tally.conflicts)
    for defect, count in tally.defects.items():
        record(f"fuzz: listing defects injected: {defect}", count)


@pytest.mark.parametrize(("examples", "derandomize"), SIZES)
def test_no_delete_is_sent_from_a_listing_that_fails_validation(examples: int, derandomize: bool) -> None:
    tally = Tally()
    fuzz(listings(), examples, derandomize, lambda value: check_listing(value, tally))
    report(tally)
    # Not vacuous: both sides of the validation are reached, and valid listings do lead to deletions.
    assert tally.untrustworthy > examples / 4 and tally.trustworthy > examples / 10 and tally.deletes > 0


def successes(sizes: list[int]) -> tuple[list[bytes], list[dict[str, Any]]]:
    """Valid pages of `sizes` records (successes a day apart, most of them expired), each with the full count; and
    the records."""
    total = sum(sizes)
    records = [
        {"id": f"b-{i:05d}", "graph_id": "g-1", "status": "success", "start_timestamp": NOW_MS - i * DAY_MS - 1}
        for i in range(total)
    ]
    bodies, start = [], 0
    for size in sizes:
        bodies.append(body(total, records[start : start + size]))
        start += size
    return bodies, records


@pytest.mark.parametrize(
    ("sizes", "trusted"),
    [
        # A server capped at 6 a page: the short page ends the listing and the count is reached.
        pytest.param([6, 6, 1], True, id="capped-pages-short-last"),
        # Pages bigger than the limit asked for: more records than asked, none lost.
        pytest.param([PAGE_SIZE, 3 * PAGE_SIZE, 7], True, id="pages-above-the-limit"),
        # A short page in the middle ends the listing with 13 of 35 ids: incomplete, whatever the window fetched
        # after it (the bodies after it were served, but are no part of the listing).
        pytest.param([6, 6, 1, 22], False, id="short-page-in-the-middle"),
        pytest.param([PAGE_SIZE, 10, PAGE_SIZE], False, id="short-page-then-full"),
    ],
)
def test_a_listing_ends_at_its_first_short_page(sizes: list[int], trusted: bool) -> None:
    bodies, records = successes(sizes)
    assert expected_plan(records, POLICY, NOW)[0], "the records plan no deletion: the test would prove nothing"
    tally = Tally()
    check_listing((bodies, len(records), []), tally)  # asserts no DELETE and `listing_failed` when untrusted
    assert (tally.trustworthy, tally.untrustworthy) == ((1, 0) if trusted else (0, 1))
    assert (tally.deletes > 0) == trusted


@pytest.mark.parametrize(
    "empty", [{"backup_count": 0}, {"backup_count": 0, "backup_list": None}], ids=["no-list", "null-list"]
)
def test_an_empty_project_may_leave_its_list_out(empty: dict[str, Any]) -> None:
    tally = Tally()
    check_listing(([json.dumps(empty).encode()], 0, []), tally)
    assert (tally.trustworthy, tally.untrustworthy) == (1, 0)


@pytest.mark.parametrize(
    ("kind", "examples", "derandomize"),
    [pytest.param(kind, 4, True, id=kind.replace(" ", "-")) for kind in DEFECTS]
    + [pytest.param(kind, 60, False, id=kind.replace(" ", "-") + "-slow", marks=pytest.mark.slow) for kind in DEFECTS],
)
def test_each_listing_defect_stops_every_delete(kind: str, examples: int, derandomize: bool) -> None:
    tally = Tally()
    fuzz(listings(forced=kind), examples, derandomize, lambda value: check_listing(value, tally))
    report(tally)
    assert tally.trustworthy == 0, f"the generator did not spoil the listing with {kind!r}"
    assert tally.deletes_from_invalid == 0


# --- broken records stored raw in the emulator ----------------------------------------------------------------------


@st.composite
def emulator_records(draw: st.DrawFn) -> list[dict[str, Any]]:
    records = [draw(valid_record(i)) for i in range(draw(st.integers(1, 30)))]
    for _ in range(draw(st.sampled_from([0, 1, 1, 2]))):
        target = draw(st.sampled_from(records))
        kind = draw(st.sampled_from(["missing", "wrong type", "bad timestamp"]))
        if kind == "missing":
            target.pop(draw(st.sampled_from(["graph_id", "status", "start_timestamp"])), None)
        elif kind == "bad timestamp":
            target["start_timestamp"] = draw(BAD_TIMESTAMPS)
        else:
            key = draw(st.sampled_from(["graph_id", "status", "name", "graph_name", "backup_method"]))
            target[key] = draw(BAD_REQUIRED if key in ("graph_id", "status") else BAD_OPTIONAL)
    return records


def check_emulator(records: list[dict[str, Any]], tally: Tally) -> None:
    valid = all(record_is_valid(r) for r in records)

    async def scenario() -> tuple[Any, int, list[str]]:
        store = Store()
        for item in records:
            store.add_backup(PROJECT, item, complete=False)
        config = EmulatorConfig(project_ids=[PROJECT], access_keys=[], tokens={TOKEN: PROJECT})
        async with running_emulator(store=store, config=config) as emulator:
            summary = await run_in_process(emulator.url, POLICY, now=NOW, page_size=7)
            return summary, emulator.stats.count("delete_backup"), list(emulator.stats.deleted_ids)

    (summary, delete_requests, deleted), events = logged_run(scenario)
    assert not [e for e in events if e["event"] == "run_crashed" or "exception" in e]
    if not valid:
        tally.untrustworthy += 1
        tally.deletes_from_invalid += delete_requests
        assert delete_requests == 0, "a DELETE reached the emulator from a listing with a broken record"
        assert summary.skipped_projects == [PROJECT]
        return
    tally.trustworthy += 1
    delete, _, _ = expected_plan(records, POLICY, NOW)
    assert sorted(deleted) == sorted(delete)
    assert summary.exit_code() == ExitCode.OK


EMULATOR_SIZES = [
    pytest.param(40, True, id="40-data-sets"),
    pytest.param(400, False, id="400-data-sets", marks=[pytest.mark.slow, pytest.mark.timeout(600)]),
]


@pytest.mark.parametrize(("examples", "derandomize"), EMULATOR_SIZES)
def test_no_delete_reaches_the_emulator_from_broken_stored_records(examples: int, derandomize: bool) -> None:
    tally = Tally()
    fuzz(emulator_records(), examples, derandomize, lambda value: check_emulator(value, tally))
    record("fuzz: emulator data sets with raw records", tally.trustworthy + tally.untrustworthy)
    record("fuzz: emulator data sets with raw records: with a broken record", tally.untrustworthy)
    record("fuzz: DELETEs sent from listings failing validation", tally.deletes_from_invalid)
    assert tally.untrustworthy > examples / 4 and tally.trustworthy > examples / 10
