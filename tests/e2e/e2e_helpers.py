"""End-to-end helpers: run the real CLI against an in-process emulator, and the plan it should carry out."""

from __future__ import annotations

from datetime import datetime

from ges_retention.backup import Backup
from ges_retention.emulator.app import RunningEmulator
from ges_retention.emulator.store import Store
from ges_retention.policy_loading import parse_policy_text
from ges_retention.retention import plan_file
from subprocess_env import emulator_env
from support.emulators import PROJECT
from support.processes import CliResult, run_cli, start_cli
from support.waiting import wait_for

__all__ = ["POLICY", "PROJECT", "CliResult", "cli_env", "expected_plan", "run_cli", "start_cli", "wait_for"]

POLICY = f"""\
version: 1
policies:
  - name: prod
    project_id: {PROJECT}
    select: {{graphs: ["prod-*"]}}
    keep: {{last: 3, daily: 7, weekly: 4, monthly: 12, names: ["*-golden"]}}
    failed: {{delete_after: 3d}}
    safety: {{max_deletes: 1000, change_budget: unlimited}}
  - name: staging
    project_id: {PROJECT}
    select: {{graphs: ["staging-*"]}}
    keep: {{last: 2, within: 7d}}
    safety: {{max_deletes: 1000, change_budget: unlimited}}
"""


def cli_env(emulator: RunningEmulator, **extra: str) -> dict[str, str]:
    defaults = {"GES_RETENTION_BACKOFF_MAX_S": "0.05", "GES_RETENTION_REQUEST_TIMEOUT_S": "5"}
    return emulator_env(emulator.url, **(defaults | extra))


def expected_plan(store: Store, now: datetime, policy_text: str = POLICY) -> tuple[set[str], set[str]]:
    """(ids to delete, ids to keep) as the planner decides them over the emulator's current backups."""
    policy_file = parse_policy_text(policy_text)
    backups = [Backup.from_api(r) for r in store.backups(PROJECT)]
    plans = plan_file(policy_file.policies, policy_file.policies, lambda _p: backups, now)
    delete = {d.backup.id for p in plans for d in p.deletions}
    return delete, {b.id for b in backups} - delete
