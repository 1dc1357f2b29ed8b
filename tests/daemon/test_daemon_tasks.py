"""No daemon task dies silently: a crash in a scheduled fire, an HTTP handler or any background task is logged, and
the daemon goes on serving (the watcher, a run, the state link and the lease manager have their own tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from inprocess_harness import Harness, running_harness

from ges_retention.task_crashes import log_task_crash
from support.logs import capture_events


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_harness(tmp_path) as h:
        yield h


async def test_an_exception_that_escapes_a_background_task_is_logged_with_its_name() -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    async def cancelled() -> None:
        await asyncio.Event().wait()

    with capture_events() as logs:
        task = asyncio.get_running_loop().create_task(broken(), name="some-loop")
        task.add_done_callback(log_task_crash)
        await asyncio.gather(task, return_exceptions=True)
        other = asyncio.get_running_loop().create_task(cancelled(), name="stopped")
        other.add_done_callback(log_task_crash)
        await asyncio.sleep(0)
        other.cancel()
        await asyncio.gather(other, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    [crashed] = logs.named("run_crashed")
    assert crashed["task"] == "some-loop" and "a bug" in crashed["error"] and crashed["log_level"] == "error"


async def test_a_crash_in_a_scheduled_fire_is_logged_and_the_next_fire_runs(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await harness.settle()
    job = harness.daemon.scheduler.get_job("prod")
    original = harness.daemon.runs.start

    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug in starting a run")

    monkeypatch.setattr(harness.daemon.runs, "start", boom)
    with capture_events() as logs:
        await job.func(*job.args)  # the job never raises into APScheduler
    [crashed] = logs.named("run_crashed")
    assert crashed["policies"] == ["prod"] and "a bug in starting a run" in crashed["error"]
    monkeypatch.setattr(harness.daemon.runs, "start", original)
    with capture_events() as logs:
        await job.func(*job.args)
        await harness.settle()
    assert [e["policies"] for e in logs.named("run_started")] == [["prod"]]


async def test_a_crash_in_an_http_handler_is_a_logged_500_and_the_listener_goes_on(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await harness.settle()

    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(harness.daemon.runs, "run_all_now", boom)
    url = harness.daemon.http_url
    async with aiohttp.ClientSession() as session:
        with capture_events() as logs:
            async with session.post(f"{url}/v1/runs") as r:
                assert r.status == 500
                body = await r.json()
        assert "a bug" not in str(body) and body["error"]  # the log has the detail, not the answer
        [failed] = logs.named("http_request_failed")
        assert (failed["method"], failed["path"], failed["log_level"]) == ("POST", "/v1/runs", "error")
        assert "a bug in a handler" in failed["error"]
        async with session.get(f"{url}/healthz") as r:
            assert r.status == 200
        async with session.get(f"{url}/v1/policies") as r:
            assert r.status == 200
        async with session.post(f"{url}/v1/runs?policy=staging") as r:
            assert r.status == 202
    await harness.settle()
