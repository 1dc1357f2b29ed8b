"""The gates end to end against the emulator: the change gate (a first run over budget held, acknowledged by digest
or in the file; a tightened policy; a removed overlapping policy), `ack`, and `confirm_after` refused on `:memory:`.
Two-phase deletion over time is `test_run_two_phase.py` (in process: its time goes through a clock seam)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from e2e_helpers import POLICY, PROJECT, cli_env, run_cli

from ges_retention.emulator.app import RunningEmulator
from ges_retention.emulator.store import Store
from support.emulators import seeded_emulator

PROD_ONLY = ["--policy", "prod"]
# The e2e policy with the default change budget (10): the other e2e tests opt out of the gate with `unlimited`.
GATED = POLICY.replace(", change_budget: unlimited", "")


def _count(emulator: RunningEmulator) -> int:
    return len(emulator.store.backups(PROJECT))


async def test_a_first_run_over_budget_is_held_then_acknowledged_by_digest_then_deletes(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    policy_path = tmp_path / "gated.yaml"
    policy_path.write_text(GATED)
    env = cli_env(emulator, GES_RETENTION_STATE=str(tmp_path / "state.db"))
    before = _count(emulator)
    held = await run_cli(["run", str(policy_path), *PROD_ONLY, "--format", "json"], env)
    assert held.code == 3, held.stderr
    assert _count(emulator) == before, "a held policy deletes nothing"
    (event,) = held.events("policy_change_held")
    assert event["level"] == "error" and event["policy"] == "prod" and event["budget"] == 10
    assert event["extra"] > 10 and 0 < len(event["sample_backup_ids"]) <= 20
    summary = json.loads(held.stdout)
    assert summary["policies"][0]["outcome"] == "change_held"
    assert summary["policies"][0]["change_held"]["digest"] == event["digest"]
    (planned,) = held.events("policy_planned")
    assert planned["change_held"] is True

    # `plan` reads the state and shows the same gate (exit 3).
    shown = await run_cli(["plan", str(policy_path), *PROD_ONLY, "--format", "json"], env)
    assert shown.code == 3, shown.stderr
    document = json.loads(shown.stdout)
    assert document["state"]["backend"] == "sqlite"
    assert document["policies"][0]["change_held"] == {
        "extra": event["extra"],
        "budget": 10,
        "digest": event["digest"],
    }

    wrong = await run_cli(["ack", str(policy_path), "--policy", "prod", "--digest", "0" * 64], env)
    assert wrong.code == 2 and "not the current gate digest" in wrong.stderr
    # From a shell whose GES_RETENTION_ENDPOINT is another one, the ack lands in a scope no run here reads: it is
    # recorded (the digest of a first run does not name the endpoint), and the command says where, with a warning.
    elsewhere = {**env, "GES_RETENTION_ENDPOINT": "https://ges.elsewhere.example"}
    astray = await run_cli(["ack", str(policy_path), "--policy", "prod", "--digest", event["digest"]], elsewhere)
    assert astray.code == 0, astray.stderr
    assert f"scope: endpoint https://ges.elsewhere.example, project {PROJECT}" in astray.stdout.splitlines()
    (unseen,) = astray.events("ack_scope_unseen")
    assert (unseen["level"], unseen["endpoint"]) == ("warning", "https://ges.elsewhere.example")
    acked = await run_cli(["ack", str(policy_path), "--policy", "prod", "--digest", event["digest"]], env)
    assert acked.code == 0, acked.stderr
    assert "acknowledged policy prod" in acked.stdout
    assert f"scope: endpoint {emulator.url}, project {PROJECT}" in acked.stdout.splitlines()
    assert "note:" not in acked.stdout  # held for exactly this definition: no note
    assert acked.events("ack_scope_unseen") == []
    (logged,) = acked.events("policy_change_acked")
    assert (logged["digest"], logged["by"]) == (event["digest"], "cli")
    assert _count(emulator) == before, "an ack starts no run"

    ran = await run_cli(["run", str(policy_path), *PROD_ONLY, "--format", "json"], env)
    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout)["deleted"] == event["extra"]
    assert [e["by"] for e in ran.events("policy_change_acked")] == ["cli"]
    assert _count(emulator) == before - event["extra"]

    # The completed run is the baseline now: the next run needs no ack.
    again = await run_cli(["run", str(policy_path), *PROD_ONLY], env)
    assert again.code == 0, again.stderr
    assert again.events("policy_change_held") == [] and again.events("policy_change_acked") == []


def _many_graphs(now: datetime, graphs: int = 12, days: int = 40) -> Store:
    store = Store()
    today = now.replace(hour=2, minute=0, second=0, microsecond=0) - timedelta(days=1)
    for g in range(graphs):
        graph_id = f"graph-{g:03d}"
        store.add_graph(PROJECT, name=f"prod-{g:03d}", graph_id=graph_id, created_ms=0)
        for day in range(days):
            start = int((today - timedelta(days=day)).timestamp() * 1000)
            store.add_backup(
                PROJECT,
                {"id": f"g{g:03d}-d{day:02d}", "graph_id": graph_id, "start_timestamp": start, "backup_method": "auto"},
            )
    return store


def _daily(daily: int, ack: str | None = None) -> str:
    safety = "{max_deletes: 1000" + (f", ack: {ack}" if ack else "") + "}"
    return (
        f"version: 1\npolicies:\n  - name: nightly\n    project_id: {PROJECT}\n"
        f"    keep: {{daily: {daily}}}\n    safety: {safety}\n"
    )


async def test_tightening_daily_30_to_3_is_held_until_acknowledged_in_the_file(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    async with seeded_emulator(now, store=_many_graphs(now)) as emulator:
        env = cli_env(emulator, GES_RETENTION_STATE=str(tmp_path / "state.db"))
        path = tmp_path / "policy.yaml"
        path.write_text(_daily(30))
        first = await run_cli(["run", str(path)], env)
        assert first.code == 3, first.stderr  # the first run deletes 12 x 10 > 10 with no baseline
        digest = first.events("policy_change_held")[0]["digest"]
        path.write_text(_daily(30, ack=digest))  # acknowledged in the file itself, as a reviewed change would be
        done = await run_cli(["run", str(path)], env)
        assert done.code == 0, done.stderr
        assert [e["by"] for e in done.events("policy_change_acked")] == ["file"]
        assert _count(emulator) == 12 * 30

        path.write_text(_daily(3, ack=digest))  # tightened; the old ack left in the file no longer matches
        tightened = await run_cli(["run", str(path), "--format", "json"], env)
        assert tightened.code == 3, tightened.stderr
        assert _count(emulator) == 12 * 30, "held: nothing deleted"
        (held,) = tightened.events("policy_change_held")
        assert (held["extra"], held["budget"]) == (12 * 27, 10)
        assert tightened.events("policy_ack_ignored")[0]["level"] == "warning"

        path.write_text(_daily(3, ack=held["digest"]))
        acked = await run_cli(["run", str(path)], env)
        assert acked.code == 0, acked.stderr
        assert _count(emulator) == 12 * 3


TWO = f"""\
version: 1
policies:
  - name: all-prod
    project_id: {PROJECT}
    select: {{graphs: ["prod-*"]}}
    keep: {{last: 3}}
    safety: {{max_deletes: 1000, change_budget: 5}}
  - name: orders
    project_id: {PROJECT}
    select: {{graphs: ["prod-orders"]}}
    keep: {{daily: 60}}
    safety: {{max_deletes: 1000}}
