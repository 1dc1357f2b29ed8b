"""The daemon in-process against the emulator: jobs, reloads, triggers, the HTTP listener, crash survival.

Scheduling is checked through the jobs APScheduler holds and by firing them directly: no test waits for a cron minute.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from apscheduler.triggers.cron import CronTrigger
from inprocess_harness import PROJECT, Harness, make_settings, policy_text, running_harness, wait_for_event
from prometheus_client.parser import text_string_to_metric_families

from ges_retention.daemon import AlreadyRunning, Daemon, UnknownPolicy
from ges_retention.metrics import Metrics
from ges_retention.policy_loading import parse_policy_text
from ges_retention.schedule import build_trigger, jitter_s
from ges_retention.service import Service
from support.emulators import seeded_emulator, seeded_store
from support.logs import capture_events


async def hold_listings(harness: Harness) -> None:
    """Runs overlap at an explicit gate, not through latency: listings wait until `unhold`."""
    await harness.emulator.holds.hold("list_backups")


async def listings_waiting(harness: Harness, count: int) -> None:
    async with asyncio.timeout(10):
        await harness.emulator.holds.wait_until_waiting("list_backups", count)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_harness(tmp_path) as h:
        yield h


# --- triggers, computed from a given time ---------------------------------------------------------------------


def test_trigger_follows_crontab_weekdays_in_the_policy_timezone() -> None:
    text = policy_text(prod_schedule="0 3 * * 0").replace("policies:", "defaults: {timezone: Asia/Shanghai}\npolicies:")
    policy = parse_policy_text(text).policies[0]
    trigger = build_trigger(policy)
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday
    fire = trigger.get_next_fire_time(None, start)
    assert fire is not None
    local = fire.astimezone(ZoneInfo("Asia/Shanghai"))
    # Sunday 03:00 Shanghai, plus a jitter of at most 5 minutes (10% of a week is more than that).
    assert local.weekday() == 6 and local.date() == datetime(2026, 11, 29).date()
    assert timedelta(0) <= local - local.replace(hour=3, minute=0, second=0, microsecond=0) <= timedelta(minutes=5)


def test_jitter_is_a_tenth_of_the_interval_at_most_five_minutes() -> None:
    start = datetime(2026, 11, 27, tzinfo=UTC)
    assert jitter_s(CronTrigger(minute="*/10", timezone=UTC), start) == 60
    assert jitter_s(CronTrigger(minute="0", timezone=UTC), start) == 300  # 6 min would be 10%: capped at 5
    assert jitter_s(CronTrigger(minute="*", timezone=UTC), start) == 6
    for schedule, expected in (("*/10 * * * *", 60), ("30 2 * * *", 300), ("0 1 1 * mon", 300)):
        trigger = build_trigger(parse_policy_text(policy_text(prod_schedule=schedule)).policies[0])
        assert trigger.jitter == expected


# --- jobs and runs ----------------------------------------------------------------------------------------------


async def test_start_schedules_jobs_and_runs_no_unscheduled_policy(harness: Harness) -> None:
    jobs = {job.id: job for job in harness.daemon.scheduler.get_jobs()}
    assert set(jobs) == {"prod"}
    job = jobs["prod"]
    assert (job.max_instances, job.coalesce) == (1, True)
    await harness.settle()
    # staging has no schedule and no run_on_change: loading the file runs nothing (round 1 ran it).
    assert harness.emulator.stats.to_json()["total_requests"] == 0
    assert len(harness.graph_backups("staging-")) > 2


async def test_a_job_fires_and_a_run_happens(harness: Harness) -> None:
    await harness.settle()
    before = len(harness.graph_backups("prod-"))
    job = harness.daemon.scheduler.get_job("prod")
    with capture_events() as logs:
        await job.func(*job.args)
    after = len(harness.graph_backups("prod-"))
    assert after < before
    started = [e for e in logs if e["event"] == "run_started"]
    assert started and started[0]["trigger"] == "schedule" and started[0]["policies"] == ["prod"]


async def test_no_overlap_when_a_run_outlasts_its_interval(harness: Harness) -> None:
    await harness.settle()
    await hold_listings(harness)
    run_id = harness.daemon.trigger(["prod"], "http")
    assert run_id
    await listings_waiting(harness, 1)  # the HTTP-triggered run is going, held at its listing
    job = harness.daemon.scheduler.get_job("prod")
    with capture_events() as logs:
        await job.func(*job.args)
        with pytest.raises(AlreadyRunning):
            harness.daemon.trigger(["prod"], "http")
    assert [e["event"] for e in logs if e["event"] == "run_skipped"] == ["run_skipped"]
    await harness.emulator.holds.unhold("list_backups")
    await harness.settle()
    assert harness.daemon.running == set()


async def test_a_valid_edit_reschedules(harness: Harness) -> None:
    old = harness.daemon.scheduler.get_job("prod").trigger
    with capture_events() as logs:
        harness.path.write_text(policy_text(prod_schedule="0 4 * * 1", staging_schedule="15 1 * * *"))
        await wait_for_event(logs, "policy_loaded")
    jobs = {job.id: job for job in harness.daemon.scheduler.get_jobs()}
    assert set(jobs) == {"prod", "staging"}
    assert str(jobs["prod"].trigger) != str(old)
    assert "day_of_week='mon'" in str(jobs["prod"].trigger)


async def test_removed_policy_is_unscheduled(harness: Harness) -> None:
    text = policy_text().split("  - name: staging")[0]
    with capture_events() as logs:
        harness.path.write_text(text.replace('"30 2 * * *"', '"45 2 * * *"'))
        await wait_for_event(logs, "policy_loaded")
    assert [j.id for j in harness.daemon.scheduler.get_jobs()] == ["prod"]
    with pytest.raises(UnknownPolicy):
        harness.daemon.trigger(["staging"], "http")


async def test_an_invalid_edit_is_rejected_and_the_old_policies_keep_running(harness: Harness) -> None:
    await harness.settle()
    old_file = harness.daemon.policy_file
    with capture_events() as logs:
        harness.path.write_text(policy_text().replace("last: 3", "last: -3"))
        await wait_for_event(logs, "policy_rejected")
    rejected = next(e for e in logs if e["event"] == "policy_rejected")
    assert "policies[0].keep.last" in rejected["error"]
    assert harness.daemon.policy_file is old_file
    assert harness.metrics.reload_errors._value.get() == 1
    job = harness.daemon.scheduler.get_job("prod")
    await job.func(*job.args)  # the old policy still runs
    assert len(harness.graph_backups("prod-")) < 60


async def test_a_crash_in_a_run_is_logged_and_the_daemon_lives_on(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await harness.settle()
    original = harness.daemon.runner.run

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(harness.daemon.runner, "run", boom)
    with capture_events() as logs:
        harness.daemon.trigger(["prod"], "signal")
        await harness.settle()
    crashed = [e for e in logs if e["event"] == "run_crashed"]
    assert len(crashed) == 1 and "unexpected" in crashed[0]["error"]
    monkeypatch.setattr(harness.daemon.runner, "run", original)
    harness.daemon.trigger(["prod"], "signal")
    await harness.settle()
    assert len(harness.graph_backups("prod-")) < 60


# --- HTTP listener --------------------------------------------------------------------------------------------


async def test_health_ready_and_metrics_match_what_the_emulator_saw(harness: Harness) -> None:
    await harness.settle()
    job = harness.daemon.scheduler.get_job("prod")
    await job.func(*job.args)
    url = harness.daemon.http_url
    assert url is not None
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/healthz") as r:
            assert r.status == 200
        async with session.get(f"{url}/readyz") as r:
            assert r.status == 200
        async with session.get(f"{url}/metrics") as r:
            assert r.status == 200
            text = await r.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    deleted = len(harness.emulator.stats.deleted_ids)
    by_policy = sum(
        v
        for (name, labels), v in samples.items()
        if name == "ges_retention_deletions_total" and ("outcome", "deleted") in labels
    )
    assert by_policy == deleted > 0
    delete_200 = samples[("ges_retention_requests_total", (("operation", "delete_backup"), ("status", "200")))]
    assert delete_200 == harness.emulator.stats.to_json()["requests"]["delete_backup"]["200"]
    assert samples[("ges_retention_policies_loaded", ())] == 2
    assert samples[("ges_retention_backups", (("policy", "prod"), ("status", "backing_up")))] == 1
    age = samples[("ges_retention_newest_success_age_seconds", (("policy", "prod"),))]
    assert 0 < age < 86_400
    assert samples[("ges_retention_last_run_timestamp_seconds", (("outcome", "ok"), ("policy", "prod")))] > 0
    assert ("ges_retention_run_duration_seconds_count", (("policy", "prod"),)) in samples


async def test_post_runs_statuses(harness: Harness) -> None:
    await harness.settle()
    url = harness.daemon.http_url
    await hold_listings(harness)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/v1/runs?policy=nope") as r:
            assert r.status == 404
        async with session.post(f"{url}/v1/runs?policy=prod") as r:
            assert r.status == 202
            assert (await r.json())["run_id"]
        await listings_waiting(harness, 1)
        async with session.post(f"{url}/v1/runs?policy=prod") as r:
            assert r.status == 409
    await harness.emulator.holds.unhold("list_backups")
    await harness.settle()


@pytest.mark.parametrize(
    ("listener", "token", "header", "status"),
    [
        ("127.0.0.1:9464", None, None, 202),
        ("0.0.0.0:9464", None, None, 403),
        ("0.0.0.0:9464", "t0ken-for-tests", None, 401),
        ("0.0.0.0:9464", "t0ken-for-tests", "Bearer wrong", 401),
        ("0.0.0.0:9464", "t0ken-for-tests", "Bearer t0ken-for-tests", 202),
        ("0.0.0.0:9464", "t0ken-for-tests", "bearer t0ken-for-tests", 202),  # the scheme is case-insensitive
        ("0.0.0.0:9464", "t0ken-for-tests", "t0ken-for-tests", 401),
        ("127.0.0.1:9464", "t0ken-for-tests", "Bearer wrong", 401),
        ("[::1]:9464", None, None, 202),
        ("localhost:9464", None, None, 202),
    ],
)
async def test_token_rules_of_every_v1_endpoint(
    harness: Harness, listener: str, token: str | None, header: str | None, status: int
) -> None:
    """The rule depends on where the listener is bound (a setting), whoever connects; served here on loopback."""
    await harness.settle()
    harness.daemon.settings = make_settings(harness.emulator.url, http=listener, http_token=token)
    app_runner = aiohttp.web.AppRunner(harness.daemon.http.build_app())
    await app_runner.setup()
    site = aiohttp.web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        headers = {"Authorization": header} if header else {}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(f"{base}/v1/runs?policy=staging") as r:
                assert r.status == status
                run_id = (await r.json()).get("run_id", "none")
            read_status = 200 if status == 202 else status
            async with session.get(f"{base}/v1/policies") as r:
                assert r.status == read_status
            async with session.get(f"{base}/v1/runs/{run_id}") as r:
                assert r.status == read_status
            async with session.get(f"{base}/healthz") as r:
                assert r.status == 200  # health is never behind the token
    finally:
        await app_runner.cleanup()
        await harness.settle()


async def test_the_daemon_survives_the_emulator_being_down_and_recovers(tmp_path: Path) -> None:
    store = seeded_store()
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(staging_schedule="0 1 * * *"))
    async with seeded_emulator(store=store) as emulator:
        url = emulator.url
    port = int(url.rsplit(":", 1)[1])
    settings = make_settings(url, max_attempts=2, backoff_max_s=0.01, reload_settle_s=0)
    metrics = Metrics()
    async with Service(settings, metrics=metrics) as runner:
        daemon = Daemon(path, settings, runner, metrics=metrics)
        await daemon.start()
        try:
            with capture_events() as logs:
                daemon.trigger(["prod"], "http")  # the emulator is down: connection refused
                await Harness(daemon, emulator, path, metrics, []).settle()
            failed = [e for e in logs if e["event"] == "listing_failed"]
            assert failed and failed[0]["project_id"] == PROJECT
            before = len(store.backups(PROJECT))
            async with seeded_emulator(store=store, port=port):
                daemon.trigger(["prod"], "http")
                await Harness(daemon, emulator, path, metrics, []).settle()
                assert len(store.backups(PROJECT)) < before
        finally:
            await daemon.stop()


async def test_run_all_now_skips_only_the_policies_already_running(harness: Harness) -> None:
    await harness.settle()
    await hold_listings(harness)
    harness.daemon.trigger(["prod"], "http")
    await listings_waiting(harness, 1)
    with capture_events() as logs:
        run_id, skipped_now = harness.daemon.run_all_now("signal")
    assert run_id is not None
    assert skipped_now == [{"policy": "prod", "reason": "already_running"}]
    skipped = [e for e in logs if e["event"] == "run_skipped"]
    assert [(e["policy"], e["trigger"], e["reason"]) for e in skipped] == [("prod", "signal", "already_running")]
    assert harness.daemon.running == {"prod", "staging"}
    await harness.emulator.holds.unhold("list_backups")
    await harness.settle()


async def test_a_removed_policy_takes_its_metric_series_with_it(harness: Harness) -> None:
    await harness.settle()
    job = harness.daemon.scheduler.get_job("prod")
    await job.func(*job.args)
    harness.daemon.trigger(["staging"], "http")
    await harness.settle()
    before = harness.metrics.render().decode()
    assert 'policy="staging"' in before and 'policy="prod"' in before
    with capture_events() as logs:
        harness.path.write_text(policy_text().split("  - name: staging")[0])
        await wait_for_event(logs, "policy_loaded")
    after = harness.metrics.render().decode()
    assert 'policy="staging"' not in after
    assert 'ges_retention_deletions_total{outcome="deleted",policy="prod"}' in after
