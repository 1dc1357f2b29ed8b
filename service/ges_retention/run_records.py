"""What the daemon remembers in memory: recent runs (bounded), each policy's last run, `run_on_change` digests.

The digests sit behind `ChangeDigests`: the daemon keeps them in the journal (`daemon_state.StoreChangeDigests`),
so a restart does not re-run an unchanged policy; `MemoryChangeDigests` is for a daemon without a state.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = ["ChangeDigests", "ChangeKey", "MemoryChangeDigests", "RunRecord", "RunRecords"]

RunStatus = Literal["running", "finished", "crashed"]
# (policy name, effective GES endpoint, project_id): the journal's key for a policy's memories.
ChangeKey = tuple[str, str, str]


class ChangeDigests(Protocol):
    """The definition digest of each policy's last `run_on_change` run."""

    async def last(self, key: ChangeKey) -> str | None: ...

    async def record(self, key: ChangeKey, digest: str, run_id: str) -> None: ...


class MemoryChangeDigests:
    """`ChangeDigests` for one process's life."""

    __slots__ = ("_digests",)

    def __init__(self) -> None:
        self._digests: dict[ChangeKey, str] = {}

    async def last(self, key: ChangeKey) -> str | None:
        return self._digests.get(key)

    async def record(self, key: ChangeKey, digest: str, run_id: str) -> None:
        self._digests[key] = digest


def _iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class RunRecord:
    run_id: str
    trigger: str
    policies: list[str]
    started_at: datetime
    status: RunStatus = "running"
    finished_at: datetime | None = None
    summary: dict[str, Any] | None = None  # the run's final summary (`RunSummary.to_json()`)
    error: str | None = None
    live: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "run_id": self.run_id,
            "status": self.status,
            "trigger": self.trigger,
            "policies": self.policies,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }
        if self.status == "running":
            document["counts"] = self.live
        if self.summary is not None:
            document["summary"] = self.summary
        if self.error is not None:
            document["error"] = self.error
        return document


class RunRecords:
    """The last `limit` runs by id, and each policy's last finished run."""

    __slots__ = ("_held", "_last", "_limit", "_runs")

    def __init__(self, limit: int = 200) -> None:
        self._limit = limit
        self._runs: OrderedDict[str, RunRecord] = OrderedDict()
        self._last: dict[str, dict[str, Any]] = {}
        # Each policy's change gate at its last finished run: `{"extra", "budget", "digest"}` while held, else None.
        self._held: dict[str, dict[str, Any] | None] = {}

    def start(self, run_id: str, trigger: str, policies: list[str], now: datetime) -> RunRecord:
        record = self._runs[run_id] = RunRecord(run_id, trigger, policies, now)
        while len(self._runs) > self._limit:
            # The oldest finished run goes; a running one is never forgotten.
            victim = next((rid for rid, r in self._runs.items() if r.status != "running"), None)
            if victim is None:
                break
            del self._runs[victim]
        return record

    def finish(self, run_id: str, summary: dict[str, Any], now: datetime) -> None:
        record = self._runs.get(run_id)
        if record is None:
            return
        record.status, record.finished_at, record.summary = "finished", now, summary
        for result in summary.get("policies", []):
            self._last[result["policy"]] = {"run_id": run_id, "outcome": result["outcome"], "finished_at": _iso(now)}
            self._held[result["policy"]] = result.get("change_held")

    def crash(self, run_id: str, error: str, now: datetime) -> None:
        record = self._runs.get(run_id)
        if record is None:
            return
        record.status, record.finished_at, record.error = "crashed", now, error
        for name in record.policies:
            self._last[name] = {"run_id": run_id, "outcome": "crashed", "finished_at": _iso(now)}

    def get(self, run_id: str) -> RunRecord | None:
        return self._runs.get(run_id)

    def running_ids(self) -> list[str]:
        """Runs in progress, newest first."""
        return [rid for rid, r in reversed(self._runs.items()) if r.status == "running"]

    def finished_ids(self) -> list[str]:
        """Finished (or crashed) runs, newest first."""
        return [rid for rid, r in reversed(self._runs.items()) if r.status != "running"]

    def last_for(self, policy: str) -> dict[str, Any] | None:
        return self._last.get(policy)

    def change_held_for(self, policy: str) -> dict[str, Any] | None:
        """The change gate's hold of the policy at its last finished run here, or None (not held, or not run)."""
        return self._held.get(policy)

    def forget_policy(self, policy: str) -> None:
        self._last.pop(policy, None)
        self._held.pop(policy, None)
