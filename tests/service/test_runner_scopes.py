"""The runner with one project id at two endpoints (`support.memory_api`, one per endpoint).

The unit of a listing is (endpoint, project_id): each is listed once (backups, graphs, quota), each policy is planned
over the listing of the endpoint its DELETEs go to, overlap is resolved only among policies of one (endpoint,
project_id), and a listing that fails at one endpoint skips only that endpoint's policies. The journal resolves a
policy's `deleting` rows against its own endpoint's listing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from test_runner import NOW, P1, backups

from ges_retention.events import LoggingEvents
from ges_retention.exit_codes import ExitCode
from ges_retention.ges.client import BackupListing, DeleteResult, GraphListing
from ges_retention.ges.errors import ServerError
from ges_retention.journal import StateJournal, backup_facts
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyFile, parse_policy_text
from ges_retention.runner import Runner
from ges_retention.state import PlannedDeletion, RunRecord, Scope, Store
from support.logs import capture_events
from support.memory_api import MemoryApi

WEST, EAST = "https://ges.west.example.com", "https://ges.east.example.com"


class Endpoints:
    """A `BackupApi` with one `MemoryApi` per endpoint. A DELETE of a backup its endpoint does not hold answers
    GES.7024, as GES does: what the old runner counted as `already_deleted`."""

    def __init__(self, apis: dict[str, MemoryApi]) -> None:
        self.apis = apis

    async def list_backups(self, endpoint: str, project_id: str, *, deadline: float) -> BackupListing:
        return await self.apis[endpoint].list_backups(endpoint, project_id, deadline=deadline)

    async def list_graphs(self, endpoint: str, project_id: str, *, deadline: float) -> GraphListing:
        return await self.apis[endpoint].list_graphs(endpoint, project_id, deadline=deadline)

    async def backup_quota(self, endpoint: str, project_id: str, *, deadline: float) -> int | None:
        return await self.apis[endpoint].backup_quota(endpoint, project_id, deadline=deadline)

    async def delete_backup(
        self, endpoint: str, project_id: str, graph_id: str, backup_id: str, *, deadline: float
    ) -> DeleteResult:
        api = self.apis[endpoint]
        if backup_id not in {b.id for b in api.projects.get(project_id, [])}:
            return DeleteResult("already_deleted", 1, 0.01, "GES.7024", 404)
        return await api.delete_backup(endpoint, project_id, graph_id, backup_id, deadline=deadline)


def two_endpoints() -> Endpoints:
    """West holds prod and staging graphs; east, the same project id, holds another staging graph."""
    west = MemoryApi({P1: [*backups("prod-a", 5), *backups("staging-a", 3)]})
    east = MemoryApi({P1: backups("staging-b", 4)})
    return Endpoints({WEST: west, EAST: east})


def policy_file(*entries: tuple[str, str, str, int]) -> PolicyFile:
    """Policies (name, endpoint, graphs glob, keep last) of project P1."""
    text = "".join(
        f"""\
  - name: {name}
    project_id: {P1}
    endpoint: {endpoint}
    select: {{graphs: ["{graphs}"]}}
    keep: {{last: {last}}}
    safety: {{min_keep: 0, max_deletes: 100}}
