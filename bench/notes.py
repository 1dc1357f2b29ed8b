"""One line per scenario saying what its figures were bound by, computed from the figures themselves."""

from __future__ import annotations

from typing import Any

__all__ = ["notes"]


def _bound(busy: float | None, emulator_busy: float | None) -> str:
    if busy is not None and busy >= 0.9:
        return "the service's own CPU (its core is saturated)"
    if emulator_busy is not None and emulator_busy >= 0.9:
        return "the emulator's CPU"
    return "neither process's CPU (both below 90% busy): the round trip (latency, queueing, event-loop wake-ups)"


def _rate_limit(result: dict[str, Any]) -> str:
    f = result["figures"]
    p = result["parameters"]
    return (
        f"{f['achieved_deletes_per_s']}/s = {f['fraction_of_rate']} of the {p['client_rate_limit_per_s']:g}/s client "
        f"rate, bound by the service's pacer; the emulator's busiest 1-second window held {f['emulator_peak_rps']} "
        f"requests (limit {p['emulator_rate_limit_per_s']}), {f['responses_429']} answered 429."
    )


def _unthrottled(result: dict[str, Any]) -> str:
    f = result["figures"]
    p = result["parameters"]
    service = f["runs"]["service"]
    latency_bound = p["concurrency"] / (p["emulator_latency_ms"] / 1000) if p["emulator_latency_ms"] else None
    r = f["ratios"]
    text = (
        f"service {f['service_deletes_per_s']}/s at {f['service_cpu_s_per_1000_deletes']} CPU-s/1000 "
        f"(CPU busy {service.get('cpu_busy_share')}, emulator busy {service.get('emulator_cpu_busy_share')})"
    )
    if latency_bound:
        text += f", latency bound {latency_bound:,.0f}/s"
    text += (
        f"; bound by {_bound(service.get('cpu_busy_share'), service.get('emulator_cpu_busy_share'))}. "
        f"Ceiling ({f['ceiling_kind']}) {f['ceiling_deletes_per_s']}/s at {f['ceiling_cpu_s_per_1000_deletes']} "
        f"CPU-s/1000: service/ceiling {r['throughput_vs_ceiling']} in throughput, {r['cpu_per_delete_vs_ceiling']} "
        f"in CPU per delete. SDK loop {f['sdk_loop_deletes_per_s']}/s (one request at a time: latency + the SDK's "
        f"{f['sdk_loop_cpu_s_per_1000_deletes']} CPU-s/1000), GesAsyncClient {f['sdk_async_deletes_per_s']}/s "
        f"(8 executor threads)."
    )
    return text


def _zero_latency(result: dict[str, Any]) -> str:
    f = result["figures"]
    service = f["runs"]["service"]
    return (
        f"service {f['deletes_per_s']}/s in the deletion phase ({f['deletes_per_s_whole_run']}/s over the whole run "
        f"with listing and planning), {f['cpu_s_per_1000_deletes']} CPU-s/1000 (CPU busy "
        f"{service.get('cpu_busy_share')}, emulator busy {service.get('emulator_cpu_busy_share')}); bound by "
        f"{_bound(service.get('cpu_busy_share'), service.get('emulator_cpu_busy_share'))}. The ceiling "
        f"({f['ceiling_kind']}) does {f['ceiling_deletes_per_s']}/s: the service costs "
        f"{f['cpu_per_delete_vs_ceiling']}x its CPU per delete."
    )


def _listing(result: dict[str, Any]) -> str:
    f = result["figures"]
    concurrency = result["parameters"].get("concurrency", 1)
    parts = []
    for key, run in f.items():
        if not key.startswith("page_size_"):
            continue
        per_page_ms = 1000 * run["listing_s"] / max(1, run["pages"])
        parts.append(
            f"{key.removeprefix('page_size_')}/page: listing {run['listing_s']} s ({run['pages']} pages, "
            f"{per_page_ms:.1f} ms each, in windows of {concurrency}), planning {run['planning_s']} s, logging the "
            f"{run['planned']} planned deletions {run['plan_logging_s']} s, peak RSS {run['peak_rss_mb']} MB"
        )
    return "; ".join(parts) + "."


def _planning(result: dict[str, Any]) -> str:
    f = result["figures"]
    p = result["parameters"]
    return (
        f"plan() over {p['backups']:,} backups: {f['plan_s']} s, peak RSS {f['peak_rss_mb']} MB (values built from a "
        f"generator in {f['build_values_from_generator_s']} s); building them from API JSON instead costs "
        f"{f['build_values_from_api_json_s']} s ({f['from_api_json_us_per_backup']} us per backup: json.loads "
        f"{f['runs']['from_json']['json_loads_s']} s + Backup.from_api {f['runs']['from_json']['from_api_s']} s)."
    )


