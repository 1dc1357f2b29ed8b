"""`run` and paused policies (`enabled: false`): skipped without `--policy`, an error when named."""

from __future__ import annotations

import json
from pathlib import Path

from e2e_helpers import POLICY, cli_env, run_cli

from ges_retention.emulator.app import RunningEmulator

PAUSED_STAGING = POLICY.replace("  - name: staging\n", "  - name: staging\n    enabled: false\n")


async def test_run_skips_a_paused_policy(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(PAUSED_STAGING)
    staging_before = [b for b in emulator.store.backups(emulator.project_id) if b["graph_name"].startswith("staging")]
    result = await run_cli(["run", str(policy), "--format", "json"], cli_env(emulator))
    assert result.code == 0, result.stderr
    assert [(e["policy"], e["reason"]) for e in result.events("run_skipped")] == [("staging", "paused")]
    assert [p["policy"] for p in json.loads(result.stdout)["policies"]] == ["prod"]
    assert emulator.stats.deleted_ids and not [i for i in emulator.stats.deleted_ids if i.startswith("staging")]
    staging_after = [b for b in emulator.store.backups(emulator.project_id) if b["graph_name"].startswith("staging")]
    assert staging_after == staging_before


async def test_run_with_every_policy_paused_is_exit_0_and_calls_nothing(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(PAUSED_STAGING.replace("  - name: prod\n", "  - name: prod\n    enabled: false\n"))
    result = await run_cli(["run", str(policy)], cli_env(emulator))
    assert result.code == 0, result.stderr
    assert "paused" in result.stdout
    assert {e["policy"] for e in result.events("run_skipped")} == {"prod", "staging"}
    assert emulator.stats.to_json()["total_requests"] == 0


async def test_run_naming_a_paused_policy_is_exit_2(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(PAUSED_STAGING)
    result = await run_cli(["run", str(policy), "--policy", "staging"], cli_env(emulator))
    assert result.code == 2
    last = result.stderr.strip().splitlines()[-1]  # the final error line (JSON in the json log format)
    assert "policy staging is paused (enabled: false); set enabled: true to run it" in last
    assert emulator.stats.to_json()["total_requests"] == 0