"""
        for name, endpoint, graphs, last in entries
    )
    return parse_policy_text(f"version: 1\npolicies:\n{text}")


PROD_WEST_STAGING_EAST = policy_file(("prod", WEST, "prod-*", 2), ("staging", EAST, "staging-*", 1))


def endpoint_of(policy: Policy) -> str:
    return policy.api_endpoint() or ""


def make_runner(api: Any, *, events: Any = LoggingEvents, journal: Any = None) -> Runner:
    extra = {"journal": journal} if journal is not None else {}
    return Runner(
        api,
        endpoint_of=endpoint_of,
        run_deadline_s=60,
        events=events,
        clock=lambda: NOW,
        monotonic=lambda: 0,
        **extra,
    )


async def test_each_policy_deletes_what_it_plans_over_its_own_endpoints_listing() -> None:
    api = two_endpoints()
    loaded = PROD_WEST_STAGING_EAST

    with capture_events() as events:
        summary = await make_runner(api).run(loaded, loaded.policies)

    west, east = api.apis[WEST], api.apis[EAST]
    assert west.listed == [(WEST, P1)] and east.listed == [(EAST, P1)]
    assert west.graphs_listed == [(WEST, P1)] and east.graphs_listed == [(EAST, P1)]
    assert sorted(west.deleted) == ["prod-a-2", "prod-a-3", "prod-a-4"]  # west's staging is no policy's
    assert sorted(east.deleted) == ["staging-b-1", "staging-b-2", "staging-b-3"]
    prod, staging = summary.policies
    assert (prod.endpoint, staging.endpoint) == (WEST, EAST)
    assert (staging.deleted, staging.already_deleted, staging.failed) == (3, 0, 0)
    assert {d.backup.id for d in staging.plan.decisions} == {b.id for b in east.projects[P1]}  # type: ignore[union-attr]
    # The change gate judged staging over east's listing too (no baseline: every planned deletion is extra).
    assert staging.gate is not None and set(staging.gate.extra) == {"staging-b-1", "staging-b-2", "staging-b-3"}
    assert summary.counts()["deleted"] == 6 and summary.counts()["already_deleted"] == 0
    assert summary.listed == 8 + 4 and summary.skipped_projects == []
    assert summary.outcome == "ok" and summary.exit_code() == ExitCode.OK
    listed = {(e["endpoint"], e["project_id"]): e["count"] for e in events.named("backups_listed")}
    assert listed == {(WEST, P1): 8, (EAST, P1): 4}


async def test_policies_of_one_endpoint_share_its_listing_and_overlap_only_there() -> None:
    api = two_endpoints()
    api.apis[EAST].projects[P1] += backups("prod-b", 3)
    loaded = policy_file(("a", WEST, "*", 1), ("b", WEST, "prod-*", 1), ("c", EAST, "*", 1))

    planned = await make_runner(api).list_and_plan(loaded, loaded.policies, now=NOW)

    assert api.apis[WEST].listed == [(WEST, P1)] and api.apis[EAST].listed == [(EAST, P1)]  # once per endpoint
    a, b, c = (r.plan for r in planned.results)
    assert a is not None and b is not None and c is not None
    overlapping = {d.backup.id for d in a.decisions if any(r.startswith("overlap") for r in d.reasons)}
    assert overlapping == {f"prod-a-{i}" for i in range(5)}  # a and b select west's prod graph
    assert {d.backup.id for d in b.decisions} == overlapping
    assert not [w for w in c.warnings if w.kind == "policy_overlap"]  # c is alone at east
    assert [d.backup.id for d in c.planned] == ["prod-b-1", "prod-b-2", "staging-b-1", "staging-b-2", "staging-b-3"]
    assert planned.listed == 8 + 7
    # The change gate's overlap context is the other policies of the same (endpoint, project_id).
    gates = [r.gate for r in planned.results]
    assert [len(g.context.overlap_digests) for g in gates if g is not None] == [1, 1, 0]


async def test_a_listing_that_fails_at_one_endpoint_skips_only_that_endpoints_policies() -> None:
    api = two_endpoints()
    api.apis[WEST].listings[P1] = ServerError("down", operation="list_backups", status=503, error_code="APIGW.0201")
    loaded = PROD_WEST_STAGING_EAST

    with capture_events() as events:
        summary = await make_runner(api).run(loaded, loaded.policies)

    assert api.apis[WEST].started == []
    assert sorted(api.apis[EAST].deleted) == ["staging-b-1", "staging-b-2", "staging-b-3"]
    prod, staging = summary.policies
    assert prod.listing_error is not None and staging.listing_error is None
    assert summary.skipped_projects == [P1]  # names, as the contract has them; the event says where
    [failed] = events.named("listing_failed")
    assert (failed["endpoint"], failed["project_id"], failed["error_code"]) == (WEST, P1, "APIGW.0201")
    assert summary.exit_code() == ExitCode.FAILED


async def test_the_quota_is_read_per_endpoint_and_its_events_say_which() -> None:
    api = two_endpoints()
    api.apis[WEST].quotas[P1] = 1
    api.apis[EAST].quotas[P1] = ServerError("quota down", operation="list_quotas", status=500)
    loaded = PROD_WEST_STAGING_EAST

    with capture_events() as events:
        await make_runner(api).run(loaded, loaded.policies)

    [low] = events.named("backup_quota_low")
    assert (low["endpoint"], low["project_id"], low["available"], low["listed"]) == (WEST, P1, 1, 8)
    [unavailable] = events.named("quota_unavailable")
    assert (unavailable["endpoint"], unavailable["project_id"]) == (EAST, P1)


# --- the journal ------------------------------------------------------------------------------------------------


async def test_a_policys_deleting_rows_resolve_against_its_own_endpoints_listing(store: Store) -> None:
    # An earlier run of `staging` (at east) ended with its intent for staging-b-1 written and no outcome.
    earlier = NOW - timedelta(hours=1)
    await store.start_run(RunRecord("r1", "cli", ("staging",), host="test", started_at=earlier))
    (intent,) = [b for b in backups("staging-b", 4) if b.id == "staging-b-1"]
    await store.write_intents("r1", Scope("staging", EAST, P1), [PlannedDeletion(backup_facts(intent), ("expired",))])
    await store.end_run("r1", ended_at=earlier, outcome="failed", counts={})
    api = two_endpoints()
    loaded = PROD_WEST_STAGING_EAST
    runner = make_runner(api, journal=lambda: StateJournal(store, endpoint_of=endpoint_of, clock=lambda: NOW))

    summary = await runner.run(loaded, loaded.policies, run_id="r2")

    # Still listed at east (absent from west's listing): `not_started`, then deleted afresh by this run's plan.
    first, second = (await store.why("staging-b-1")).records
    assert (first.run_id, first.state) == ("r1", "not_started")
    assert (second.run_id, second.state) == ("r2", "deleted")
    assert "staging-b-1" in api.apis[EAST].deleted
    assert summary.exit_code() == ExitCode.OK
