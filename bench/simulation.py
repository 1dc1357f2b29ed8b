"""Scenario 8, forecasting: `ges-retention simulate` of a full GFS policy, daily backups, two years (< 3 s).

Two measured children, pinned like every other scenario:
- `cli`: the real command (`python -m ges_retention simulate POLICY --days 730 --format json --svg FILE`), end to end
  with interpreter start and imports: its wall time is the figure held against the 3 s target;
- `inproc` (`python -m bench.simulation CHILD DAYS`): `simulate()`, the SVG and the JSON timed apart inside one
  process, to show where the time goes (and the planner calls per second of simulated runs).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.service import GFS_KEEP

__all__ = ["SIMULATION_POLICY", "run_simulation_scenario"]

# The full GFS keep of the other planning benchmarks (every rule, `within`, a pin), failed backups cleaned up, on
# the wall clock of a zone with DST; no schedule: runs daily at 03:00.
SIMULATION_POLICY: dict[str, Any] = {
    "version": 1,
    "policies": [
        {
            "name": "gfs",
            "project_id": "0a1b2c3d4e5f",
            "timezone": "Europe/Paris",
            "keep": GFS_KEEP,
            "failed": {"delete_after": "3d"},
            "safety": {"min_keep": 1, "max_deletes": 100},
        }
    ],
}
ARGS = ["--policy", "gfs", "--start", "2027-01-01", "--outage", "2027-06-01..2027-06-15", "--failure-rate", "0.05"]


def _child_inproc(days: int) -> dict[str, Any]:
    from ges_retention.policy_loading import parse_policy_text
    from ges_retention.simulate import Outage, Scenario, simulate
    from ges_retention.simulate_command import forecast_document, parse_cadence
    from ges_retention.svg import render_svg

    policy = parse_policy_text(json.dumps(SIMULATION_POLICY)).policies[0]
    tz = policy.tz
    scenario = Scenario(
        policy=policy,
        start=datetime(2027, 1, 1, tzinfo=tz),
        days=days,
        cadences=(parse_cadence("0 2 * * *@auto"),),
        failure_rate=0.05,
        outages=(Outage(datetime(2027, 6, 1, tzinfo=tz), datetime(2027, 6, 15, tzinfo=tz)),),
    )
    t0 = time.perf_counter()
    forecast = simulate(scenario)
    t1 = time.perf_counter()
    svg = render_svg(forecast, caption="bench")
    t2 = time.perf_counter()
    document = json.dumps(forecast_document(forecast), indent=2)
    t3 = time.perf_counter()
    return {
        "days": days,
        "runs": len(forecast.runs),
        "backups_created": len(forecast.created),
        "steady_state": forecast.steady_state,
        "simulate_s": round(t1 - t0, 3),
        "svg_s": round(t2 - t1, 3),
        "json_s": round(t3 - t2, 3),
        "ms_per_run": round(1000 * (t1 - t0) / max(1, len(forecast.runs)), 3),
        "svg_bytes": len(svg),
        "json_bytes": len(document),
    }


def run_simulation_scenario(*, days: int = 730) -> dict[str, Any]:
    from bench.machine import cpu_plan
    from bench.measure import run_child
    from bench.report import Target, scenario_result

    cpu = cpu_plan().measured
    with tempfile.TemporaryDirectory() as tmp:
        policy_path = Path(tmp) / "gfs.yaml"
        policy_path.write_text(json.dumps(SIMULATION_POLICY))  # JSON is YAML
        svg_path = Path(tmp) / "gfs.svg"
        command = [sys.executable, "-m", "ges_retention", "simulate", str(policy_path), *ARGS, "--days", str(days)]
        cli = run_child([*command, "--format", "json", "--svg", str(svg_path)], cpu=cpu, timeout_s=120)
        if cli.returncode != 0:
            raise RuntimeError(f"simulate exited {cli.returncode}")
        forecast = json.loads(cli.stdout)
        svg_bytes = svg_path.stat().st_size
    inproc_run = run_child([sys.executable, "-m", "bench.simulation", "inproc", str(days)], cpu=cpu, timeout_s=120)
    if inproc_run.returncode != 0:
        raise RuntimeError(f"simulation child exited {inproc_run.returncode}")
    inproc = json.loads(inproc_run.stdout)
    parameters = {
        "days": days,
        "policy": SIMULATION_POLICY["policies"][0],
        "arguments": ARGS,
        "measured": "the simulate command end to end (interpreter start, imports, simulation, JSON and SVG); "
        "simulate(), the SVG and the JSON timed apart in another child",
        "cpu": cpu,
    }
    figures = {
        "cli_wall_s": round(cli.wall_s, 3),
        "cli_cpu_s": round(cli.cpu_s, 3),
        "cli_peak_rss_mb": round(cli.max_rss_mb, 1),
        "steady_state": forecast["steady_state"],
        "safety_stops": forecast["safety_stops"],
        "svg_bytes": svg_bytes,
        "inproc": inproc,
    }
    scale = days / 730
    targets = [
        Target("cli_wall_s", figures["cli_wall_s"], "<=", round(3 * max(scale, 0.5), 3), f"simulate {days} days, s"),
    ]
    waited = max(cli.runqueue_wait_s, inproc_run.runqueue_wait_s)
    return scenario_result(parameters, figures, targets, disturbed=round(waited / max(1e-9, cli.wall_s), 4))


def main(argv: list[str]) -> int:
    print(json.dumps(_child_inproc(int(argv[1]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
