"""The daemon with its journal (a SQLite file): `run_on_change` digests survive a restart, and `/v1/runs` lists the
journal's runs (live while running, the final record after)."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from daemon_helpers import POLICY, start_daemon

from subprocess_env import emulator_env
from support.emulators import seeded_emulator
from support.processes import run_cli

ON_CHANGE = POLICY + "    run_on_change: true\n"  # lands in staging, the last policy


async def test_a_restart_does_not_rerun_an_unchanged_run_on_change_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(ON_CHANGE)
    state = str(tmp_path / "state.db")
    async with seeded_emulator() as emulator:
        first = await start_daemon(policy, emulator, GES_RETENTION_STATE=state)
        try:
            started = await first.wait_event("run_started")
            assert (started["policies"], started["trigger"]) == (["staging"], "file")
            await first.wait_event("run_finished")
        finally:
            assert await first.stop() == 0
        second = await start_daemon(policy, emulator, GES_RETENTION_STATE=state)
        try:
            await second.wait_event("daemon_started")
            # An edit of the definition runs it again: the journal's digest is of the old one.
            policy.write_text(ON_CHANGE.replace("keep: {last: 2}", "keep: {last: 1}"))
            again = await second.wait_event("run_started")
            assert again["policies"] == ["staging"]
            await second.wait_event("run_finished")
            url = second.named("http_listening")[0]["url"]
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{url}/v1/runs?limit=5") as r:
                    assert r.status == 200
                    runs = (await r.json())["runs"]
                async with session.get(f"{url}/v1/runs/{started['run_id']}") as r:
                    assert r.status == 200
                    before_restart = await r.json()
                async with session.get(f"{url}/v1/runs?limit=0") as r:
                    assert r.status == 400
        finally:
            assert await second.stop() == 0
        # Only the edit ran in the second daemon: the unchanged definition did not run at its start.
        assert [e["policies"] for e in second.named("run_started")] == [["staging"]]
    assert [r["run_id"] for r in runs] == [again["run_id"], started["run_id"]]  # newest first, both daemons'
    assert runs[0]["status"] == "finished" and runs[0]["outcome"] == "ok" and runs[0]["trigger"] == "file"
    assert before_restart["status"] == "finished" and before_restart["counts"]["deleted"] >= 0


async def test_runs_endpoint_without_any_run_is_empty(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    async with seeded_emulator() as emulator:
        daemon = await start_daemon(policy, emulator, GES_RETENTION_STATE=str(tmp_path / "state.db"))
        try:
            await daemon.wait_event("daemon_started")
            created = daemon.named("state_created")
            assert created and created[0]["location"] == str(tmp_path / "state.db")
            url = daemon.named("http_listening")[0]["url"]
            async with aiohttp.ClientSession() as session, session.get(f"{url}/v1/runs") as r:
                assert (r.status, await r.json()) == (200, {"runs": []})
        finally:
            assert await daemon.stop() == 0


# prod with the default change budget (10): its first real run deletes more than that, with no baseline.
GATED = POLICY.replace("safety: {max_deletes: 1000, change_budget: unlimited}", "safety: {max_deletes: 1000}")


async def test_a_policy_a_cli_run_left_held_is_shown_held_by_a_daemon_started_after(tmp_path: Path) -> None:
    """The change gate's hold is the journal's, not one process's: a one-shot `run` held prod; a daemon started
    afterwards shows it (`GET /v1/policies` `change_held`, the gauge) until it is acknowledged."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(GATED)
    state = str(tmp_path / "state.db")
    async with seeded_emulator() as emulator:
        env = emulator_env(emulator.url, GES_RETENTION_STATE=state)
        held = await run_cli(["run", str(policy), "--policy", "prod", "--format", "json"], env)
        assert held.code == 3, held.stderr
        (event,) = held.events("policy_change_held")
        expected = {"extra": event["extra"], "budget": 10, "digest": event["digest"]}
        assert json.loads(held.stdout)["policies"][0]["change_held"] == expected

        daemon = await start_daemon(policy, emulator, GES_RETENTION_STATE=state)
        try:
            await daemon.wait_event("daemon_started")
            url = daemon.named("http_listening")[0]["url"]
            metric = 'ges_retention_policy_change_held{policy="prod"}'
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{url}/metrics") as r:  # (a scrape reads the journal first)
                    before_ack = await r.text()
                async with session.get(f"{url}/v1/policies") as r:
                    policies = {p["name"]: p for p in (await r.json())["policies"]}
                ack = {"digest": event["digest"]}
                async with session.post(f"{url}/v1/policies/prod/ack", json=ack) as r:
                    assert r.status == 200, await r.text()
                async with session.get(f"{url}/v1/policies") as r:
                    after = {p["name"]: p for p in (await r.json())["policies"]}
                async with session.get(f"{url}/metrics") as r:
                    after_ack = await r.text()
        finally:
            assert await daemon.stop() == 0
    assert policies["prod"]["last_run"]["outcome"] == "change_held"
    assert policies["prod"]["change_held"] == expected
    assert policies["staging"]["change_held"] is None
    assert f"{metric} 1.0" in before_ack.splitlines()
    assert after["prod"]["change_held"] is None
    assert f"{metric} 0.0" in after_ack.splitlines()
