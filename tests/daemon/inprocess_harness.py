"""The in-process daemon harness: a daemon in this process against a seeded emulator, its settle period through
a seam, and a bounded wait for captured log events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ges_retention.daemon import Daemon
from ges_retention.emulator.app import RunningEmulator
from ges_retention.emulator.config import DEFAULT_AK, DEFAULT_SK
from ges_retention.metrics import Metrics
from ges_retention.policy_loading import PolicyFile, parse_policy_text
from ges_retention.service import Service
from ges_retention.settings import Settings
from support.emulators import seeded_emulator
from support.logs import EventLog

PROJECT = "0a1b2c3d4e5f"


def policy_text(*, prod_schedule: str = "30 2 * * *", staging_schedule: str | None = None, extra: str = "") -> str:
    staging = f'    schedule: "{staging_schedule}"\n' if staging_schedule else ""
    return f"""\
version: 1
policies:
  - name: prod
    project_id: {PROJECT}
    schedule: "{prod_schedule}"
    select: {{graphs: ["prod-*"]}}
    keep: {{last: 3, daily: 7, names: ["*-golden"]}}
    safety: {{max_deletes: 1000, change_budget: unlimited}}
  - name: staging
    project_id: {PROJECT}
{staging}    select: {{graphs: ["staging-*"]}}
    keep: {{last: 2}}
    safety: {{max_deletes: 1000, change_budget: unlimited}}
{extra}"""


@dataclass
class Harness:
    daemon: Daemon
    emulator: RunningEmulator
    path: Path
    metrics: Metrics
    settle_hooks: list[Callable[[], object]]

    def graph_backups(self, prefix: str) -> list[dict[str, Any]]:
        return [b for b in self.emulator.store.backups(PROJECT) if b["graph_name"].startswith(prefix)]

    async def settle(self) -> None:
        """Wait (bounded) until no run is in progress."""
        async with asyncio.timeout(20):
            while self.daemon.tasks:
                await asyncio.gather(*list(self.daemon.tasks), return_exceptions=True)


def make_settings(url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "endpoint": url,
        "ak": DEFAULT_AK,
        "sk": DEFAULT_SK,
        "rate_limit": 0,
        "http": "127.0.0.1:0",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def running_harness(
    tmp_path: Path,
    text: str | None = None,
    *,
    path: Path | None = None,
    parse: Callable[..., PolicyFile] = parse_policy_text,
    **settings: Any,
) -> AsyncIterator[Harness]:
    """A daemon in this process against a seeded emulator. The settle period runs through a seam: each wait of it
    runs the next hook of `settle_hooks` (if any) instead of sleeping, so a test decides what changes between the
    two reads of a settle."""
    if path is None:  # else the caller laid the file out (a symlink farm, say)
        path = tmp_path / "policy.yaml"
        path.write_text(policy_text() if text is None else text)
    hooks: list[Callable[[], object]] = []

    async def settle_wait(_seconds: float) -> bool:
        await asyncio.sleep(0)
        if hooks:
            hooks.pop(0)()
        return False

    async with seeded_emulator() as emulator:
        values = make_settings(emulator.url, **settings)
        metrics = Metrics()
        service = Service(values, metrics=metrics)
        async with service as runner:
            daemon = Daemon(
                path,
                values,
                runner,
                metrics=metrics,
                authenticated=service.readiness.authenticated,
                watch_interval_s=0.02,
                parse=parse,
                settle_wait=settle_wait,
            )
            assert await daemon.start()
            try:
                yield Harness(daemon, emulator, path, metrics, hooks)
            finally:
                await daemon.stop()


async def wait_for_event(logs: EventLog, name: str, timeout_s: float = 10.0, *, count: int = 1) -> None:
    """Until `count` events `name` were captured (`support.logs.capture_events`), bounded."""
    await logs.wait(name, count, timeout_s)
