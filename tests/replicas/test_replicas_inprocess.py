"""Two daemons in this process on one PostgreSQL state: schedule fires driven through the scheduler's own jobs (no
cron minute is waited for), each policy run exactly once per fire across both daemons."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
from replicas_helpers import POLICIES, expected_ids, policy_text

from ges_retention.daemon import Daemon, LeaseHeld, StateNotReady
from ges_retention.daemon_state import StateLink
from ges_retention.emulator.app import RunningEmulator
from ges_retention.emulator.config import DEFAULT_AK, DEFAULT_SK
from ges_retention.metrics import Metrics
from ges_retention.policy_watch import FileRead
from ges_retention.service import Service
from ges_retention.settings import Settings
from ges_retention.state import StateUnavailable, Store, open_store, resolve_state_location
from ges_retention.state.postgres import PostgresStore
from support.emulators import PROJECT
from support.logs import EventLog, capture_events

TTL_S = 3.0


@pytest.fixture
def logs() -> Iterator[EventLog]:
    with capture_events() as events:
        yield events


async def _settle_now(_seconds: float) -> bool:
    await asyncio.sleep(0)
    return False


async def _daemon(stack: AsyncExitStack, path: Path, url: str, pg_url: str, holder: str) -> Daemon:
    settings = Settings(_env_file=None, endpoint=url, ak=DEFAULT_AK, sk=DEFAULT_SK, rate_limit=0, http="")
    store = await open_store(resolve_state_location(pg_url), holder=holder, lease_ttl_s=TTL_S)
    assert isinstance(store, PostgresStore)
    stack.push_async_callback(store.close)
    metrics = Metrics()
    runner = await stack.enter_async_context(Service(settings, metrics=metrics))
    daemon = Daemon(path, settings, runner, metrics=metrics, settle_wait=_settle_now, shared_state=True)
    daemon.attach_leases(store.pg_leases)
    assert await daemon.start()
    stack.push_async_callback(daemon.stop)
    return daemon


def held(logs: EventLog, holder: str) -> set[str]:
    mine: set[str] = set()
    for event in logs:
        if event.get("holder") != holder:
            continue
        if event["event"] == "lease_acquired":
            mine.add(event["policy"])
        elif event["event"] == "lease_released":
            mine.discard(event["policy"])
    return mine


async def test_each_scheduled_fire_runs_a_policy_on_its_holder_only(
    emulator: RunningEmulator, pg_url: str, tmp_path: Path, logs: EventLog
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text())
    async with AsyncExitStack() as stack:
        a = await _daemon(stack, path, emulator.url, pg_url, "a:1:aa")
        b = await _daemon(stack, path, emulator.url, pg_url, "b:2:bb")
        # a started alone and took all six; b gets three as a gives them back.
        await logs.wait("lease_acquired", count=len(POLICIES) + 3, timeout_s=2 * TTL_S + 10)
        assert len(held(logs, "a:1:aa")) == len(held(logs, "b:2:bb")) == 3
        mine = {"a": held(logs, "a:1:aa"), "b": held(logs, "b:2:bb")}
        assert mine["a"] | mine["b"] == set(POLICIES)

        for daemon in (a, b):  # every policy's job fires on both daemons
            for name in POLICIES:
                job = daemon.scheduler.get_job(name)
                await job.func(*job.args)
        by_daemon = {
            name: sorted(p for run in daemon.records._runs.values() for p in run.policies)
            for name, daemon in (("a", a), ("b", b))
        }
        assert by_daemon == {"a": sorted(mine["a"]), "b": sorted(mine["b"])}
        skipped = [e for e in logs.named("run_skipped") if e["trigger"] == "schedule"]
        assert sorted(e["policy"] for e in skipped) == POLICIES
        assert {e["reason"] for e in skipped} == {"lease_held"}
        assert {b["id"] for b in emulator.store.backups(PROJECT)} == expected_ids()

        theirs = sorted(mine["b"])[0]
        await a.replicas.refresh()
        with pytest.raises(LeaseHeld) as caught:
            a.trigger([theirs], "http")
        assert (caught.value.reason, caught.value.holder) == ("lease_held", "b:2:bb")
        run_id, skipped = a.run_all_now("signal")
        assert run_id is not None
        assert {s["policy"] for s in skipped if s["reason"] == "lease_held"} == mine["b"]
        assert all(s.get("holder") == "b:2:bb" for s in skipped)
        assert a.should_continue(sorted(mine["a"])[0]) and not a.should_continue(theirs)
        assert [e["policy"] for e in logs.named("lease_lost")] == [theirs]
        while a.tasks:
            await asyncio.gather(*list(a.tasks))


def lease_loops() -> int:
    return sum(1 for task in asyncio.all_tasks() if task.get_name() == "lease-manager" and not task.done())


async def test_a_daemon_on_a_postgresql_state_runs_nothing_until_its_leases_are_known(
    emulator: RunningEmulator, pg_url: str, tmp_path: Path, logs: EventLog
) -> None:
    """PostgreSQL unreachable at start: nothing runs and `/readyz` says so once; it connects after a retry (through
    the daemon's one path, `StateLink`), the first lease round takes every lease, the daemon runs; the hook fired
    again (a reconnect) starts no second lease manager."""
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text())
    settings = Settings(
        _env_file=None, endpoint=emulator.url, ak=DEFAULT_AK, sk=DEFAULT_SK, rate_limit=0, http="127.0.0.1:0"
    )
    store = await open_store(resolve_state_location(pg_url), holder="late:1:cc", lease_ttl_s=TTL_S)
    assert isinstance(store, PostgresStore)
    reachable = asyncio.Event()
    opened: list[Store] = []

    async def open_() -> Store | None:
        if not reachable.is_set():
            raise StateUnavailable("connection refused", location="postgresql://127.0.0.1/ges")
        opened.append(store)
        return store

    async def retry_wait(_seconds: float) -> None:
        await reachable.wait()

    async with AsyncExitStack() as stack:
        stack.push_async_callback(store.close)  # idempotent; the link closes it first when the daemon stops
        metrics = Metrics()
        service = Service(settings, metrics=metrics)
        runner = await stack.enter_async_context(service)
        link = StateLink(service, open_store=open_, sleep=retry_wait)
        daemon = Daemon(path, settings, runner, metrics=metrics, settle_wait=_settle_now, state=link, shared_state=True)
        assert await daemon.start()  # the state is not connected: PostgreSQL down at start
        stack.push_async_callback(daemon.stop)
        assert daemon.replicas.unavailable()
        run_id, skipped = daemon.run_all_now("signal")
        assert run_id is None and {s["reason"] for s in skipped} == {"state_unavailable"}
        with pytest.raises(StateNotReady):
            daemon.trigger(["p0"], "http")
        assert not daemon.should_continue("p0")
        async with aiohttp.ClientSession() as session, session.get(f"{daemon.http_url}/readyz") as r:
            assert r.status == 503
            problems = (await r.json())["problems"]
        assert len(problems) == 1 and "the state is unavailable: connection refused" in problems[0], problems

        reachable.set()  # PostgreSQL is back: the retry connects, and the daemon takes its leases
        await logs.wait("state_connected", timeout_s=10)
        assert opened == [store] and lease_loops() == 1
        assert sorted(e["policy"] for e in logs.named("lease_acquired")) == POLICIES
        assert not daemon.replicas.unavailable()
        assert all(daemon.replicas.elsewhere(name) is None for name in POLICIES)
        async with aiohttp.ClientSession() as session, session.get(f"{daemon.http_url}/readyz") as r:
            assert r.status == 200, await r.text()

        manager = daemon.replicas.manager
        assert link.on_connected is not None
        await link.on_connected(store)  # the hook told again: the same manager, one loop, no lease taken twice
        assert daemon.replicas.manager is manager and lease_loops() == 1
        assert len(logs.named("lease_acquired")) == len(POLICIES)

        run_id, skipped = daemon.run_all_now("signal")
        assert run_id is not None and skipped == []
        while daemon.tasks:
            await asyncio.gather(*list(daemon.tasks))
        assert {b["id"] for b in emulator.store.backups(PROJECT)} == expected_ids()


async def test_a_run_on_change_load_runs_a_policy_on_its_holder_only(
    emulator: RunningEmulator, pg_url: str, tmp_path: Path, logs: EventLog
) -> None:
    """Contract ("Several replicas"): a non-holder that loads a changed `run_on_change` policy runs nothing of it
    (`run_skipped`, `lease_held`, with the holder); the holder runs it."""
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text())
    async with AsyncExitStack() as stack:
        a = await _daemon(stack, path, emulator.url, pg_url, "a:1:aa")
        b = await _daemon(stack, path, emulator.url, pg_url, "b:2:bb")
        await logs.wait("lease_acquired", count=len(POLICIES) + 3, timeout_s=2 * TTL_S + 10)
        theirs = sorted(held(logs, "b:2:bb"))[0]
        await a.replicas.refresh()
        assert a.replicas.holder_of(theirs) == "b:2:bb"

        # Both daemons are handed the change directly (the file itself stays: no watcher reloads behind the test).
        changed = policy_text().replace(f"  - name: {theirs}\n", f"  - name: {theirs}\n    run_on_change: true\n")
        assert a.apply(FileRead(changed.encode()))
        skipped = await logs.wait("run_skipped", timeout_s=30)
        assert (skipped["policy"], skipped["reason"], skipped["holder"], skipped["trigger"]) == (
            theirs,
            "lease_held",
            "b:2:bb",
            "file",
        )
        while a.tasks:
            await asyncio.gather(*list(a.tasks))
        assert a.records.finished_ids() == [] and a.records.running_ids() == []  # a started no run at all
        assert not logs.named("run_started")

        assert b.apply(FileRead(changed.encode()))  # the holder loads the same change: it runs the policy
        await logs.wait("run_finished", timeout_s=30)  # (a bound for a loaded machine, not a duration asserted)
        while b.tasks:
            await asyncio.gather(*list(b.tasks))
        assert [p for rid in b.records.finished_ids() for p in b.records.get(rid).policies] == [theirs]  # type: ignore[union-attr]