"""


async def test_removing_an_overlapping_policy_is_a_change_of_the_others_baseline(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    env = cli_env(emulator, GES_RETENTION_STATE=str(tmp_path / "state.db"))
    path = tmp_path / "policy.yaml"
    path.write_text(TWO)
    planned = await run_cli(["plan", str(path), "--policy", "all-prod", "--format", "json"], env)
    assert planned.code == 3 and json.loads(planned.stdout)["state"] is None  # no state yet: no baseline
    digest = json.loads(planned.stdout)["policies"][0]["change_held"]["digest"]
    acked = await run_cli(["ack", str(path), "--policy", "all-prod", "--digest", digest], env)
    assert acked.code == 2 and "state" in acked.stderr  # ack needs an existing state; `run` creates it
    first = await run_cli(["run", str(path), "--policy", "all-prod"], env)
    assert first.code == 3 and first.events("policy_change_held")[0]["digest"] == digest
    assert (await run_cli(["ack", str(path), "--policy", "all-prod", "--digest", digest], env)).code == 0
    baseline_run = await run_cli(["run", str(path), "--policy", "all-prod"], env)
    assert baseline_run.code == 0, baseline_run.stderr
    orders = [
        b["id"]
        for b in emulator.store.backups(PROJECT)
        if b["id"].startswith("prod-orders-") and b.get("status", "success") == "success"
    ]
    assert len(orders) > 5, "the overlap kept prod-orders' successes"

    path.write_text(TWO[: TWO.index("  - name: orders")])  # `orders` removed: all-prod's definition is unchanged
    before = _count(emulator)
    held = await run_cli(["run", str(path)], env)
    assert held.code == 3, held.stderr
    (event,) = held.events("policy_change_held")
    assert event["budget"] == 5 and event["extra"] == len(orders) - 3 and event["digest"] != digest  # last: 3
    assert _count(emulator) == before


async def test_confirm_after_on_a_memory_state_is_refused_before_any_request(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("change_budget: unlimited", "change_budget: unlimited, confirm_after: 2s"))
    result = await run_cli(["run", str(path)], cli_env(emulator, GES_RETENTION_STATE=":memory:"))
    assert result.code == 2, result.stderr
    assert "confirm_after" in result.events("command_failed")[0]["error"]
    assert emulator.stats.to_json()["total_requests"] == 0


async def test_ack_refuses_a_memory_state_and_an_unknown_policy(emulator: RunningEmulator, policy_path: Path) -> None:
    memory = await run_cli(
        ["ack", str(policy_path), "--policy", "prod", "--digest", "a" * 64],
        cli_env(emulator, GES_RETENTION_STATE=":memory:"),
    )
    assert memory.code == 2 and ":memory:" in memory.stderr
