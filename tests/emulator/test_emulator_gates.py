"""The gates: latency and hangs through a sleep seam (no real waits), the hold gate in process and over the control
API, the `repeat` listing fault against the real client, and the case-insensitive signature scheme."""

from __future__ import annotations

import asyncio
import random

import aiohttp
import pytest
from emulator_helpers import PROJECT, TOKEN_HEADERS, call, ges_url, signed_headers

from ges_retention.emulator.app import EmulatorConfig, FaultRates, RunningEmulator, running_emulator
from ges_retention.emulator.gates import Dropped, Gates
from ges_retention.emulator.stats import Stats
from ges_retention.emulator.store import Store
from ges_retention.ges.auth import TokenAuth
from ges_retention.ges.client import ClientConfig, GesClient
from ges_retention.ges.errors import ListingError

CONTROL = "/_emulator/holds"


class RecordingSleep:
    """A sleep that records its delays and returns at once (or, with `block`, until cancelled)."""

    def __init__(self, *, block: bool = False) -> None:
        self.delays: list[float] = []
        self.block = block
        self.entered = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.entered.set()
        if self.block:
            await asyncio.Event().wait()


def _gates(config: EmulatorConfig, sleep: RecordingSleep) -> Gates:
    return Gates(config, random.Random(3), Stats(), sleep=sleep)


# --------------------------------------------------------------------------------------------------------------------
# Latency and hangs, on a sleep seam


async def test_latency_and_jitter_go_through_the_sleep_seam() -> None:
    sleep = RecordingSleep()
    config = EmulatorConfig(latency_ms=20, latency_jitter_ms=30)
    gates = _gates(config, sleep)
    for _ in range(50):
        await gates.latency()
    assert len(sleep.delays) == 50
    assert all(0.02 <= d <= 0.05 for d in sleep.delays)
    assert len(set(sleep.delays)) > 1  # the jitter is drawn per request
    config.latency_ms = config.latency_jitter_ms = 0
    await gates.latency()
    assert len(sleep.delays) == 50  # no latency, no sleep at all


async def test_a_hang_lasts_hang_s_then_the_normal_answer_comes() -> None:
    sleep = RecordingSleep()
    config = EmulatorConfig(hang_s=7, faults={"list_graphs": FaultRates(hang=1.0)})
    gates = _gates(config, sleep)
    await gates.fault("list_graphs")  # returns: the operation then answers normally
    assert sleep.delays == [7]
    assert gates.stats.faults == {"list_graphs": {"hang": 1}}


async def test_a_hang_ends_without_an_answer_when_the_emulator_stops() -> None:
    sleep = RecordingSleep(block=True)
    gates = _gates(EmulatorConfig(hang_s=60, faults={"list_graphs": FaultRates(hang=1.0)}), sleep)
    hung = asyncio.create_task(gates.fault("list_graphs"))
    await asyncio.wait_for(sleep.entered.wait(), 5)
    await gates.stop()
    with pytest.raises(Dropped):
        await asyncio.wait_for(hung, 5)


# --------------------------------------------------------------------------------------------------------------------
# The hold gate, in process


