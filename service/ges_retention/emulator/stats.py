"""What the emulator saw, for tests and benchmarks to assert on (`GET /_emulator/stats`).

Counted: every request to a GES or IAM route, and every request to an unknown path (operation `unknown`); the control
API is not counted. Times come from a monotonic clock (the caller passes it), never the injected wall clock, so a
test that moves the wall clock does not distort the rates.

JSON shape:

    {"requests": {"delete_backup": {"200": 3, "400": 1, "drop": 1}, ...}, "total_requests": 5,
     "faults": {"delete_backup": {"drop": 1}}, "deleted_ids": ["..."], "deleted_count": 3,
     "in_flight": 0, "max_in_flight": 4, "peak_rps": 120}

`peak_rps` is the most requests that arrived within any sliding 1-second window.

Per client: a request whose `User-Agent` ends with `(holder=ID)` (what ges-retention sends when it runs on a shared
PostgreSQL state: its lease holder id, `host:pid:random`) is also counted under that id, so that a test of several
replicas can tell which daemon sent which DELETE:

    "clients": {"host:12:ab12cd": {"requests": {"delete_backup": {"200": 3}}, "deleted_ids": ["..."]}}
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Stats", "client_of"]

_HOLDER = re.compile(r"\(holder=([^()\s]{1,200})\)\s*$")


def client_of(user_agent: str | None) -> str | None:
    """The client id a `User-Agent` ends with (`... (holder=ID)`), or None."""
    if not user_agent:
        return None
    found = _HOLDER.search(user_agent)
    return found.group(1) if found else None


@dataclass(slots=True)
class ClientStats:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    deleted_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"requests": {op: dict(by) for op, by in self.counts.items()}, "deleted_ids": list(self.deleted_ids)}


@dataclass(slots=True)
class Stats:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    faults: dict[str, dict[str, int]] = field(default_factory=dict)
    deleted_ids: list[str] = field(default_factory=list)
    delete_request_ids: dict[str, str] = field(default_factory=dict)
    """backup id -> the `X-Request-Id` of the DELETE that removed it (in-process tests match the journal's)."""
    in_flight: int = 0
    max_in_flight: int = 0
    peak_rps: int = 0
    clients: dict[str, ClientStats] = field(default_factory=dict)
    _arrivals: deque[float] = field(default_factory=deque, repr=False)

    def arrived(self, now: float) -> None:
        """A counted request arrived at monotonic time `now`."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        arrivals = self._arrivals
        arrivals.append(now)
        horizon = now - 1.0
        while arrivals[0] <= horizon:
            arrivals.popleft()
        self.peak_rps = max(self.peak_rps, len(arrivals))

    def finished(self, operation: str, status: str, client: str | None = None) -> None:
        """A counted request ended with `status` (an HTTP status, or `drop` when no answer was sent); `client` is
        the id its `User-Agent` carried (`client_of`), if any."""
        self.in_flight -= 1
        by_status = self.counts.setdefault(operation, {})
        by_status[status] = by_status.get(status, 0) + 1
        if client is not None:
            of_client = self.clients.setdefault(client, ClientStats()).counts.setdefault(operation, {})
            of_client[status] = of_client.get(status, 0) + 1

    def deleted(self, backup_id: str, client: str | None = None) -> None:
        self.deleted_ids.append(backup_id)
        if client is not None:
            self.clients.setdefault(client, ClientStats()).deleted_ids.append(backup_id)

    def client_count(self, client: str, operation: str, status: int | str | None = None) -> int:
        """Requests of one client and operation, all or with one status."""
        stats = self.clients.get(client)
        by_status = stats.counts.get(operation, {}) if stats is not None else {}
        return sum(by_status.values()) if status is None else by_status.get(str(status), 0)

    def fault(self, operation: str, kind: str) -> None:
        by_kind = self.faults.setdefault(operation, {})
        by_kind[kind] = by_kind.get(kind, 0) + 1

    def count(self, operation: str, status: int | str | None = None) -> int:
        """Requests of an operation, all or with one status: a convenience for in-process tests."""
        by_status = self.counts.get(operation, {})
        return sum(by_status.values()) if status is None else by_status.get(str(status), 0)

    def reset(self) -> None:
        """Forget everything but the requests in flight right now (they will still finish and be counted)."""
        self.counts = {}
        self.faults = {}
        self.deleted_ids = []
        self.delete_request_ids = {}
        self.clients = {}
        self.max_in_flight = self.in_flight
        self.peak_rps = 0
        self._arrivals.clear()

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": {op: dict(by_status) for op, by_status in self.counts.items()},
            "total_requests": sum(sum(by_status.values()) for by_status in self.counts.values()),
            "faults": {op: dict(by_kind) for op, by_kind in self.faults.items()},
            "deleted_ids": list(self.deleted_ids),
            "deleted_count": len(self.deleted_ids),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "peak_rps": self.peak_rps,
            "clients": {client: stats.to_json() for client, stats in sorted(self.clients.items())},
        }
