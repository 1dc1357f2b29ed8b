"""Realistic seeded data for the emulator: graph and backup records as a real project holds them, and the bounds.

Pure generation from a `random.Random` and `now_ms`: the store inserts what is made here. Seed sizes are bounded
(`check_seed_sizes`) so that a typo (`--seed-backups 1000000000`) is a clear error, not an emulator that eats memory
for minutes before it listens.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "DAY_MS",
    "MAX_SEED_BACKUPS",
    "MAX_SEED_BACKUPS_PER_GRAPH",
    "MAX_SEED_GRAPHS",
    "check_seed_sizes",
    "format_api_time",
    "graph_record",
    "name_stamp",
    "random_uuid",
    "seeded_backups",
    "seeded_graph",
]

DAY_MS = 86_400_000
_HOUR_MS = 3_600_000

# A million backups are about a gigabyte of records in memory and seconds to make: the most one seed call may add.
MAX_SEED_GRAPHS = 10_000
MAX_SEED_BACKUPS_PER_GRAPH = 100_000  # daily backups going back some 270 years
MAX_SEED_BACKUPS = 1_000_000

# Realistic graph names: `<environment>-<domain>`, domains first so that the first graphs are all production ones.
_ENVIRONMENTS = ("prod", "staging", "dev", "qa", "perf", "dr")
_DOMAINS = (
    "orders",
    "payments",
    "users",
    "fraud",
    "recommendations",
    "inventory",
    "shipping",
    "social",
    "knowledge",
    "risk",
    "catalog",
    "billing",
    "identity",
    "supply-chain",
    "telemetry",
    "search",
)
_VERSIONS = ("2.2.21", "2.3.6", "2.3.10", "2.3.14")
_SIZE_TYPES = ("0", "1", "2", "3", "4")


def check_seed_sizes(graphs: int, backups_per_graph: int) -> None:
    """`ValueError` with a one-line reason unless the sizes are within the bounds."""
    if graphs < 0 or backups_per_graph < 0:
        raise ValueError("graphs and backups_per_graph must be >= 0")
    if graphs > MAX_SEED_GRAPHS:
        raise ValueError(f"at most {MAX_SEED_GRAPHS} graphs can be seeded at once, got {graphs}")
    if backups_per_graph > MAX_SEED_BACKUPS_PER_GRAPH:
        raise ValueError(
            f"at most {MAX_SEED_BACKUPS_PER_GRAPH} backups per graph can be seeded, got {backups_per_graph}"
        )
    if graphs * backups_per_graph > MAX_SEED_BACKUPS:
        raise ValueError(
            f"at most {MAX_SEED_BACKUPS} backups can be seeded at once, got {graphs} graphs x {backups_per_graph}"
        )


def format_api_time(ms: int) -> str:
    """The API's zone-less UTC time string for an epoch-ms timestamp: `2021-06-08T13:55:13`."""
    t = time.gmtime(ms // 1000)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def name_stamp(ms: int) -> str:
    t = time.gmtime(ms // 1000)
    return f"{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d}"


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from `rng`: ids that look real and repeat with the seed."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _graph_name(index: int) -> str:
    domain = _DOMAINS[index % len(_DOMAINS)]
    env = _ENVIRONMENTS[(index // len(_DOMAINS)) % len(_ENVIRONMENTS)]
    round_ = index // (len(_DOMAINS) * len(_ENVIRONMENTS))
    return f"{env}-{domain}" if round_ == 0 else f"{env}-{domain}-{round_ + 1:02d}"


def graph_record(graph_id: str, name: str, *, status: str, created_ms: int, **extra: Any) -> dict[str, Any]:
    created = format_api_time(created_ms)
    record: dict[str, Any] = {
        "id": graph_id,
        "name": name,
        "created_by": "retention",
        "is_multi_az": "false",
        "region_code": "cn-north-4",
        "az_code": "cn-north-4a",
        "data_store_version": "2.3.10",
        "sys_tags": [],
        "status": status,
        "action_progress": "",
        "graph_size_type_index": "1",
        "vpc_id": "c3b5b5b4-9c59-4bd0-a3f5-5b1e3a2b6f10",
        "subnet_id": "5b6a2f1c-7c0e-4d5e-9a4b-0c1d2e3f4a5b",
        "security_group_id": "0e1d2c3b-4a59-4687-9a8b-7c6d5e4f3a2b",
        "replication": 3,
        "created": created,
        "updated": created,
        "private_ip": "192.168.0.10",
        "public_ip": "",
        "arch": "x86_64",
        "encrypted": False,
        "enable_rbac": False,
        "enable_full_text_index": False,
        "enable_hyg": False,
        "crypt_algorithm": "generalCipher",
        "enable_https": False,
        "tags": [],
        "product_type": "InMemory",
        "vertex_id_type": {"id_type": "fixedLength", "id_length": 128},
    }
    record.update(extra)
    return record


def seeded_graph(
    rng: random.Random, name_index: int, days: int, now_ms: int, taken: Callable[[str], bool]
) -> tuple[dict[str, Any], int]:
    """(a graph record, its creation time in ms): the graph `name_index` of a project, created before its backups."""
    name = _graph_name(name_index)
    graph_id = random_uuid(rng)
    while taken(graph_id):
        graph_id = random_uuid(rng)
    created_ms = now_ms - (days + rng.randint(1, 120)) * DAY_MS - rng.randint(0, DAY_MS - 1)
    record = graph_record(
        graph_id,
        name,
        status="200",
        created_ms=created_ms,
        data_store_version=rng.choice(_VERSIONS),
        graph_size_type_index=rng.choice(_SIZE_TYPES),
        arch="aarch64" if rng.random() < 0.2 else "x86_64",
        encrypted=rng.random() < 0.1,
    )
    return record, created_ms


def seeded_backups(rng: random.Random, graph: Mapping[str, Any], count: int, now_ms: int) -> list[dict[str, Any]]:
    """`count` backups of one graph, newest first."""
    if count == 0:
        return []
    base_size = rng.randint(1, 4000)  # MB, the graph's size today; older backups were smaller
    daily_at = rng.randrange(DAY_MS) // 1000 * 1000  # the automatic backup's time of day, whole seconds
    newest_slot = now_ms - now_ms % DAY_MS + daily_at
    if newest_slot > now_ms:
        newest_slot -= DAY_MS
    records: list[dict[str, Any]] = []
    day = 0
    if rng.random() < 0.1:
        # The backup running right now: started a few minutes ago, nothing about its end is known yet. It must
        # stay the newest, so today's automatic slot is skipped when it would start after it.
        start = now_ms // 1000 * 1000 - rng.randint(10, 900) * 1000
        records.append(_seed_record(rng, graph, start, "auto", "backing_up", base_size))
        if newest_slot + 120_000 >= start:
            day = 1
    while len(records) < count:
        slot = newest_slot - day * DAY_MS
        day += 1
        if rng.random() < 0.1:
            # A manual backup some hours before that day's automatic one, made by hand before a change; one in
            # twenty of those is an `import` backup (ImportBackup2) instead, drawn from the same number so that
            # the random stream, and every other seeded backup, stays what it was.
            hours = rng.randint(1, 20)
            method = "import" if hours == 20 else "manual"
            start = slot - hours * _HOUR_MS - rng.randint(0, 3599) * 1000
        else:
            method, start = "auto", slot + rng.randint(0, 120) * 1000
            start = min(start, now_ms)
        status = "failed" if rng.random() < 1 / 30 else "success"
        size = max(1, int(base_size * (1 - 0.002 * day)))
        records.append(_seed_record(rng, graph, start, method, status, size))
    return records


def _seed_record(
    rng: random.Random, graph: Mapping[str, Any], start: int, method: str, status: str, size: int
) -> dict[str, Any]:
    if status == "backing_up":
        end: int | None = None
        duration, size = 0, 0
    elif status == "failed":
        duration, size = rng.randint(3, 300), 0
        end = start + duration * 1000
    else:
        duration = max(5, size // rng.randint(20, 80) + rng.randint(5, 60))
        end = start + duration * 1000
    return {
        "id": random_uuid(rng),
        "name": f"{graph['name']}-{name_stamp(start)}",
        "backup_method": method,
        "graph_id": graph["id"],
        "graph_name": graph["name"],
        "graph_status": "200",
        "graph_size_type_index": graph["graph_size_type_index"],
        "data_store_version": graph["data_store_version"],
        "arch": graph["arch"],
        "status": status,
        "start_timestamp": start,
        "start_time": format_api_time(start),
        "end_timestamp": end,
        "end_time": format_api_time(end) if end is not None else None,
        "size": size,
        "duration": duration,
        "encrypted": graph["encrypted"],
    }
