"""Crash consistency: `ges-retention run` killed with SIGKILL at random points (seeded), each time followed by a clean
run: the final state always equals what one clean run leaves, and the killed run never deleted a kept backup.

Each kill starts from the same fresh data set. A kill point is a number of deletions the emulator has done (0: while
the listing is being read); the run is slowed down by the emulator's latency so that the kill lands mid-run.
"""

from __future__ import annotations

import asyncio
import functools
import random
import signal
from datetime import UTC, datetime

import pytest
from reliability_helpers import (
    SK,
    CliResult,
    base_env,
    expected_plan,
    finish_cli,
    note,
    record,
    run_cli,
    start_cli,
    wait_for,
    write_file,
)

from ges_retention.emulator.app import RunningEmulator, running_emulator
from ges_retention.emulator.config import DEFAULT_AK, AccessKey, EmulatorConfig
from ges_retention.emulator.store import Store

PROJECT = "0d5e6f7a8b9c"
POLICY = f"""\
version: 1
policies:
  - name: crash
    project_id: {PROJECT}
    keep: {{last: 2, daily: 5, weekly: 3, monthly: 2}}
    safety: {{max_deletes: 100000, change_budget: unlimited}}
"""
KILL_SEED = 20240917

SIZES = [
    pytest.param(4, 150, 3, id="3-kills"),
    pytest.param(6, 300, 10, id="10-kills", marks=[pytest.mark.slow, pytest.mark.timeout(300)]),
]


def current_ids(emulator: RunningEmulator) -> set[str]:
    return {r["id"] for r in emulator.store.backups(PROJECT)}


def _listed_or_done(emulator: RunningEmulator, output: asyncio.Task[CliResult]) -> bool:
    return emulator.stats.count("list_backups") >= 1 or output.done()


def _deleted_or_done(emulator: RunningEmulator, output: asyncio.Task[CliResult], point: int) -> bool:
    return len(emulator.stats.deleted_ids) >= point or output.done()


@pytest.mark.parametrize(("graphs", "per_graph", "kills"), SIZES)
async def test_kill_9_at_random_points_then_a_clean_run_equals_one_clean_run(
    graphs: int, per_graph: int, kills: int
) -> None:
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    write_file("policy.yaml", POLICY)
    config = EmulatorConfig(project_ids=[PROJECT], access_keys=[AccessKey(DEFAULT_AK, SK, PROJECT)], tokens={})

    def fresh_data(emulator: RunningEmulator) -> None:
        emulator.reset(data=True)
        emulator.store.seed(PROJECT, graphs=graphs, backups_per_graph=per_graph, now_ms=now_ms, seed=3)
        emulator.config.latency_ms = 0

    async with running_emulator(store=Store(), config=config) as emulator:
        env = base_env(
            GES_RETENTION_ENDPOINT=emulator.url,
            GES_RETENTION_AK=DEFAULT_AK,
            GES_RETENTION_SK=SK,
            GES_RETENTION_RATE_LIMIT="0",
            GES_RETENTION_CONCURRENCY="4",
            GES_RETENTION_PAGE_SIZE="100",
            GES_RETENTION_BACKOFF_MAX_S="0.05",
            GES_RETENTION_REQUEST_TIMEOUT_S="5",
        )
        # The data set (the same each time: seeding is deterministic) and its plan, computed once.
        fresh_data(emulator)
        start = current_ids(emulator)
        delete, keep, _ = expected_plan(emulator.store.backups(PROJECT), POLICY, now)
        assert len(delete) > 300 and len(keep) > 20

        # The reference: one clean run.
        reference = await run_cli(["run", "policy.yaml"], env)
        assert reference.code == 0, reference.stderr[-2000:]
        clean_state = current_ids(emulator)
        assert clean_state == keep

        rng = random.Random(KILL_SEED)
        points = [0, *sorted(rng.randrange(1, int(0.9 * len(delete))) for _ in range(kills - 1))]
        note(f"crash {kills} kills: kill points (deletions done; 0 = while listing)", points)
        for point in points:
            fresh_data(emulator)
            assert current_ids(emulator) == start
            emulator.config.latency_ms = 4  # slow enough for the kill to land mid-run
            proc = await start_cli(["run", "policy.yaml"], env)
            # Its output is read all along: a full pipe would stall the run (and hide its exit).
            output = asyncio.create_task(finish_cli(proc, timeout_s=120))
            if point == 0:
                await wait_for(functools.partial(_listed_or_done, emulator, output), 30)
            else:
                await wait_for(functools.partial(_deleted_or_done, emulator, output, point), 60)
            if not output.done():
                proc.send_signal(signal.SIGKILL)
            killed = await output
            assert killed.code == -signal.SIGKILL, f"the run ended before the kill at {point}"
            emulator.config.latency_ms = 0
            killed_deleted = set(emulator.stats.deleted_ids)
            record("crash: runs killed with SIGKILL")
            assert not killed_deleted & keep, "the killed run deleted a kept backup"
            assert keep < current_ids(emulator), f"the kill at {point} landed mid-run"

            clean = await run_cli(["run", "policy.yaml", "--format", "json"], env)

            assert clean.code == 0, clean.stderr[-2000:]
            assert current_ids(emulator) == clean_state, f"the state after a kill at {point} and a clean run"
            assert not set(emulator.stats.deleted_ids) & keep
            record("crash: kill + clean run == one clean run")
