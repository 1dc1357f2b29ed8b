"""`log_context`: one context variable for every key a line carries of where it was logged."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import structlog

from ges_retention.log_context import bound_context, clear_context, log_context
from ges_retention.logs import configure_logging, flush_lines


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_concurrent_tasks_each_log_their_own_binding() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    log = structlog.get_logger()
    both_bound = asyncio.Barrier(2)

    async def deletion(backup_id: str) -> None:
        with log_context(backup_id=backup_id):
            await both_bound.wait()  # the other task has bound its own key by now
            log.info("backup_deleted")

    with log_context(run_id="r1"):
        async with asyncio.timeout(10):
            await asyncio.gather(deletion("b1"), deletion("b2"))
        log.info("run_finished")
    flush_lines()  # inside a loop, lines leave once per iteration
    lines = lines_of(stream)
    deleted = sorted((e["backup_id"], e["run_id"]) for e in lines if e["event"] == "backup_deleted")
    assert deleted == [("b1", "r1"), ("b2", "r1")]
    finished = next(e for e in lines if e["event"] == "run_finished")
    assert finished["run_id"] == "r1" and "backup_id" not in finished


def test_an_inner_binding_hides_an_outer_one_and_the_outer_comes_back() -> None:
    with log_context(policy="outer", run_id="r"):
        outer = bound_context()
        with log_context(policy="inner"):
            assert bound_context() == {"policy": "inner", "run_id": "r"}
        assert bound_context() == outer == {"policy": "outer", "run_id": "r"}
    assert bound_context() == {}


def test_structlog_bindings_are_merged_and_the_service_s_win_a_clash() -> None:
    with structlog.contextvars.bound_contextvars(policy="theirs", logger_key="x"), log_context(policy="ours"):
        assert bound_context() == {"policy": "ours", "logger_key": "x"}


def test_an_event_s_own_key_wins_over_the_bound_one() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    with log_context(policy="bound"):
        structlog.get_logger().info("e", policy="own")
    assert lines_of(stream)[0]["policy"] == "own"


def test_clear_context_forgets_both_kinds_of_binding() -> None:
    structlog.contextvars.bind_contextvars(a=1)
    log_context(b=2).__enter__()  # left open on purpose: cleared below
    assert bound_context() == {"b": 2, "a": 1}
    clear_context()
    assert bound_context() == {}
