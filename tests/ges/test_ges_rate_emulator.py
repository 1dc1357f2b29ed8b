"""`GES_RETENTION_RATE_LIMIT=auto` against the emulator's rate gate (a limit per sliding second the client is not
told), on 127.0.0.1: the adaptive pacer finds the limit and settles below it with few 429s. Bounded: 150 deletions.
Counts are asserted, never durations (the bench measures the rate)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from ges_retention.emulator.app import running_emulator
from ges_retention.emulator.config import DEFAULT_AK, DEFAULT_SK
from ges_retention.emulator.store import Store
from ges_retention.ges.auth import AkSkAuth
from ges_retention.ges.client import ClientConfig, GesClient
from ges_retention.ges.pacing import AdaptivePacer, AutoRate
from support.emulators import PROJECT, seeded_config

LIMIT_PER_S = 50
DELETIONS = 150


async def test_the_adaptive_pacer_settles_below_an_untold_limit() -> None:
    store = Store()
    now_ms = int(time.time() * 1000)
    graph = store.add_graph(PROJECT, name="g", graph_id="g1")["id"]
    targets = [
        (graph, store.add_backup(PROJECT, {"graph_id": graph, "start_timestamp": now_ms - i * 60_000})["id"])
        for i in range(DELETIONS)
    ]
    config = seeded_config()
    config.rate_limit_per_s = LIMIT_PER_S
    async with running_emulator(store=store, config=config) as emulator, aiohttp.ClientSession() as session:
        # Starts just under the limit, so that the test finds it within a fraction of a second.
        client_config = ClientConfig(concurrency=16, max_attempts=10, auto_rate=AutoRate(40, 1000))
        client = GesClient(session, client_config)
        project = client.project(emulator.url, PROJECT, AkSkAuth(DEFAULT_AK, DEFAULT_SK, PROJECT))
        results = await asyncio.gather(*(project.delete_backup(graph, backup) for graph, backup in targets))
        pacer = project.pacer
    assert isinstance(pacer, AdaptivePacer)
    assert {r.outcome for r in results} <= {"deleted", "already_deleted"}
    assert len(results) == DELETIONS
    refused = emulator.stats.count("delete_backup", 429)
    sent = emulator.stats.count("delete_backup")
    assert 1 <= refused <= 0.1 * sent  # it found the limit, and paid little for it
    ceiling = pacer.control.ceiling
    assert ceiling is not None and 0.6 * LIMIT_PER_S <= ceiling <= 1.1 * LIMIT_PER_S
    assert pacer.rate <= LIMIT_PER_S
