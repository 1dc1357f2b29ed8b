"""One project id on two GES endpoints, end to end: two emulators on 127.0.0.1 that both serve project `PROJECT`,
and a policy for each (its own `endpoint:`; `GES_RETENTION_ENDPOINT` is not set, it would override both).

The listing, the overlap, the graphs and the quota belong to (endpoint, project_id), not to the project id alone:
- `run`: each emulator ends with exactly what its own policy keeps; each endpoint is listed once and gets only its
  own policy's DELETEs (none answered GES.7024); the counts are the two plans' counts;
- live `plan`: each policy's decisions are its own endpoint's backups, planned with no overlap across endpoints.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from e2e_helpers import PROJECT, run_cli

from ges_retention.backup import Backup
from ges_retention.emulator.app import RunningEmulator, running_emulator
from ges_retention.emulator.config import DEFAULT_AK, DEFAULT_SK
from ges_retention.emulator.store import Store
from ges_retention.policy_loading import parse_policy_text
from ges_retention.report import iso_utc
from ges_retention.retention import plan
from subprocess_env import clean_env
from support.emulators import seeded_config, seeded_store


@dataclass(frozen=True)
class Endpoints:
    west: RunningEmulator  # the demo's project
    east: RunningEmulator  # the same project id, other graphs and backups (no id in common with west)


def east_store(now: datetime) -> Store:
    """Two graphs of 40 daily backups each, ids unlike any of the demo's."""
    store = Store()
    today = now.replace(hour=3, minute=0, second=0, microsecond=0)
    if today > now:
        today -= timedelta(days=1)
    for name in ("east-a", "east-b"):
        graph_id = f"id-{name}"
        store.add_graph(PROJECT, name=name, graph_id=graph_id, created_ms=_ms(today - timedelta(days=100)))
        for day in range(40):
            start = _ms(today - timedelta(days=day))
            store.add_backup(PROJECT, {"id": f"{name}-{day:03d}", "graph_id": graph_id, "start_timestamp": start})
    return store


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
async def endpoints(now: datetime) -> AsyncIterator[Endpoints]:
    async with AsyncExitStack() as stack:
        west = await stack.enter_async_context(running_emulator(store=seeded_store(now), config=seeded_config()))
        east = await stack.enter_async_context(running_emulator(store=east_store(now), config=seeded_config()))
        yield Endpoints(west, east)


def policy_text(endpoints: Endpoints) -> str:
    # Both select every graph: were they judged over one listing, every backup would be an overlap. The rules do
    # not depend on the clock (no `within` from now, no failed age), so the test's `now` plans what the CLI plans.
    return f"""\
version: 1
defaults:
  safety: {{min_keep: 1, max_deletes: 1000, change_budget: unlimited}}
policies:
  - name: west
    project_id: {PROJECT}
    endpoint: {endpoints.west.url}
    keep: {{last: 3, daily: 7, weekly: 4, names: ["*-golden"]}}
  - name: east
    project_id: {PROJECT}
    endpoint: {endpoints.east.url}
    keep: {{last: 5, daily: 10}}
"""


@pytest.fixture
def policy_path(tmp_path: Path, endpoints: Endpoints) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(endpoints))
    return path


def env() -> dict[str, str]:
    """AK/SK for both emulators, no rate limit; no GES_RETENTION_ENDPOINT (each policy names its own)."""
    return clean_env(
        GES_RETENTION_AK=DEFAULT_AK,
        GES_RETENTION_SK=DEFAULT_SK,
        GES_RETENTION_RATE_LIMIT="0",
        GES_RETENTION_BACKOFF_MAX_S="0.05",
        GES_RETENTION_REQUEST_TIMEOUT_S="5",
    )


def ids(emulator: RunningEmulator) -> set[str]:
    return {r["id"] for r in emulator.store.backups(PROJECT)}


def own_plan(endpoints: Endpoints, name: str, now: datetime) -> tuple[set[str], set[str]]:
    """(delete, keep) of policy `name` over its own emulator's backups, alone in its (endpoint, project_id)."""
    policy = {p.name: p for p in parse_policy_text(policy_text(endpoints)).policies}[name]
    emulator = getattr(endpoints, name)
    backups = [Backup.from_api(r) for r in emulator.store.backups(PROJECT)]
    delete = {d.backup.id for d in plan(backups, policy, now).deletions}
    return delete, ids(emulator) - delete


def requests(emulator: RunningEmulator, operation: str) -> dict[str, int]:
    return dict(emulator.stats.to_json()["requests"].get(operation, {}))


async def test_run_deletes_on_each_endpoint_what_its_own_policy_plans(
    endpoints: Endpoints, policy_path: Path, now: datetime
) -> None:
    delete_west, keep_west = own_plan(endpoints, "west", now)
    delete_east, keep_east = own_plan(endpoints, "east", now)
    assert len(delete_west) > 100 and len(delete_east) > 40 and not (ids(endpoints.west) & ids(endpoints.east))

    result = await run_cli(["run", str(policy_path), "--format", "json"], env())

    assert result.code == 0, result.stderr
    assert ids(endpoints.west) == keep_west
    assert ids(endpoints.east) == keep_east
    assert set(endpoints.west.stats.deleted_ids) == delete_west
    assert set(endpoints.east.stats.deleted_ids) == delete_east
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "ok" and summary["skipped_projects"] == []
    assert (summary["deleted"], summary["already_deleted"], summary["failed"]) == (
        len(delete_west) + len(delete_east),
        0,
        0,
    )
    assert summary["listed"] == len(delete_west | keep_west) + len(delete_east | keep_east)
    by_policy = {p["policy"]: p for p in summary["policies"]}
    assert set(by_policy["west"]["ids"]["deleted"]) == delete_west
    assert set(by_policy["east"]["ids"]["deleted"]) == delete_east
    # Each endpoint was listed (backups, then graphs) and asked its quota once, and no DELETE missed (no GES.7024).
    for emulator in (endpoints.west, endpoints.east):
        assert set(requests(emulator, "list_backups")) == {"200"}
        assert set(requests(emulator, "list_graphs")) == {"200"}
        assert requests(emulator, "list_quotas") == {"200": 1}
        assert set(requests(emulator, "delete_backup")) == {"200"}
    listed = {(e["endpoint"], e["project_id"]): e["count"] for e in result.events("backups_listed")}
    assert listed == {
        (endpoints.west.url, PROJECT): len(delete_west | keep_west),
        (endpoints.east.url, PROJECT): len(delete_east | keep_east),
    }
    assert result.events("policy_overlap") == []


async def test_live_plan_plans_each_policy_over_its_own_endpoint(
    endpoints: Endpoints, policy_path: Path, now: datetime
) -> None:
    delete_west, keep_west = own_plan(endpoints, "west", now)
    delete_east, keep_east = own_plan(endpoints, "east", now)

    result = await run_cli(["plan", str(policy_path), "--now", iso_utc(now), "--format", "json"], env())

    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    decisions = {p["name"]: p["decisions"] for p in document["policies"]}
    for name, delete, keep in (("west", delete_west, keep_west), ("east", delete_east, keep_east)):
        assert {d["backup_id"] for d in decisions[name] if d["action"] == "delete"} == delete
        assert {d["backup_id"] for d in decisions[name] if d["action"] == "keep"} == keep
        assert not any(r.startswith("overlap") for d in decisions[name] for r in d["reasons"])
    assert ids(endpoints.west) == delete_west | keep_west and ids(endpoints.east) == delete_east | keep_east
    assert endpoints.west.stats.deleted_ids == [] and endpoints.east.stats.deleted_ids == []
