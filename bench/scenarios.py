"""The scenarios by name, with their full and quick sizes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.auto_rate import run_auto_rate
from bench.cold_start import run_cold_start
from bench.cpu_per_delete import run_cpu_per_delete
from bench.emulator_seeding import run_emulator_seeding
from bench.journal import run_journal
from bench.listing import run_listing
from bench.planning import run_planning_scenario
from bench.rate_limit import run_rate_limit
from bench.simulation import run_simulation_scenario
from bench.unthrottled import run_unthrottled
from bench.zero_latency import run_zero_latency

__all__ = ["SCENARIOS", "Scenario"]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    run: Callable[..., dict[str, Any]]
    full: dict[str, Any]
    quick: dict[str, Any]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "rate_limit",
            "1. throughput at a rate limit (5,000 deletions, 50 ms, 200/s client, 220/s emulator limit)",
            run_rate_limit,
            full={"deletions": 5000},
            quick={"deletions": 1000},
        ),
        Scenario(
            "unthrottled",
            "2, 3, 6. unthrottled service vs the official SDK and the bare aiohttp ceiling (10 ms, 64 in flight)",
            run_unthrottled,
            full={"deletions": 20_000, "sdk_loop_sample": 2_000, "sdk_async_sample": 5_000},
            quick={"deletions": 5_000, "sdk_loop_sample": 300, "sdk_async_sample": 1_000},
        ),
        Scenario(
            "zero_latency",
            "2b. 64 in flight, no rate limit, zero latency: >= 2,000 deletes/s",
            run_zero_latency,
            full={"deletions": 20_000},
            quick={"deletions": 5_000},
        ),
        Scenario(
            "listing",
            "4. listing and planning 100,000 backups across 1,000 graphs",
            run_listing,
            full={"graphs": 1000, "per_graph": 100},
            quick={"graphs": 200, "per_graph": 100},
        ),
        Scenario(
            "planning",
            "5. plan() over 1,000,000 backups across 10,000 graphs, full GFS policy",
            run_planning_scenario,
            full={"graphs": 10_000, "per_graph": 100},
            quick={"graphs": 1_000, "per_graph": 100},
        ),
        Scenario(
            "emulator_seeding",
            "7. the emulator seeds 100,000 backups across 1,000 graphs: <= 5 s",
            run_emulator_seeding,
            full={"graphs": 1000, "per_graph": 100},
            quick={"graphs": 200, "per_graph": 100},
        ),
        Scenario(
            "simulation",
            "8. simulate a full GFS policy, daily backups, 730 days, with an outage: < 3 s end to end",
            run_simulation_scenario,
            full={"days": 730},
            quick={"days": 365},
        ),
        Scenario(
            "journal",
            "10. write-ahead journal: SQLite file >= 0.85 of :memory: (64 in flight, zero latency); PostgreSQL too",
            run_journal,
            full={"deletions": 20_000},
            quick={"deletions": 5_000},
        ),
        Scenario(
            "cold_start",
            "9. cold start: --version < 0.15 s, validate < 0.35 s (median of 5 fresh processes; python -c pass too)",
            run_cold_start,
            full={"runs": 5},
            quick={"runs": 3},
        ),
        Scenario(
            "auto_rate",
            "11. auto rate, untold limit L in 50, 150, 400/s: 6,000 deletions >= 0.8 L after 10 s, 429s <= 2%; "
            "a second run starts >= 0.75 L",
            run_auto_rate,
            full={"deletions": 6000},
            quick={"deletions": 1500, "limits": (150, 400)},
        ),
        Scenario(
            "cpu_per_delete",
            "12. CPU per delete, nothing pinned: >= 0.85 of the bare aiohttp loop's rate, <= 1.3x its CPU per delete",
            run_cpu_per_delete,
            full={"deletions": 20_000, "rounds": 4},
            quick={"deletions": 5_000, "rounds": 1},
        ),
    )
}
