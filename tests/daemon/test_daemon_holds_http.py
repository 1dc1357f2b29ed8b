"""A daemon with its journal (a SQLite file), driven over HTTP and beside the CLI: a hold placed with
`POST /v1/holds` keeps its backup in the next run, `GET /v1/backups/{id}` tells what the run did, `GET /v1/policies`
shows the journal's last run and pending deletions, and the CLI's `holds`/`release` work on the daemon's state while
it runs (they take no lock)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from daemon_helpers import PROJECT, start_daemon
from prometheus_client.parser import text_string_to_metric_families

from ges_retention.backup import Backup
from ges_retention.emulator.app import RunningEmulator
from ges_retention.policy_loading import parse_policy_text
from ges_retention.retention import plan_file
from subprocess_env import clean_env, emulator_env
from support.emulators import seeded_emulator
from support.processes import run_cli

POLICY = f"""\
version: 1
policies:
  - name: prod
    project_id: {PROJECT}
    select: {{graphs: ["prod-*"]}}
    keep: {{last: 3, daily: 7}}
    safety: {{max_deletes: 1000, change_budget: unlimited}}
"""


def planned_ids(emulator: RunningEmulator) -> list[str]:
    from datetime import UTC, datetime

    policy_file = parse_policy_text(POLICY)
    backups = [Backup.from_api(r) for r in emulator.store.backups(PROJECT)]
    [plan] = plan_file(policy_file.policies, policy_file.policies, lambda _p: backups, datetime.now(UTC))
    return [d.backup.id for d in plan.deletions]


async def _call(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.request(method, url, **kwargs) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


async def test_holds_and_why_over_http_beside_the_cli(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    state = str(tmp_path / "state.db")
    async with seeded_emulator() as emulator:
        planned = planned_ids(emulator)
        assert len(planned) > 5
        held, deleted = planned[-1], planned[0]
        daemon = await start_daemon(policy, emulator, GES_RETENTION_STATE=state)
        try:
            await daemon.wait_event("daemon_started")
            url = daemon.named("http_listening")[0]["url"]
            async with aiohttp.ClientSession() as session:
                status, body = await _call(
                    session, "POST", f"{url}/v1/holds", json={"backup_id": held, "reason": "legal: case 42"}
                )
                assert status == 201, body
                assert body["known"] is False and body["placed_by"] == "http:127.0.0.1"

                cli_holds = await run_cli(["holds", "--format", "json"], clean_env(GES_RETENTION_STATE=state))
                assert cli_holds.code == 0, cli_holds.stderr  # beside the running daemon: no lock taken
                assert '"legal: case 42"' in cli_holds.stdout

                status, body = await _call(session, "POST", f"{url}/v1/runs?policy=prod")
                assert status == 202, body
                run_id = body["run_id"]
                await daemon.wait_event("run_finished")

                status, why = await _call(session, "GET", f"{url}/v1/backups/{deleted}")
                assert status == 200
                [record] = why["records"]
                assert (record["state"], record["policy"], record["run_id"]) == ("deleted", "prod", run_id)
                assert record["request_id"] == emulator.stats.delete_request_ids[deleted]

                status, why = await _call(session, "GET", f"{url}/v1/backups/{held}")
                assert status == 200 and why["hold"]["reason"] == "legal: case 42"
                assert all(r["state"] != "deleted" for r in why["records"])

                status, body = await _call(session, "GET", f"{url}/v1/policies")
                assert status == 200
                [prod] = body["policies"]
                assert prod["last_run"]["run_id"] == run_id and prod["last_run"]["outcome"] == "ok"
                assert prod["last_run"]["trigger"] == "http" and prod["pending_deletions"] == 0
                assert "change_held" in prod and "lease_holder" in prod

                released = await run_cli(["release", held], clean_env(GES_RETENTION_STATE=state))
                assert released.code == 0, released.stderr
                status, body = await _call(session, "GET", f"{url}/v1/holds")
                assert (status, body) == (200, {"holds": []})
                status, body = await _call(session, "DELETE", f"{url}/v1/holds/{held}")
                assert status == 404
        finally:
            assert await daemon.stop() == 0
        assert emulator.store.backup(PROJECT, held) is not None  # the hold kept it
        assert emulator.store.backup(PROJECT, deleted) is None
        assert set(emulator.stats.deleted_ids) == set(planned) - {held}


async def _holds_gauge(session: aiohttp.ClientSession, url: str) -> float:
    async with session.get(f"{url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    [value] = [
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "ges_retention_holds"
    ]
    return value


async def test_the_holds_gauge_follows_http_and_the_cli_and_plan_keeps_a_held_backup(tmp_path: Path) -> None:
    """`ges_retention_holds` counts the holds in force whoever placed or released them (this daemon over HTTP, or
    the CLI in another process), with no run in between; `plan` keeps a held backup, saying why."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    state = str(tmp_path / "state.db")
    cli = clean_env(GES_RETENTION_STATE=state)
    async with seeded_emulator() as emulator:
        planned = planned_ids(emulator)
        by_http, by_cli = planned[-1], planned[-2]
        daemon = await start_daemon(policy, emulator, GES_RETENTION_STATE=state)
        try:
            await daemon.wait_event("daemon_started")
            url = daemon.named("http_listening")[0]["url"]
            async with aiohttp.ClientSession() as session:
                assert await _holds_gauge(session, url) == 0
                hold = {"backup_id": by_http, "reason": "restore drill"}
                assert (await _call(session, "POST", f"{url}/v1/holds", json=hold))[0] == 201
                assert await _holds_gauge(session, url) == 1
                placed = await run_cli(["hold", by_cli, "--reason", "legal: case 7", "--for", "30d"], cli)
                assert placed.code == 0, placed.stderr
                assert await _holds_gauge(session, url) == 2

                plan = await run_cli(["plan", str(policy), "--format", "json"], emulator_env(emulator.url, **cli))
                assert plan.code == 0, plan.stderr
                [prod] = json.loads(plan.stdout)["policies"]
                decisions = {d["backup_id"]: d for d in prod["decisions"]}
                assert decisions[by_http]["action"] == "keep" and "held: restore drill" in decisions[by_http]["reasons"]
                assert decisions[by_cli]["action"] == "keep"
                assert any(r.startswith("held: legal: case 7 until ") for r in decisions[by_cli]["reasons"])
                assert [d for d in planned if decisions[d]["action"] == "delete"] == planned[:-2]

                released = await run_cli(["release", by_cli], cli)
                assert released.code == 0, released.stderr
                assert await _holds_gauge(session, url) == 1
                assert (await _call(session, "DELETE", f"{url}/v1/holds/{by_http}"))[0] == 204
                assert await _holds_gauge(session, url) == 0
        finally:
            assert await daemon.stop() == 0
        assert emulator.stats.deleted_ids == []  # nothing ran: the gauge moved without a run
