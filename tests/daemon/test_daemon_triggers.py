"""Round-2 triggers in-process: a policy runs only when asked; `run_on_change` follows its own definition only;
`enabled: false` pauses it for every trigger; a reload stops further deletion of a policy it removes, pauses or
dry-runs; `/v1/policies`, `/v1/runs/{id}` and the next-run metric."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from inprocess_harness import PROJECT, Harness, policy_text, running_harness, wait_for_event
from prometheus_client.parser import text_string_to_metric_families

from ges_retention.daemon import Paused
from ges_retention.http_runs import run_view
from ges_retention.policy_watch import FileRead
from support.logs import capture_events

ON_CHANGE = "    run_on_change: true\n"  # appended to the file: it lands in staging, the last policy


def reordered(text: str) -> str:
    head, rest = text.split("  - name: prod\n")
    prod, staging = rest.split("  - name: staging\n")
    return head + "  - name: staging\n" + staging + "  - name: prod\n" + prod


def requests(h: Harness) -> int:
    return int(h.emulator.stats.to_json()["total_requests"])


def started(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "run_started"]


async def load(h: Harness, text: str) -> list[dict[str, Any]]:
    """Write the file, wait until the daemon loaded it and every run it started ended; the captured events."""
    with capture_events() as logs:
        h.path.write_text(text)
        await wait_for_event(logs, "policy_loaded")
        await h.settle()
    return logs


async def test_run_on_change_runs_once_at_start_and_once_per_change_of_its_own_definition(tmp_path: Path) -> None:
    text = policy_text(extra=ON_CHANGE)
    async with running_harness(tmp_path, text) as h:
        await h.settle()
        (record,) = [h.daemon.records.get(r) for r in list(h.daemon.records._runs)]
        assert record is not None and (record.trigger, record.policies) == ("file", ["staging"])
        after_start = requests(h)
        assert after_start > 0 and h.emulator.stats.deleted_ids

        for edit in (
            "# a comment\n" + text,
            reordered(text),
            text.replace("last: 3, daily: 7", "last: 4, daily: 7"),  # another policy's edit
            text.replace('    schedule: "30 2 * * *"\n', '    # schedule: "30 2 * * *"\n'),  # prod paused by hand
            text.replace("keep: {last: 2}", "keep: {last: 2}  # two is enough"),
        ):
            logs = await load(h, edit)
            assert started(logs) == [], edit
            assert requests(h) == after_start, edit

        logs = await load(h, text.replace("keep: {last: 2}", "keep: {last: 1}"))
        assert [(e["trigger"], e["policies"]) for e in started(logs)] == [("file", ["staging"])]
        assert requests(h) > after_start
        # Back to the same definition with other bytes: nothing.
        logs = await load(h, "# same again\n" + text.replace("keep: {last: 2}", "keep: {last: 1}"))
        assert started(logs) == []


async def test_a_change_while_the_policy_runs_queues_exactly_one_more_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_harness(tmp_path) as h:
        versions = [policy_text(extra=ON_CHANGE).replace("keep: {last: 2}", f"keep: {{last: {n}}}") for n in (3, 2, 1)]
        original = h.daemon.runs.should_continue
        calls = 0

        def during_the_run(name: str) -> bool:
            # Asked before each DELETE: the first time, two more changes arrive while staging runs.
            nonlocal calls
            calls += 1
            if calls == 1:
                h.path.write_text(versions[2])
                h.daemon.apply(FileRead(versions[1].encode()))
                h.daemon.apply(FileRead(versions[2].encode()))
                assert h.daemon.queued == {"staging"}
            return original(name)

        monkeypatch.setattr(h.daemon.runs, "should_continue", during_the_run)
        with capture_events() as logs:
            h.path.write_text(versions[0])
            await wait_for_event(logs, "run_finished", count=2)
            await h.settle()
            # The watcher sees the final file too: its definition already ran (or is queued): nothing more.
            await wait_for_event(logs, "policy_loaded", count=4)
            await h.settle()
        assert [e["policies"] for e in started(logs)] == [["staging"], ["staging"]]
        assert h.daemon.queued == set()
        graphs = {b["graph_id"] for b in h.graph_backups("staging-")}
        successes = [b for b in h.graph_backups("staging-") if b["status"] == "success"]
        assert len(successes) == len(graphs), "the queued run used the latest definition (keep last 1)"


PAUSED_PROD = policy_text(prod_schedule="* * * * *", extra=ON_CHANGE).replace(
    "  - name: prod\n", "  - name: prod\n    enabled: false\n    run_on_change: true\n"
)


async def test_a_paused_policy_is_never_run_by_any_trigger(tmp_path: Path) -> None:
    async with running_harness(tmp_path, PAUSED_PROD) as h:
        await h.settle()
        prod_before = len(h.graph_backups("prod-"))
        assert h.daemon.scheduler.get_job("prod") is None  # no job: the schedule never fires
        with capture_events() as logs:
            await h.daemon.runs.scheduled("prod")  # a fire that raced the reload
        assert [(e["event"], e["reason"]) for e in logs] == [("run_skipped", "paused")]
        with pytest.raises(Paused):
            h.daemon.trigger(["prod"], "http")
        run_id, skipped = h.daemon.run_all_now("signal")
        assert run_id is not None and {"policy": "prod", "reason": "paused"} in skipped
        await h.settle()
        base = h.daemon.http_url
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/v1/runs?policy=prod") as r:
                assert r.status == 409
                assert await r.json() == {"error": "policy prod is paused", "reason": "paused"}
            async with session.post(f"{base}/v1/runs") as r:
                assert r.status == 202
                assert {"policy": "prod", "reason": "paused"} in (await r.json())["skipped"]
        await h.settle()
        # run_on_change with a new definition: still paused.
        await load(h, PAUSED_PROD.replace("last: 3, daily: 7", "last: 1"))
        assert len(h.graph_backups("prod-")) == prod_before
        assert not any("prod" in r.policies for r in h.daemon.records._runs.values())


async def test_a_paused_policy_still_protects_what_it_overlaps(tmp_path: Path) -> None:
    guard = f"  - name: guard\n    project_id: {PROJECT}\n    enabled: false\n    select: {{graphs: ['prod-*']}}\n"
    async with running_harness(tmp_path, policy_text() + guard + "    keep: {last: 1}\n") as h:
        before = len(h.graph_backups("prod-"))
        h.daemon.trigger(["prod"], "http")
        await h.settle()
        assert len(h.graph_backups("prod-")) == before


@pytest.mark.parametrize(
    "reload",
    [
        pytest.param(lambda t: t.split("  - name: staging")[0], id="removed"),
        pytest.param(lambda t: t.replace("keep: {last: 2}", "keep: {last: 2}\n    enabled: false"), id="paused"),
        pytest.param(lambda t: t.replace("keep: {last: 2}", "keep: {last: 2}\n    dry_run: true"), id="dry_run"),
    ],
)
async def test_a_reload_that_removes_pauses_or_dry_runs_a_running_policy_starts_no_further_deletion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reload: Callable[[str], str]
) -> None:
    async with running_harness(tmp_path, concurrency=1) as h:
        original = h.daemon.runs.should_continue
        calls = 0

        def reload_after_two(name: str) -> bool:
            nonlocal calls
            calls += 1
            if calls == 3:  # two deletions done, the reload lands before the third
                h.daemon.apply(FileRead(reload(policy_text()).encode()))
            return original(name)

        monkeypatch.setattr(h.daemon.runs, "should_continue", reload_after_two)
        with capture_events() as logs:
            h.daemon.trigger(["staging"], "http")
            await h.settle()
        finished = next(e for e in logs if e["event"] == "policy_finished")
        assert (finished["deleted"], finished["outcome"]) == (2, "interrupted")
        assert finished["not_started"] == finished["planned"] - 2 > 0
        assert len(h.emulator.stats.deleted_ids) == 2
        assert next(e for e in logs if e["event"] == "run_finished")["outcome"] == "interrupted"


async def test_policies_and_runs_endpoints_and_the_next_run_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_harness(tmp_path, concurrency=1) as h:
        base = h.daemon.http_url
        live: list[dict[str, Any]] = []
        original = h.daemon.runs.should_continue

        def look_while_running(name: str) -> bool:
            if len(live) < 3:
                view = run_view(h.daemon, next(iter(h.daemon.records._runs)))
                assert view is not None
                live.append(view)
            return original(name)

        monkeypatch.setattr(h.daemon.runs, "should_continue", look_while_running)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/v1/runs?policy=prod") as r:
                run_id = (await r.json())["run_id"]
            await h.settle()
            async with session.get(f"{base}/v1/runs/{run_id}") as r:
                assert r.status == 200
                done = await r.json()
            async with session.get(f"{base}/v1/runs/nope") as r:
                assert r.status == 404
            async with session.get(f"{base}/v1/policies") as r:
                policies = {p["name"]: p for p in (await r.json())["policies"]}
            async with session.get(f"{base}/metrics") as r:
                metrics = await r.text()

        assert [v["status"] for v in live] == ["running"] * 3
        assert [v["counts"]["deleted"] for v in live] == [0, 1, 2]  # live counts, one deletion at a time asked
        assert live[0]["counts"]["planned"] == done["summary"]["planned"] > 0
        assert done["status"] == "finished" and done["summary"]["outcome"] == "ok"
        assert done["summary"]["deleted"] == len(h.emulator.stats.deleted_ids)
        prod, staging = policies["prod"], policies["staging"]
        assert (prod["enabled"], prod["schedule"], prod["running"]) == (True, "30 2 * * *", False)
        assert prod["last_run"]["run_id"] == run_id and prod["last_run"]["outcome"] == "ok"
        assert prod["next_run"].endswith("Z")
        assert (staging["next_run"], staging["last_run"]) == (None, None)
        job_time = h.daemon.scheduler.get_job("prod").next_run_time
        next_runs = {
            s.labels["policy"]: s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
            if s.name == "ges_retention_next_run_timestamp_seconds"
        }
        assert next_runs == {"prod": job_time.timestamp()}
        assert datetime.fromisoformat(prod["next_run"]) == job_time

        await load(h, policy_text().replace("  - name: prod\n", "  - name: prod\n    enabled: false\n"))
        assert 'ges_retention_next_run_timestamp_seconds{policy="prod"}' not in h.metrics.render().decode()


async def test_post_runs_without_a_policy_is_like_sigusr1(tmp_path: Path) -> None:
    async with running_harness(tmp_path) as h:
        base = h.daemon.http_url
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/v1/runs") as r:
                assert r.status == 202
                body = await r.json()
            assert body["skipped"] == []
            assert h.daemon.running == {"prod", "staging"}
            async with session.post(f"{base}/v1/runs") as r:
                assert r.status == 409
                assert (await r.json())["reason"] == "already_running"
            async with session.post(f"{base}/v1/runs?policy=prod") as r:
                assert r.status == 409
                conflict = await r.json()
        assert conflict == {"error": "policy prod is already running", "reason": "already_running"}
        await h.settle()
        assert h.daemon.records.get(body["run_id"]) is not None


async def test_with_every_policy_paused_nothing_can_be_started(tmp_path: Path) -> None:
    paused = policy_text().replace("    project_id:", "    enabled: false\n    project_id:")
    async with running_harness(tmp_path, paused) as h:
        with pytest.raises(Paused):
            h.daemon.trigger(None, "http")  # "every enabled policy" is none, never "every policy"
        assert h.daemon.run_all_now("signal")[0] is None
        async with aiohttp.ClientSession() as session, session.post(f"{h.daemon.http_url}/v1/runs") as r:
            assert r.status == 409
            assert (await r.json())["reason"] == "paused"
        assert requests(h) == 0 and not h.daemon.tasks