async def test_held_requests_wait_until_released_one_by_one_or_all() -> None:
    gates = _gates(EmulatorConfig(), RecordingSleep())
    holds = gates.holds
    await holds.passage("delete_backup")  # not held: goes at once
    await holds.hold("delete_backup")
    passed: list[int] = []

    async def request(i: int) -> None:
        await holds.passage("delete_backup")
        passed.append(i)

    tasks = [asyncio.create_task(request(i)) for i in range(4)]
    await asyncio.wait_for(holds.wait_until_waiting("delete_backup", 4), 5)
    await holds.passage("list_backups")  # another operation is not held
    assert passed == []
    await holds.release("delete_backup", 1)
    done, _ = await asyncio.wait(tasks, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1 and len(passed) == 1
    assert holds.state("delete_backup").to_json() == {"holding": True, "waiting": 3, "released": 1}
    await holds.unhold("delete_backup")
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert sorted(passed) == [0, 1, 2, 3]
    assert holds.to_json() == {"delete_backup": {"holding": False, "waiting": 0, "released": 4}}


async def test_stopping_drops_the_held_requests() -> None:
    gates = _gates(EmulatorConfig(), RecordingSleep())
    await gates.holds.hold("iam_token")
    held = asyncio.create_task(gates.holds.passage("iam_token"))
    await asyncio.wait_for(gates.holds.wait_until_waiting("iam_token", 1), 5)
    await gates.stop()
    with pytest.raises(Dropped):
        await asyncio.wait_for(held, 5)


# --------------------------------------------------------------------------------------------------------------------
# The hold gate over HTTP


async def test_overlapping_requests_made_with_the_hold_gate(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    control = emulator.url + CONTROL
    status, body, _ = await call(session, "PUT", f"{control}/list_graphs")
    assert (status, body) == (200, {"holding": True, "waiting": 0, "released": 0})
    requests = [
        asyncio.create_task(call(session, "GET", ges_url(emulator, "/graphs"), headers=TOKEN_HEADERS)) for _ in range(6)
    ]
    # Wait on the event (a long poll), not on time: all six are in flight together.
    status, body, _ = await call(session, "GET", f"{control}/list_graphs?waiting=6&timeout_s=10")
    assert (status, body) == (200, {"holding": True, "waiting": 6, "released": 0})
    assert emulator.stats.in_flight == 6
    assert not any(task.done() for task in requests)
    status, body, _ = await call(session, "POST", f"{control}/list_graphs/release", json={"count": 2})
    assert status == 200 and body["holding"]
    status, body, _ = await call(session, "GET", f"{control}/list_graphs?waiting=4&timeout_s=10")
    assert status == 200
    status, body, _ = await call(session, "DELETE", f"{control}/list_graphs")
    assert (status, body["holding"]) == (200, False)
    results = await asyncio.wait_for(asyncio.gather(*requests), 10)
    assert [r[0] for r in results] == [200] * 6
    assert emulator.stats.max_in_flight == 6
    assert emulator.stats.in_flight == 0
    status, body, _ = await call(session, "GET", control)
    assert body == {"list_graphs": {"holding": False, "waiting": 0, "released": 6}}


async def test_the_hold_control_api_refuses_bad_requests_and_times_out_waiting(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    control = emulator.url + CONTROL
    status, body, _ = await call(session, "PUT", f"{control}/delete_everything")
    assert (status, body["error_code"]) == (404, "EMULATOR.0001")
    assert "unknown operation" in body["error_msg"].lower()
    for bad in ({"count": 0}, {"count": "1"}, {"other": 1}):
        status, body, _ = await call(session, "POST", f"{control}/delete_backup/release", json=bad)
        assert status == 400, bad
    for query in ("waiting=-1", "timeout_s=61", "timeout_s=x"):
        status, _, _ = await call(session, "GET", f"{control}/delete_backup?{query}")
        assert status == 400, query
    await call(session, "PUT", f"{control}/delete_backup")
    status, body, _ = await call(session, "GET", f"{control}/delete_backup?waiting=1&timeout_s=0")
    assert status == 408
    assert body["error_msg"] == "0 delete_backup requests wait, not 1, after 0 s."


async def test_stopping_the_emulator_drops_held_requests(
    store: Store, config: EmulatorConfig, session: aiohttp.ClientSession
) -> None:
    async with running_emulator(store, config) as emulator:
        await emulator.holds.hold("list_backups")
        held = asyncio.create_task(call(session, "GET", ges_url(emulator, "/graphs/backups"), headers=TOKEN_HEADERS))
        await asyncio.wait_for(emulator.holds.wait_until_waiting("list_backups", 1), 10)
    # Released by the shutdown itself (a drop), not cancelled after the server's shutdown timeout.
    with pytest.raises(aiohttp.ClientError):
        await asyncio.wait_for(held, 10)
    assert emulator.stats.count("list_backups", "drop") == 1


# --------------------------------------------------------------------------------------------------------------------
# The `repeat` fault: a server that repeats itself, against the real client


async def test_a_listing_that_repeats_its_first_page_is_stopped_by_the_client(emulator: RunningEmulator) -> None:
    emulator.config.faults = {"list_backups": FaultRates(repeat=1.0)}
    async with aiohttp.ClientSession() as session:
        client = GesClient(session, ClientConfig(page_size=10, rate_limit_per_s=0))
        project = client.project(emulator.url, PROJECT, TokenAuth(TOKEN_HEADERS["X-Auth-Token"]))
        with pytest.raises(ListingError) as caught:
            await project.list_backups()
    assert caught.value.reason == "repeating"
    assert "36 reported" in str(caught.value)
    # The window after the first page (the 3 pages the 26 others need) repeated it: paging stopped there, not at the
    # run deadline.
    assert emulator.stats.count("list_backups") == 4
    assert emulator.stats.faults == {"list_backups": {"repeat": 4}}


async def test_without_the_fault_the_same_listing_is_complete(emulator: RunningEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        client = GesClient(session, ClientConfig(page_size=10, rate_limit_per_s=0))
        project = client.project(emulator.url, PROJECT, TokenAuth(TOKEN_HEADERS["X-Auth-Token"]))
        listing = await project.list_backups()
    assert (listing.complete, len(listing.records), listing.pages) == (True, 36, 4)


# --------------------------------------------------------------------------------------------------------------------
# RFC 7235: the scheme name is case-insensitive


@pytest.mark.parametrize("scheme", ["SDK-HMAC-SHA256", "sdk-hmac-sha256", "Sdk-Hmac-Sha256"])
async def test_the_signature_scheme_is_case_insensitive(
    emulator: RunningEmulator, session: aiohttp.ClientSession, scheme: str
) -> None:
    url = ges_url(emulator, "/graphs")
    headers = signed_headers("GET", url)
    headers["Authorization"] = scheme + headers["Authorization"].removeprefix("SDK-HMAC-SHA256")
    status, _, _ = await call(session, "GET", url, headers=headers)
    assert status == 200
