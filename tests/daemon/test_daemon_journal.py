"""The daemon with its journal (a SQLite file): `run_on_change` digests survive a restart, and `/v1/runs` lists the
journal's runs (live while running, the final record after)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from daemon_helpers import POLICY, start_daemon

from support.emulators import seeded_emulator

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
