"""End-to-end helpers: run the real CLI against an in-process emulator, and the plan it should carry out."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ges_retention.backup import Backup
from ges_retention.emulator.app import RunningEmulator
from ges_retention.emulator.store import Store
from ges_retention.policy_loading import parse_policy_text
from ges_retention.retention import plan_file
from subprocess_env import emulator_env

PROJECT = "0a1b2c3d4e5f"

POLICY = f"""\
version: 1
policies:
  - name: prod
    project_id: {PROJECT}
    select: {{graphs: ["prod-*"]}}
    keep: {{last: 3, daily: 7, weekly: 4, monthly: 12, names: ["*-golden"]}}
    failed: {{delete_after: 3d}}
    safety: {{max_deletes: 1000}}
  - name: staging
    project_id: {PROJECT}
    select: {{graphs: ["staging-*"]}}
    keep: {{last: 2, within: 7d}}
    safety: {{max_deletes: 1000}}
"""


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if name is None or event.get("event") == name:
                    out.append(event)
        return out


def cli_env(emulator: RunningEmulator, **extra: str) -> dict[str, str]:
    return emulator_env(emulator.url, GES_RETENTION_BACKOFF_MAX_S="0.05", GES_RETENTION_REQUEST_TIMEOUT_S="5", **extra)


async def start_cli(args: list[str], env: Mapping[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ges_retention",
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_cli(args: list[str], env: Mapping[str, str], timeout_s: float = 60) -> CliResult:
    """Run the real CLI in a subprocess while this loop keeps serving the emulator."""
    proc = await start_cli(args, env)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return CliResult(proc.returncode, stdout.decode(), stderr.decode())


def expected_plan(store: Store, now: datetime, policy_text: str = POLICY) -> tuple[set[str], set[str]]:
    """(ids to delete, ids to keep) as the planner decides them over the emulator's current backups."""
    policy_file = parse_policy_text(policy_text)
    backups = [Backup.from_api(r) for r in store.backups(PROJECT)]
    plans = plan_file(policy_file.policies, policy_file.policies, lambda _p: backups, now)
    delete = {d.backup.id for p in plans for d in p.deletions}
    return delete, {b.id for b in backups} - delete


async def wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    """Wait until `predicate()` holds, checking on the loop's turns; bounded."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not predicate():
        if loop.time() > end:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)
