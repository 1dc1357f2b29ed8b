"""`python -m bench [--quick] [--only NAME ...]`: run the benchmarks, write `bench/results/latest.json`.

Each scenario runs the emulator in its own process and the measured side in another, pinned to different CPUs
where there are two. Each measured run whose processes spent more than 3% of their time waiting for a CPU held by
something else (other processes on the machine) is done again, up to twice, and the least disturbed attempt kept
(`bench.report.least_disturbed`); every attempt's disturbance is recorded. `--retries N` also reruns a whole scenario
still disturbed beyond `--max-disturbance`.

`--quick` runs reduced sizes (for iterating) and writes `bench/results/quick.json` unless `--output` is given;
`--only NAME` (repeatable) runs those scenarios and merges them into the existing output file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.machine import cpu_plan, load_average, machine_info, source_info
from bench.notes import notes
from bench.scenarios import SCENARIOS, Scenario

RESULTS = Path(__file__).resolve().parent / "results"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_scenario(scenario: Scenario, *, quick: bool, retries: int, max_disturbance: float) -> dict[str, Any]:
    sizes = scenario.quick if quick else scenario.full
    attempts: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for attempt in range(1, retries + 2):
        _log(f"{scenario.name} (attempt {attempt}): {scenario.title}")
        before = load_average()
        started = time.monotonic()
        result = scenario.run(**sizes)
        result["elapsed_s"] = round(time.monotonic() - started, 1)
        result["load_average"] = {"before": before, "after": load_average()}
        result["finished_at"] = _now()
        attempts.append(
            {"attempt": attempt, "disturbance": result["disturbance"], "load_average": result["load_average"]}
        )
        _log(
            f"{scenario.name}: {'targets met' if result['targets_met'] else 'TARGETS MISSED'}, "
            f"disturbance {result['disturbance']:.3f}, load {result['load_average']}, {result['elapsed_s']} s"
        )
        if best is None or result["disturbance"] < best["disturbance"]:
            best = result
        if result["disturbance"] <= max_disturbance:
            break
    assert best is not None
    best["attempts"] = attempts
    best["title"] = scenario.title
    return best


def _summary(scenarios: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"scenario": name, **target} for name, result in scenarios.items() for target in result["targets"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes, for iterating")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--output", type=Path, help="default: bench/results/latest.json (quick.json with --quick)")
    parser.add_argument("--retries", type=int, default=0, help="reruns of a disturbed scenario (default 0)")
    parser.add_argument(
        "--max-disturbance",
        type=float,
        default=0.05,
        help="share of time waiting for a CPU above which a scenario is rerun (default 0.05)",
    )
    args = parser.parse_args(argv)

    output: Path = args.output or RESULTS / ("quick.json" if args.quick else "latest.json")
    names = args.only or list(SCENARIOS)
    document: dict[str, Any] = {}
    if args.only and output.is_file():
        document = json.loads(output.read_text())
    started = time.monotonic()
    load_before = load_average()
    scenarios: dict[str, Any] = dict(document.get("scenarios", {}))
    for name in names:
        scenarios[name] = run_scenario(
            SCENARIOS[name], quick=args.quick, retries=args.retries, max_disturbance=args.max_disturbance
        )
    ordered = {name: scenarios[name] for name in SCENARIOS if name in scenarios}
    targets = _summary(ordered)
    document.update(
        {
            "benchmark": "ges-retention",
            "mode": "quick" if args.quick else "full",
            "finished_at": _now(),
            "machine": machine_info(),
            "source": source_info(str(RESULTS.parent.parent)),
            "cpu_plan": cpu_plan().to_json(),
            "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
            "last_invocation": {
                "scenarios": names,
                "duration_s": round(time.monotonic() - started, 1),
                "load_average_before": load_before,
                "load_average_after": load_average(),
            },
            "all_targets_met": all(t["met"] for t in targets),
            "disturbed_scenarios": [name for name, result in ordered.items() if result.get("disturbed")],
            "targets": targets,
            "notes": notes(ordered),
            "scenarios": ordered,
        }
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n")
    for t in targets:
        flag = (
            " (disturbed: rerun with --only when the machine is quiet)"
            if ordered[t["scenario"]].get("disturbed")
            else ""
        )
        print(
            f"{'ok  ' if t['met'] else 'MISS'} {t['scenario']:13} {t['name']:32} {t['value']!s:>10} {t['target']}{flag}"
        )
    print(f"results: {output}")
    return 0 if document["all_targets_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
