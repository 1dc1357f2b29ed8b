"""Scenario 4, listing: 100,000 backups across 1,000 graphs (the emulator's realistic seeding: daily automatic
backups, some manual, failed and running ones) listed and planned by the service with a full GFS policy.

Measured: `ges-retention run POLICY --dry-run` (lists, plans, logs every planned deletion, deletes nothing), at the
default page size (100) and at the API's largest (1000), with 10 ms emulator latency per page, concurrency 8 (pages
after the first are fetched 8 at a time). Figures: the listing and planning phases' seconds (from the log's
timestamps) and the service process's peak RSS. Targets (issue 17), at page size 100: listing + planning < 4 s
(14.2 s with sequential pages), peak RSS <= 135 MB.
"""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.emulator import running_emulator
from bench.machine import cpu_plan
from bench.report import Target, disturbance, least_disturbed, scenario_result
from bench.service import GFS_KEEP, measure_service, write_policy

__all__ = ["run_listing"]

CONCURRENCY = 8  # GES_RETENTION_CONCURRENCY: the listing's window of pages


def run_listing(
    *, graphs: int = 1000, per_graph: int = 100, latency_ms: float = 10.0, page_sizes: tuple[int, ...] = (100, 1000)
) -> dict[str, Any]:
    cpus = cpu_plan()
    parameters = {
        "backups": graphs * per_graph,
        "graphs": graphs,
        "emulator_latency_ms": latency_ms,
        "page_sizes": list(page_sizes),
        "policy": {"keep": GFS_KEEP, "failed": {"delete_after": "3d"}},
        "measured": "ges-retention run POLICY --dry-run (subprocess, JSON logs at info to a file)",
        "concurrency": CONCURRENCY,
        **cpus.to_json(),
    }
    runs: dict[str, dict[str, Any]] = {}
    with (
        running_emulator(cpu=cpus.emulator, latency_ms=latency_ms) as emulator,
        tempfile.TemporaryDirectory(prefix="bench-listing-") as tmp,
    ):
        emulator.reset(data=True)
        emulator.seed(graphs, per_graph, int(time.time() * 1000))
        total = emulator.backup_count()
        policy = write_policy(Path(tmp), emulator.project_id, keep=GFS_KEEP, max_deletes=10_000_000, failed_after="3d")
        for page_size in page_sizes:
            runs[f"page_size_{page_size}"] = least_disturbed(
                functools.partial(
                    measure_service,
                    emulator,
                    policy,
                    cpu=cpus.measured,
                    concurrency=CONCURRENCY,
                    rate_limit=0,
                    page_size=page_size,
                    dry_run=True,
                )
            )
    figures: dict[str, Any] = {"backups_in_emulator": total}
    for name, run in runs.items():
        figures[name] = {
            "listing_s": run.get("listing_s"),
            "planning_and_plan_logging_s": run.get("planning_and_plan_logging_s"),
            "planning_s": run.get("planning_s"),
            "plan_logging_s": run.get("plan_logging_s"),
            "list_and_plan_s": round(run.get("listing_s", 0) + run.get("planning_and_plan_logging_s", 0), 3),
            "run_duration_s": run.get("run_duration_s"),
            "process_wall_s": run.get("process_wall_s"),
            "peak_rss_mb": run.get("process_max_rss_mb"),
            "listed": run.get("listed"),
            "planned": run.get("planned"),
            "pages": sum(run["emulator"]["requests"].get("list_backups", {}).values()),
        }
    figures["runs"] = runs
    targets = [
        Target(
            f"listed_all_{name}",
            1.0 if run.get("listed") == total else 0.0,
            ">=",
            1,
            f"every one of the {total} backups listed",
        )
        for name, run in runs.items()
    ]
    default = figures.get("page_size_100")
    if default is not None:
        targets += [
            Target(
                "list_and_plan_s_page_size_100",
                default["list_and_plan_s"],
                "<=",
                4,
                f"listing + planning {total} backups, page size 100, seconds",
            ),
            Target("peak_rss_mb_page_size_100", default["peak_rss_mb"], "<=", 135, "peak RSS of the run, MB"),
        ]
    return scenario_result(parameters, figures, targets, disturbed=disturbance(*runs.values()))
