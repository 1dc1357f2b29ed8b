"""Behaviour knobs: latency, the per-project rate limit, every kind of injected fault; and what the stats see."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from emulator_helpers import OTHER_PROJECT, PROJECT, TOKEN_HEADERS, FakeClock, call, ges_url

from ges_retention.emulator.app import EmulatorConfig, FaultRates, RunningEmulator, running_emulator
from ges_retention.emulator.store import Store


async def _statuses(session: aiohttp.ClientSession, url: str, n: int, *, concurrent: bool = True) -> list[int]:
    if concurrent:
        results = await asyncio.gather(*(call(session, "GET", url, headers=TOKEN_HEADERS) for _ in range(n)))
        return [r[0] for r in results]
    return [(await call(session, "GET", url, headers=TOKEN_HEADERS))[0] for _ in range(n)]


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def test_every_request_waits_the_latency(
    store: Store, config: EmulatorConfig, clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    # Through the sleep seam: which waits happen is asserted, not how long the test took.
    sleep = RecordingSleep()
    config.latency_ms = 250
    async with running_emulator(store, config, clock=clock, sleep=sleep) as emulator:
        statuses = await _statuses(session, ges_url(emulator, "/graphs"), 6)
        assert statuses == [200] * 6
        assert sleep.delays == [0.25] * 6
        emulator.config.latency_ms = 0
        await _statuses(session, ges_url(emulator, "/graphs"), 2)
    assert sleep.delays == [0.25] * 6


async def test_rate_limit_answers_429_with_the_gateways_body(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.config.rate_limit_per_s = 3
    emulator.config.tokens["other-token"] = OTHER_PROJECT
    results = await asyncio.gather(
        *(call(session, "GET", ges_url(emulator, "/graphs/backups"), headers=TOKEN_HEADERS) for _ in range(7))
    )
    assert sorted(r[0] for r in results) == [200] * 3 + [429] * 4
    for status, body, headers in results:
        if status == 429:
            assert body == {
                "error_msg": "The throttling threshold has been reached: policy user over ratelimit,limit:180,"
                "time:1 minute",
                "error_code": "APIGW.0308",
                "request_id": headers["X-Request-Id"],
            }
    # The limit is per project: another project is not throttled by this one's burst.
    other = await call(
        session, "GET", ges_url(emulator, "/graphs", OTHER_PROJECT), headers={"X-Auth-Token": "other-token"}
    )
    assert other[0] == 200
    assert emulator.stats.count("list_backups", 429) == 4


@pytest.mark.parametrize(("kind", "status", "code"), [("error_500", 500, "GES.0500"), ("error_503", 503, "GES.0503")])
async def test_error_faults_hit_only_their_operation(
    emulator: RunningEmulator, session: aiohttp.ClientSession, kind: str, status: int, code: str
) -> None:
    emulator.config.faults = {"delete_backup": FaultRates(**{kind: 1.0})}
    victim = emulator.store.backups(PROJECT)[-1]
    url = ges_url(emulator, f"/graphs/{victim['graph_id']}/backups/{victim['id']}")
    got, body, _ = await call(session, "DELETE", url, headers=TOKEN_HEADERS)
    assert (got, body["error_code"]) == (status, code)
    assert emulator.store.backup(PROJECT, victim["id"]) is not None  # the fault struck before the operation
    assert (await call(session, "GET", ges_url(emulator, "/graphs"), headers=TOKEN_HEADERS))[0] == 200
    assert emulator.stats.faults == {"delete_backup": {kind: 1}}


async def test_a_dropped_connection_gets_no_answer_and_deletes_nothing(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.config.faults = {"delete_backup": FaultRates(drop=1.0)}
    victim = emulator.store.backups(PROJECT)[-1]
    url = ges_url(emulator, f"/graphs/{victim['graph_id']}/backups/{victim['id']}")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(session, "DELETE", url, headers=TOKEN_HEADERS)
    assert emulator.store.backup(PROJECT, victim["id"]) is not None
    # aiohttp's client may retry an idempotent request once after a disconnect: each attempt was dropped.
    drops = emulator.stats.counts["delete_backup"]
    assert list(drops) == ["drop"]
    assert drops["drop"] in (1, 2)
    assert emulator.stats.faults == {"delete_backup": {"drop": drops["drop"]}}
    # The emulator itself is fine: the next request on a new connection is answered.
    assert (await call(session, "GET", ges_url(emulator, "/graphs"), headers=TOKEN_HEADERS))[0] == 200


async def test_a_hang_outlasts_the_client_timeout_and_ends_with_the_emulator(
    store: Store, config: EmulatorConfig, clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    config.faults = {"list_backups": FaultRates(hang=1.0)}
    config.hang_s = 60
    async with running_emulator(store, config, clock=clock) as emulator:
        with pytest.raises(TimeoutError):
            await call(
                session,
                "GET",
                ges_url(emulator, "/graphs/backups"),
                headers=TOKEN_HEADERS,
                timeout=aiohttp.ClientTimeout(total=0.2),
            )
        assert emulator.stats.faults == {"list_backups": {"hang": 1}}
    # Stopping the emulator released the hung request itself (a `drop`): neither hang_s (60 s) nor the server's own
    # shutdown timeout (2 s, after which it would cancel the handler: `cancelled`) was waited for.
    assert emulator.stats.counts["list_backups"] == {"drop": 1}


async def test_after_a_hang_the_normal_answer_comes(
    store: Store, config: EmulatorConfig, clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    sleep = RecordingSleep()
    config.faults = {"list_graphs": FaultRates(hang=1.0)}
    config.hang_s = 0.05
    async with running_emulator(store, config, clock=clock, sleep=sleep) as emulator:
        status, body, _ = await call(session, "GET", ges_url(emulator, "/graphs"), headers=TOKEN_HEADERS)
    assert (status, body["graph_count"]) == (200, 3)
    assert sleep.delays == [0.05]


async def test_faults_are_deterministic_given_the_seed(store: Store, session: aiohttp.ClientSession) -> None:
    sequences = []
    for _ in range(2):
        config = EmulatorConfig(seed=1234, faults={"list_graphs": FaultRates(error_500=0.3, error_503=0.3)})
        async with running_emulator(store, config) as emulator:
            sequences.append(await _statuses(session, ges_url(emulator, "/graphs"), 30, concurrent=False))
    assert sequences[0] == sequences[1]
    assert {200, 500, 503} == set(sequences[0])


async def test_stats_count_by_operation_and_status(emulator: RunningEmulator, session: aiohttp.ClientSession) -> None:
    victim = emulator.store.backups(PROJECT)[-1]
    url = ges_url(emulator, f"/graphs/{victim['graph_id']}/backups/{victim['id']}")
    await call(session, "DELETE", url, headers=TOKEN_HEADERS)
    await call(session, "DELETE", url, headers=TOKEN_HEADERS)
    await call(session, "GET", ges_url(emulator, "/graphs/backups"))
    await call(session, "GET", f"{emulator.url}/nowhere")
    await call(session, "GET", f"{emulator.url}/_emulator/config")  # the control API is not counted
    status, stats, _ = await call(session, "GET", f"{emulator.url}/_emulator/stats")
    assert status == 200
    assert stats["requests"] == {
        "delete_backup": {"200": 1, "400": 1},
        "list_backups": {"401": 1},
        "unknown": {"404": 1},
    }
    assert stats["total_requests"] == 4
    assert stats["deleted_ids"] == [victim["id"]]
    assert stats["deleted_count"] == 1
    assert stats["in_flight"] == 0
    assert stats["max_in_flight"] == 1
    assert stats["peak_rps"] == 4


async def test_peak_rps_counts_requests_within_one_second(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    await _statuses(session, ges_url(emulator, "/graphs"), 25, concurrent=False)
    assert emulator.stats.peak_rps == 25
    emulator.stats.reset()
    assert emulator.stats.peak_rps == 0
    await _statuses(session, ges_url(emulator, "/graphs"), 3)
    assert emulator.stats.peak_rps == 3
