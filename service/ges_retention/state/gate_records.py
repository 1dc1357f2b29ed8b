"""The change gate's records, `run_on_change` digests and learned rates (keyed by scope or by endpoint+project)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ges_retention.state.records import Ack, Baseline, Scope
from ges_retention.state.sql import from_json, required_time, to_json
from ges_retention.state.store_base import StoreBase

__all__ = ["GateRecords", "scope_params"]


def scope_params(scope: Scope) -> tuple[str, str, str]:
    return (scope.policy, scope.endpoint, scope.project_id)


class GateRecords(StoreBase):
    # ---------------------------------------------------------------------------------------------- change gate

    async def get_baseline(self, scope: Scope) -> Baseline | None:
        async with self._read("get_baseline") as tx:
            rows = await tx.fetch(
                "SELECT definition, overlap, gate_digest, run_id, recorded_at FROM baselines "
                "WHERE policy = ? AND endpoint = ? AND project_id = ?",
                scope_params(scope),
            )
        if not rows:
            return None
        definition, overlap, digest, run_id, recorded_at = rows[0]
        return Baseline(from_json(definition), from_json(overlap), digest, run_id, required_time(recorded_at))

    async def put_baseline(
        self, scope: Scope, *, definition: Any, overlap: Any, gate_digest: str, run_id: str, now: datetime | None = None
    ) -> None:
        async with self.writing("put_baseline") as tx:
            await tx.execute(
                "INSERT INTO baselines (policy, endpoint, project_id, definition, overlap, gate_digest, run_id, "
                "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (policy, endpoint, project_id) DO UPDATE "
                "SET definition = excluded.definition, overlap = excluded.overlap, gate_digest = excluded.gate_digest,"
                " run_id = excluded.run_id, recorded_at = excluded.recorded_at",
                (*scope_params(scope), to_json(definition), to_json(overlap), gate_digest, run_id, self._now(now)),
            )

    async def put_ack(self, scope: Scope, digest: str, *, by: str, now: datetime | None = None) -> Ack:
        at = self._now(now)
        async with self.writing("put_ack") as tx:
            await tx.execute(
                "INSERT INTO acks (policy, endpoint, project_id, digest, acked_by, acked_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (policy, endpoint, project_id, digest) DO UPDATE SET acked_by = excluded.acked_by, "
                "acked_at = excluded.acked_at",
                (*scope_params(scope), digest, by, at),
            )
        return Ack(digest=digest, by=by, acked_at=at)

    async def find_ack(self, scope: Scope, digest: str) -> Ack | None:
        async with self._read("find_ack") as tx:
            rows = await tx.fetch(
                "SELECT digest, acked_by, acked_at FROM acks WHERE policy = ? AND endpoint = ? AND project_id = ? "
                "AND digest = ?",
                (*scope_params(scope), digest),
            )
        return Ack(rows[0][0], rows[0][1], required_time(rows[0][2])) if rows else None

    async def get_change_digest(self, scope: Scope) -> str | None:
        """The definition digest of the policy's last `run_on_change` run (None: never, so a load differs)."""
        async with self._read("get_change_digest") as tx:
            rows = await tx.fetch(
                "SELECT digest FROM change_digests WHERE policy = ? AND endpoint = ? AND project_id = ?",
                scope_params(scope),
            )
        return str(rows[0][0]) if rows else None

    async def put_change_digest(self, scope: Scope, digest: str, *, run_id: str, now: datetime | None = None) -> None:
        async with self.writing("put_change_digest") as tx:
            await tx.execute(
                "INSERT INTO change_digests (policy, endpoint, project_id, digest, run_id, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (policy, endpoint, project_id) DO UPDATE SET "
                "digest = excluded.digest, run_id = excluded.run_id, recorded_at = excluded.recorded_at",
                (*scope_params(scope), digest, run_id, self._now(now)),
            )

    # ---------------------------------------------------------------------------------------------- rates

    async def get_rate(self, endpoint: str, project_id: str) -> float | None:
        async with self._read("get_rate") as tx:
            rows = await tx.fetch(
                "SELECT rate_per_s FROM rates WHERE endpoint = ? AND project_id = ?", (endpoint, project_id)
            )
        return float(rows[0][0]) if rows else None

    async def put_rate(self, endpoint: str, project_id: str, rate_per_s: float, *, now: datetime | None = None) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"a learned rate is > 0, got {rate_per_s!r}")
        async with self.writing("put_rate") as tx:
            await tx.execute(
                "INSERT INTO rates (endpoint, project_id, rate_per_s, learned_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (endpoint, project_id) DO UPDATE SET rate_per_s = excluded.rate_per_s, "
                "learned_at = excluded.learned_at",
                (endpoint, project_id, float(rate_per_s), self._now(now)),
            )
