"""`python -m bench.summary [RESULTS.json]`: the results as a Markdown table, for the README."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["render"]

DEFAULT = Path(__file__).resolve().parent / "results" / "latest.json"


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def render(document: dict[str, Any]) -> str:
    s = document["scenarios"]
    lines = [
        f"Measured {document['finished_at']} ({document['mode']} run) on {document['machine']['nproc']} CPUs "
        f"({document['machine']['cpu_model']}), Python {document['machine']['python']}; emulator and measured side "
        "in separate processes, pinned to separate CPUs, on loopback.",
        "",
        _row(["scenario", "figure", "value", "target", "met"]),
        _row(["---"] * 5),
    ]
    for t in document["targets"]:
        if t["name"].endswith("all_deleted") or t["name"].startswith("listed_all"):
            continue
        lines.append(_row([t["scenario"], t["description"], t["value"], t["target"], "yes" if t["met"] else "**no**"]))
    if "unthrottled" in s:
        f = s["unthrottled"]["figures"]
        samples = s["unthrottled"]["parameters"]["samples"]
        lines += [
            "",
            _row(["10 ms latency, 64 in flight", "deletes/s", "CPU s / 1,000 deletes", "sample"]),
            _row(["---"] * 4),
            _row(
                [
                    "ges-retention (CLI, logs on)",
                    f["service_deletes_per_s"],
                    f["service_cpu_s_per_1000_deletes"],
                    samples["service"],
                ]
            ),
            _row(
                [
                    f"bare aiohttp ceiling ({f['ceiling_kind']})",
                    f["ceiling_deletes_per_s"],
                    f["ceiling_cpu_s_per_1000_deletes"],
                    samples["ceiling_bare_aiohttp"],
                ]
            ),
            _row(
                [
                    "SDK GesAsyncClient",
                    f["sdk_async_deletes_per_s"],
                    f["sdk_async_cpu_s_per_1000_deletes"],
                    samples["sdk_async"],
                ]
            ),
            _row(
                [
                    "SDK delete_backup2 loop",
                    f["sdk_loop_deletes_per_s"],
                    f["sdk_loop_cpu_s_per_1000_deletes"],
                    samples["sdk_loop"],
                ]
            ),
        ]
    if "zero_latency" in s:
        f = s["zero_latency"]["figures"]
        lines += [
            "",
            f"Zero latency (2b): {f['deletes_per_s']} deletes/s ({f['deletes_per_s_whole_run']}/s over the whole run), "
            f"{f['cpu_s_per_1000_deletes']} CPU-s/1000; bare ceiling {f['ceiling_deletes_per_s']}/s at "
            f"{f['ceiling_cpu_s_per_1000_deletes']} CPU-s/1000.",
        ]
    if "listing" in s:
        f = s["listing"]["figures"]
        parts = [
            f"page size {k.removeprefix('page_size_')}: {v['list_and_plan_s']} s ({v['listing_s']} s listing), "
            f"peak RSS {v['peak_rss_mb']} MB"
            for k, v in f.items()
            if k.startswith("page_size_")
        ]
        lines += ["", f"Listing + planning {f['backups_in_emulator']:,} backups (4): " + "; ".join(parts) + "."]
    if "planning" in s:
        f = s["planning"]["figures"]
        lines += [
            "",
            f"plan() over {s['planning']['parameters']['backups']:,} backups (5): {f['plan_s']} s, peak RSS "
            f"{f['peak_rss_mb']} MB; building the values from API JSON: {f['build_values_from_api_json_s']} s "
            f"({f['from_api_json_us_per_backup']} us per backup).",
        ]
    if "simulation" in s:
        f = s["simulation"]["figures"]
        lines += [
            "",
            f"simulate {f['inproc']['days']} days of a GFS policy (8): {f['cli_wall_s']} s end to end "
            f"({f['cli_cpu_s']} CPU-s); simulate() itself {f['inproc']['simulate_s']} s.",
        ]
    if "cold_start" in s:
        f = s["cold_start"]["figures"]
        lines += [
            "",
            f"Cold start (9), median of fresh processes: --version {f['version_s']} s, validate {f['validate_s']} s "
            f"({f['validate_cpu_s']} CPU-s), python -c pass {f['python_pass_s']} s.",
        ]
    disturbed = ", ".join(f"{name} {result['disturbance']}" for name, result in s.items())
    lines += [
        "",
        "Disturbance (largest share of a measured run's time its processes waited for a CPU held by other processes; "
        f"above ~0.03 the figures are degraded): {disturbed}.",
    ]
    notes = document.get("notes", {})
    if notes:
        lines += ["", "What bound each figure:", ""] + [f"- {name}: {text}" for name, text in notes.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT
    sys.stdout.write(render(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
