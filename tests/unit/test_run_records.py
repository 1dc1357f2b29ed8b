"""The daemon's memory of runs: bounded, never forgetting a running run, each policy's last run; digests."""

from __future__ import annotations

from datetime import UTC, datetime

from ges_retention.run_records import MemoryChangeDigests, RunRecords

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def summary(*outcomes: tuple[str, str]) -> dict[str, object]:
    return {"outcome": "ok", "policies": [{"policy": name, "outcome": outcome} for name, outcome in outcomes]}


def test_a_run_is_running_then_finished_with_its_summary() -> None:
    records = RunRecords()
    records.start("r1", "http", ["a", "b"], T0)
    assert records.get("r1") is not None and records.get("r1").to_json()["status"] == "running"  # type: ignore[union-attr]
    records.finish("r1", summary(("a", "ok"), ("b", "safety_stop")), T0)
    view = records.get("r1").to_json()  # type: ignore[union-attr]
    assert (view["status"], view["finished_at"], view["summary"]["outcome"]) == (
        "finished",
        "2026-12-01T12:00:00Z",
        "ok",
    )
    assert "counts" not in view
    assert records.last_for("b") == {"run_id": "r1", "outcome": "safety_stop", "finished_at": "2026-12-01T12:00:00Z"}
    assert records.last_for("c") is None


def test_old_finished_runs_are_forgotten_running_ones_never() -> None:
    records = RunRecords(limit=3)
    records.start("running", "schedule", ["a"], T0)
    for i in range(10):
        records.start(f"r{i}", "http", ["b"], T0)
        records.finish(f"r{i}", summary(("b", "ok")), T0)
    assert records.get("running") is not None
    assert [r for r in ("r6", "r7", "r8", "r9") if records.get(r) is not None] == ["r8", "r9"]


def test_a_crashed_run_is_recorded_as_such() -> None:
    records = RunRecords()
    records.start("r1", "signal", ["a"], T0)
    records.crash("r1", "RuntimeError: boom", T0)
    assert records.get("r1").to_json()["error"] == "RuntimeError: boom"  # type: ignore[union-attr]
    assert records.last_for("a")["outcome"] == "crashed"  # type: ignore[index]


async def test_change_digests_are_kept_per_key() -> None:
    digests = MemoryChangeDigests()
    key = ("a", "https://ges.example", "p1")
    assert await digests.last(key) is None
    await digests.record(key, "d1", "run-1")
    assert await digests.last(key) == "d1" and await digests.last(("a", "https://other", "p1")) is None
