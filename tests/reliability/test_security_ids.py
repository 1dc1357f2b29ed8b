"""Security: graph and backup ids with path tricks (`/`, `..`, `%2F`, `?`, `#`, unicode, spaces, control
characters, very long ones), served in a listing, never reach the wire unencoded.

The runner either refuses such an id (`InvalidIdentifier`, reported as `backup_delete_failed`, nothing sent) or sends
it percent-encoded as one literal segment. Checked on the raw request paths a recording server saw: every DELETE has
exactly the segments of the delete route, no `?` or `#`, no segment that is or decodes to `.` or `..`, and its two
segments decode to exactly the graph and backup ids of a planned deletion.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from reliability_helpers import ListingServer, assert_no_secrets, record, run_in_process
from structlog.testing import capture_logs

from ges_retention.log_context import merge_context

PROJECT = "0a9b8c7d6e5f"
POLICY = f"""\
version: 1
policies:
  - name: tricks
    project_id: {PROJECT}
    keep: {{last: 1}}
    safety: {{max_deletes: 100000, change_budget: unlimited}}
"""
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000

TRICKS = [
    "..",
    ".",
    "...",
    "../..",
    "../../../v2/other/graphs",
    "a/b",
    "a/../b",
    "/",
    "//",
    "%2F",
    "%2f..%2f",
    "%2e%2e",
    "%2E",
    ".%2e",
    "%252F",
    "a?b=c",
    "?",
    "#",
    "a#b",
    "a b",
    " ",
    "é",
    "\u2215",
    "\uff0f",
    "\uff0e\uff0e",
    "\u2025",
    "a\\b",
    "..\\..",
    "a;b",
    "a\x00b",
    "\n",
    "a\r\nX-Injected: 1",
    "~",
    "a..b",
    "_",
    "-",
    ".hidden",
    "x" * 128,
    "x" * 129,
    "%",
    "%zz",
    "+",
    "&",
    "=",
    ":",
    "@",
    "'",
    "<script>",
    "{}",
    "|",
    "`",
    "[]",
    "backups",
    "graphs",
]
SEGMENT_CHARS = [*"/.%?#\\ ;:@&=+$,~-_aZ09", "é", "\u2215", "\uff0f", "\x00", "\n", "\t", "2F", "2e"]
plain_ids = st.from_regex(r"\A[A-Za-z0-9._~-]{1,20}\Z")  # the alphabet a path segment may carry as it is
ids = st.one_of(
    st.sampled_from(TRICKS),
    plain_ids,
    st.lists(st.sampled_from(SEGMENT_CHARS), min_size=1, max_size=8).map("".join),
    st.text(min_size=1, max_size=20),
)


@st.composite
def tricky_listings(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Graphs whose newest backup is plain (kept by `last: 1`) and whose older ones, all planned for deletion,
    have tricky ids; the graph ids are tricky too."""
    graphs = draw(st.lists(st.one_of(plain_ids, ids), min_size=1, max_size=3, unique=True))
    backup_ids = draw(st.lists(ids.filter(lambda i: not i.startswith("keep-")), min_size=1, max_size=8, unique=True))
    records = [
        {"id": f"keep-{g}", "graph_id": graph, "status": "success", "start_timestamp": NOW_MS - g}
        for g, graph in enumerate(graphs)
    ]
    for n, backup_id in enumerate(backup_ids):
        graph = graphs[draw(st.integers(0, len(graphs) - 1))]
        records.append(
            {"id": backup_id, "graph_id": graph, "status": "success", "start_timestamp": NOW_MS - (n + 1) * DAY_MS}
        )
    return records


class Tally:
    def __init__(self) -> None:
        self.ids = 0
        self.refused = 0
        self.sent_encoded = 0
        self.sent_plain = 0


def check(records: list[dict[str, Any]], tally: Tally) -> None:
    planned = {(r["graph_id"], r["id"]) for r in records if not r["id"].startswith("keep-")}

    async def scenario() -> Any:
        async with ListingServer() as server:
            server.load([json.dumps({"backup_count": len(records), "backup_list": records}).encode()], len(records))
            summary = await run_in_process(server.url, POLICY, now=NOW)
            return summary, server.requests

    # The raw event dicts (before any redaction), with the run's bound context merged in.
    with capture_logs(processors=[merge_context]) as events:
        summary, requests = asyncio.run(scenario())
    assert_no_secrets((repr(e) for e in events), where="the runner's log events")
    assert not [e for e in events if e.get("exc_info") or e["event"] == "run_crashed"]
    assert {(e["graph_id"], e["backup_id"]) for e in events if e["event"] == "backup_expired"} == planned

    sent: set[tuple[str, str]] = set()
    for request in requests:
        raw = request.raw_path
        assert "#" not in raw
        if request.method == "GET":
            # The backups listing, the graph listing and the quota: fixed paths, no id in them.
            assert raw.split("?")[0] in {f"/v2/{PROJECT}/graphs/{tail}" for tail in ("backups", "quotas")} | {
                f"/v2/{PROJECT}/graphs"
            }
            continue
        assert request.method == "DELETE"
        assert "?" not in raw, raw
        parts = raw.split("/")
        assert len(parts) == 7 and parts[:4] == ["", "v2", PROJECT, "graphs"] and parts[5] == "backups", raw
        for segment in (parts[4], parts[6]):
            assert segment and segment not in (".", "..") and unquote(segment) not in (".", ".."), raw
            assert all(ord(c) < 128 and c.isprintable() and c != " " for c in segment), raw
        pair = (unquote(parts[4]), unquote(parts[6]))
        assert pair in planned, f"{raw} is not the path of a planned deletion"
        assert pair not in sent, "one request per deletion"
        sent.add(pair)
        if (parts[4], parts[6]) == pair:
            tally.sent_plain += 1
        else:
            tally.sent_encoded += 1

    refused = {e["backup_id"] for e in events if e["event"] == "backup_delete_failed"}
    for graph_id, backup_id in planned:
        assert ((graph_id, backup_id) in sent) != (backup_id in refused), "sent, or refused and reported: one of them"
    assert summary.total("failed") == len(refused)
    assert summary.total("deleted") == len(sent)
    tally.ids += len(planned) + len({r["graph_id"] for r in records})
    tally.refused += len(refused)


SIZES = [
    pytest.param(80, True, id="80-listings"),
    pytest.param(1000, False, id="1000-listings", marks=[pytest.mark.slow, pytest.mark.timeout(600)]),
]


@pytest.mark.parametrize(("examples", "derandomize"), SIZES)
def test_ids_with_path_tricks_are_refused_or_sent_as_one_encoded_segment(examples: int, derandomize: bool) -> None:
    tally = Tally()

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=derandomize,
        suppress_health_check=[HealthCheck.too_slow],
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    )
    @given(tricky_listings())
    def property_holds(records: list[dict[str, Any]]) -> None:
        check(records, tally)

    property_holds()
    record("security: graph/backup ids tried (tricky and plain)", tally.ids)
    record("security: tricky ids refused before the wire (reported failed)", tally.refused)
    record("security: ids sent percent-encoded", tally.sent_encoded)
    record("security: ids sent as they are (plain: letters, digits, -._~)", tally.sent_plain)
    assert tally.refused > 0 and tally.sent_plain > 0
