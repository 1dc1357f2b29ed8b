"""`why`, `history`, `hold`, `release` and `holds` give the same answers on SQLite and on a real PostgreSQL.

The commands run as the CLI runs them (each opens the state `existing` and calls `asyncio.run`), in a worker thread
so that this test's loop keeps the fixtures' connections.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from ges_retention.audit_command import history_command, why_command
from ges_retention.errors import NotFound
from ges_retention.holds_command import hold_command, holds_command, release_command
from ges_retention.state import StateLocation, StateMissing
from support.journal import T0, seed_journal


async def test_why_and_history_read_the_same_story_on_both_backends(
    location: StateLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed_journal(location)
    now = T0 + timedelta(days=3)

    assert await asyncio.to_thread(why_command, location, "b-del", fmt="json", now=now) == 0
    [record] = json.loads(capsys.readouterr().out)["records"]
    assert (record["policy"], record["run_id"], record["state"], record["request_id"], record["deleted_at"]) == (
        "nightly",
        "r1",
        "deleted",
        "req-1",
        "2026-03-01T02:00:05Z",
    )
    # `pending_since` is the database clock on PostgreSQL (the contract), the injected clock on SQLite.
    assert await asyncio.to_thread(why_command, location, "b-pend", fmt="json", now=now) == 0
    since = json.loads(capsys.readouterr().out)["records"][0]["pending_since"]
    assert since is not None and (location.kind == "postgresql" or since == "2026-03-02T02:00:00Z")
    assert await asyncio.to_thread(why_command, location, "b-pend", fmt="text", now=now) == 0
    assert f"pending since {since}" in capsys.readouterr().out
    with pytest.raises(NotFound, match="no record of b-none"):
        await asyncio.to_thread(why_command, location, "b-none", fmt="text", now=now)

    kwargs = {"policy": None, "since": None, "limit": 20, "fmt": "json", "now": now}
    assert await asyncio.to_thread(history_command, location, **kwargs) == 0  # type: ignore[arg-type]
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [(r["run_id"], r["trigger"], r["outcome"]) for r in runs] == [
        ("r3", "http", "ok"),
        ("r2", "cli", "ok"),
        ("r1", "schedule", "partial"),
    ]
    assert runs[2]["counts"] == {"listed": 10, "planned": 2, "deleted": 1, "failed": 1}
    kwargs.update(policy="weekly", fmt="text")
    assert await asyncio.to_thread(history_command, location, **kwargs) == 0  # type: ignore[arg-type]
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]] == ["r2"]


async def test_hold_release_and_holds_on_both_backends(
    location: StateLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StateMissing, match=r"^no state (at|in) .*`run` or `daemon` creates it"):
        await asyncio.to_thread(holds_command, location, fmt="json", now=T0)
    await seed_journal(location)
    now = T0 + timedelta(days=3)
    assert await asyncio.to_thread(hold_command, location, "b-x", "drill", for_="7d", until=None, now=now) == 0
    out = capsys.readouterr().out
    assert "held b-x until 2026-03-11T02:00:00Z: drill" in out and f"state: {location.display}" in out
    assert await asyncio.to_thread(holds_command, location, fmt="json", now=now) == 0
    assert [h["backup_id"] for h in json.loads(capsys.readouterr().out)["holds"]] == ["b-held", "b-x"]
    assert await asyncio.to_thread(release_command, location, "b-x", now=now) == 0
    with pytest.raises(NotFound, match="b-x is not held"):
        await asyncio.to_thread(release_command, location, "b-x", now=now)
