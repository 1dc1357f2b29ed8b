"""Learned rates kept in the journal: a round trip through a real SQLite state (directly, and through the service's
wiring across two `Service` lifetimes), and a failing store that costs only a slower start."""

from __future__ import annotations

from pathlib import Path

from ges_retention.ges.pacing import AdaptivePacer, Pacing
from ges_retention.rate_memory import StateRateMemory
from ges_retention.service import GesBackupApi, Service
from ges_retention.settings import Settings
from ges_retention.state import StateLocation, open_store
from support.logs import capture_events

ENDPOINT = "https://ges.example"


async def test_a_learned_rate_survives_the_process(tmp_path: Path) -> None:
    location = StateLocation(kind="sqlite", path=tmp_path / "state.db", display=str(tmp_path / "state.db"))
    store = await open_store(location, mode="create")
    assert store is not None
    memory = StateRateMemory(store)
    assert await memory.learned_rate(ENDPOINT, "p1") is None
    with capture_events() as events:
        memory.on_learned(ENDPOINT, "p1", 120.0)
        memory.on_learned(ENDPOINT, "p1", 123.4567)  # written in order: the newest wins
        memory.on_learned(ENDPOINT, "p2", 40.0)
        await memory.close()
    await store.close()
    assert [e["rate_per_s"] for e in events if e["event"] == "rate_learned"] == [120.0, 123.457, 40.0]

    reopened = await open_store(location, mode="existing")
    assert reopened is not None
    again = StateRateMemory(reopened)
    assert await again.learned_rate(ENDPOINT, "p1") == 123.457
    assert await again.learned_rate(ENDPOINT, "p2") == 40.0
    assert await again.learned_rate("https://other.example", "p1") is None  # keyed by (endpoint, project)
    await reopened.close()


class BrokenStore:
    async def get_rate(self, endpoint: str, project_id: str) -> float | None:
        raise OSError("disk I/O error")

    async def put_rate(self, endpoint: str, project_id: str, rate_per_s: float) -> None:
        raise OSError("disk full")


async def test_a_failing_state_is_a_warning_not_a_failed_run() -> None:
    memory = StateRateMemory(BrokenStore())
    with capture_events() as events:
        assert await memory.learned_rate(ENDPOINT, "p1") is None
        memory.on_learned(ENDPOINT, "p1", 50.0)
        await memory.close()
    failures = [e for e in events if e["event"] == "rate_memory_failed"]
    assert [(e["log_level"], e["error"]) for e in failures] == [("warning", "disk I/O error"), ("warning", "disk full")]


def _auto_pacing(service: Service) -> Pacing:
    runner = service.runner
    assert runner is not None and isinstance(runner.api, GesBackupApi)
    return runner.api.client.pacing


async def test_the_service_keeps_learned_rates_in_its_state_across_processes(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        token="t",
        endpoint=ENDPOINT,
        rate_limit="auto",
        rate_start=10,
        rate_max=500,
        state=str(tmp_path / "state.db"),
    )
    first = Service(settings, state_mode="create")
    async with first:
        auto = _auto_pacing(first).auto
        assert auto is not None and auto.memory is not None
        auto.memory.on_learned(ENDPOINT, "p1", 180.0)  # what a pacer does once it held 180/s for 10 s
    # Written before the state closed; a new process starts at 0.8 of it.
    second = Service(settings, state_mode="existing")
    async with second:
        pacer = _auto_pacing(second).pacer(ENDPOINT, "p1")
        assert isinstance(pacer, AdaptivePacer)
        await pacer.acquire()
        assert pacer.rate == 144.0
        assert pacer.control.ceiling == 180.0
        other = _auto_pacing(second).pacer(ENDPOINT, "p2")
        await other.acquire()
        assert other.rate == 10.0  # nothing learned for that project: RATE_START


async def test_without_auto_no_memory_is_wired(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, token="t", endpoint=ENDPOINT, state=str(tmp_path / "state.db"))
    service = Service(settings, state_mode="create")
    async with service:
        assert _auto_pacing(service).auto is None
