"""The emulator in its own process, pinned to one CPU, driven through its control API (`/_emulator/...`).

`python -m ges_retention.emulator --port 0` prints one JSON line once it listens; everything else here is plain
stdlib HTTP to the control API, so that the orchestrating process stays light.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.machine import cpu_seconds_of, preexec_pin, runqueue_wait_s

__all__ = ["Emulator", "expired_fixture", "running_emulator"]

DAY_MS = 86_400_000


@dataclass(slots=True)
class Emulator:
    proc: subprocess.Popen[str]
    url: str
    project_id: str
    ak: str
    sk: str
    token: str
    cpu: int | None

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        request = urllib.request.Request(
            f"{self.url}/_emulator/{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=300) as response:  # a loopback test tool
            return json.loads(response.read())

    def configure(self, **knobs: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.control("PUT", "config", knobs)
        return result

    def reset(self, *, data: bool = True) -> None:
        self.control("POST", "reset", {"data": data})

    def reset_stats(self) -> None:
        self.control("POST", "reset", {"data": False})

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control("GET", "stats")
        result.pop("deleted_ids", None)  # large and of no use to a benchmark
        return result

    def add_fixture(self, graphs: list[dict[str, Any]], backups: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = self.control("POST", "backups", {"graphs": graphs, "backups": backups})
        return result

    def seed(self, graphs: int, backups_per_graph: int, now_ms: int, seed: int = 1) -> dict[str, Any]:
        body = {"graphs": graphs, "backups_per_graph": backups_per_graph, "now_ms": now_ms, "seed": seed}
        result: dict[str, Any] = self.control("POST", "seed", body)
        return result

    def load_expired(self, deletions: int, *, per_graph: int, now_ms: int) -> list[tuple[str, str]]:
        """Fresh data: graphs of `per_graph + 1` successful daily backups, so that a `keep: {last: 1}` policy plans
        exactly `deletions` deletions. Returns the (graph id, backup id) of each backup to delete, oldest first."""
        self.reset(data=True)
        graphs, backups, targets = expired_fixture(deletions, per_graph=per_graph, now_ms=now_ms)
        self.add_fixture(graphs, backups)
        self.reset_stats()
        return targets

    def backup_count(self) -> int:
        return int(self.control("GET", "backups")["backup_count"])

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.proc.pid)

    def runqueue_wait_s(self) -> float:
        return runqueue_wait_s(self.proc.pid)


def expired_fixture(
    deletions: int, *, per_graph: int, now_ms: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[str, str]]]:
    """Graph and backup fixtures (ids given, so the caller knows them) and the deletion targets."""
    graphs: list[dict[str, Any]] = []
    backups: list[dict[str, Any]] = []
    targets: list[tuple[str, str]] = []
    index = 0
    while len(targets) < deletions:
        graph_id = f"bench-graph-{index:05d}"
        graphs.append({"name": f"bench-{index:05d}", "id": graph_id, "created_ms": now_ms - 1000 * DAY_MS})
        expired = min(per_graph, deletions - len(targets))
        for day in range(expired + 1):
            backup_id = f"{graph_id}-b{day:05d}"
            backups.append({"id": backup_id, "graph_id": graph_id, "start_timestamp": now_ms - (day + 1) * DAY_MS})
            if day > 0:  # the newest one is kept (`last: 1`)
                targets.append((graph_id, backup_id))
        index += 1
    return graphs, backups, targets


@contextmanager
def running_emulator(*, cpu: int | None, latency_ms: float = 0.0, rate_limit: int = 0) -> Iterator[Emulator]:
    """An empty emulator in a child process; stopped (SIGTERM) on exit."""
    command = [
        sys.executable,
        "-m",
        "ges_retention.emulator",
        "--port",
        "0",
        "--seed-graphs",
        "0",
        "--seed-backups",
        "0",
        "--latency-ms",
        str(latency_ms),
        "--rate-limit",
        str(rate_limit),
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=preexec_pin(cpu),  # the orchestrator starts no threads: safe
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator did not start (exit {proc.wait(timeout=10)})")
        started = json.loads(line)
        yield Emulator(
            proc=proc,
            url=started["url"],
            project_id=started["project_id"],
            ak=started["ak"],
            sk=started["sk"],
            token=started["token"],
            cpu=cpu,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