def _emulator_seeding(result: dict[str, Any]) -> str:
    f = result["figures"]
    return (
        f"emulator_seeding: {f['backups']} backups across {f['graphs']} graphs seeded in {f['seed_s']} s, "
        f"last page {f['last_page_ms']} ms, peak RSS {f['peak_rss_mb']} MB."
    )


def _simulation(result: dict[str, Any]) -> str:
    f = result["figures"]
    inproc = f["inproc"]
    return (
        f"simulate {inproc['days']} days ({inproc['runs']} runs, {inproc['backups_created']} backups): the command "
        f"end to end {f['cli_wall_s']} s wall, {f['cli_cpu_s']} CPU-s, most of it interpreter start and imports; "
        f"simulate() itself {inproc['simulate_s']} s ({inproc['ms_per_run']} ms per run, one plan() each), "
        f"the SVG {inproc['svg_s']} s, the JSON {inproc['json_s']} s."
    )


def _cold_start(result: dict[str, Any]) -> str:
    f = result["figures"]
    return (
        f"median of {result['parameters']['runs']} fresh processes: --version {f['version_s']} s, validate "
        f"{f['validate_s']} s ({f['validate_cpu_s']} CPU-s), python -c pass {f['python_pass_s']} s; wall time above "
        f"the CPU time is waiting for a CPU (the disturbance)."
    )


def _auto_rate(result: dict[str, Any]) -> str:
    parts = []
    for limit, f in result["figures"]["limits"].items():
        parts.append(
            f"L={limit}/s: {f['rate_after_10s_per_s']}/s after 10 s ({f['rate_after_10s_share']} L), "
            f"{f['responses_429']} 429s of {f['requests']} requests, learned {f['learned_rate_per_s']}/s, "
            f"second run {f['second_run_start_per_s']}/s in its first 2 s ({f['second_run_start_share']} L)"
        )
    return "; ".join(parts) + ". Bound by the emulator's rate gate, found by the adaptive pacer from 429s alone."


def _cpu_per_delete(result: dict[str, Any]) -> str:
    f = result["figures"]
    return (
        f"nothing pinned: the service {f['service_deletes_per_s']}/s and {f['service_cpu_s_per_1000_deletes']} "
        f"CPU-s/1000, the faster bare loop ({f['ceiling_kind']}) {f['ceiling_deletes_per_s']}/s and "
        f"{f['ceiling_cpu_s_per_1000_deletes']} CPU-s/1000: {f['throughput_vs_ceiling']} of its rate, "
        f"{f['cpu_per_delete_vs_ceiling']}x its CPU per delete (each side's best of {result['parameters']['rounds']} "
        "rounds; the processes wait for each other's CPU, so the disturbance is an upper bound; the median of the "
        f"rounds' own ratios: {f.get('cpu_per_delete_vs_ceiling_paired_median')}x). Alongside, the bare "
        f"loop with the journal's own writes: {f['journaled_loop_cpu_s_per_1000_deletes']} CPU-s/1000, the service "
        f"{f['cpu_per_delete_vs_journaled_loop']}x it."
    )


def _journal(result: dict[str, Any]) -> str:
    f = result["figures"]
    rates = f["deletes_per_s"]
    return (
        f"20,000 deletions, zero latency, 64 in flight: {rates['memory']}/s on :memory:, {rates['sqlite']}/s with a "
        f"SQLite file ({f['sqlite_vs_memory']} of :memory:), {rates['postgresql']}/s on PostgreSQL "
        f"({f['postgresql_vs_memory']}); the service, the emulator (and PostgreSQL) share the cores."
    )


_NOTES = {
    "journal": _journal,
    "cpu_per_delete": _cpu_per_delete,
    "rate_limit": _rate_limit,
    "unthrottled": _unthrottled,
    "zero_latency": _zero_latency,
    "listing": _listing,
    "planning": _planning,
    "emulator_seeding": _emulator_seeding,
    "simulation": _simulation,
    "cold_start": _cold_start,
    "auto_rate": _auto_rate,
}


def notes(scenarios: dict[str, Any]) -> dict[str, str]:
    result = {}
    for name, scenario in scenarios.items():
        try:
            result[name] = _NOTES[name](scenario)
        except (KeyError, TypeError, ZeroDivisionError) as exc:  # a partial result: say so, do not fail the run
            result[name] = f"(no note: {type(exc).__name__}: {exc})"
    return result
