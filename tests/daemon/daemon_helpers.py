"""Helpers for daemon tests: a daemon subprocess whose JSON log events can be awaited."""

from __future__ import annotations

from pathlib import Path

from ges_retention.emulator.app import RunningEmulator
from subprocess_env import emulator_env
from support.emulators import PROJECT
from support.processes import DaemonProcess

__all__ = ["POLICY", "PROJECT", "DaemonProcess", "start_daemon"]

POLICY = f"""\
version: 1
policies:
  - name: prod
    project_id: {PROJECT}
    schedule: "30 2 * * *"
    select: {{graphs: ["prod-*"]}}
    keep: {{last: 3, daily: 7}}
    safety: {{max_deletes: 1000, change_budget: unlimited}}
  - name: staging
    project_id: {PROJECT}
    select: {{graphs: ["staging-*"]}}
    keep: {{last: 2}}
    safety: {{change_budget: unlimited}}
"""


async def start_daemon(policy: Path, emulator: RunningEmulator, **extra: str) -> DaemonProcess:
    env = emulator_env(
        emulator.url,
        **{
            "GES_RETENTION_HTTP": "127.0.0.1:0",
            "GES_RETENTION_LOG_LEVEL": "info",
            # Shorter than the default 1 s so that a test's edits load sooner; the settling itself is the same.
            "GES_RETENTION_RELOAD_SETTLE_S": "0.2",
            **extra,
        },
    )
    return await DaemonProcess.start(str(policy), env)
