"""GES facts in the runner (`support.memory_api`): orphans from the graph listing, graph names, the backup quota,
sizes in counts, events and metrics.

The graph listing follows the backups listing; when it fails or cannot be trusted, the project deletes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ges_retention.backup import Backup
from ges_retention.events import FanOut, LoggingEvents, MetricsEvents
from ges_retention.exit_codes import ExitCode
from ges_retention.ges.client import GraphListing
from ges_retention.ges.errors import GraphGoneError, ListingError, ServerError
from ges_retention.metrics import Metrics
from ges_retention.orphans import mark_orphans
from ges_retention.policy_loading import PolicyFile, parse_policy_text
from ges_retention.quota import quota_low
from ges_retention.runner import Runner
from ges_retention.summary import RunSummary
from support.logs import capture_events
from support.memory_api import MemoryApi, graph_listing_of

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
P1 = "0a1b2c3d4e5f"


def policy_entry(name: str, select: str, graphs: str) -> str:
    return f"""\
  - name: {name}
    project_id: {P1}
    select: {{graphs: {graphs}{select}}}
    keep: {{last: 1}}
    safety: {{min_keep: 0, max_deletes: 100}}
"""


def policy(select: str = "", graphs: str = '["*"]', *, names: tuple[str, ...] = ("p",)) -> PolicyFile:
    entries = "".join(policy_entry(name, select, graphs) for name in names)
    return parse_policy_text(f"version: 1\npolicies:\n{entries}")


def backups(graph: str, count: int, *, name: str | None = None, size_mb: float | None = 10.0) -> list[Backup]:
    """`count` daily successes of graph id `graph` (named `name`), newest first: `<graph>-0` is the newest."""
    return [
        Backup(
            id=f"{graph}-{i}",
            graph_id=graph,
            graph_name=name if name is not None else graph,
            status="success",
            start_ms=int((NOW - timedelta(days=i + 1)).timestamp() * 1000),
            name=f"{graph}-{i}",
            backup_method="manual",
            size_mb=size_mb,
        )
        for i in range(count)
    ]


def api_with_orphans() -> MemoryApi:
    """Graph `live` exists; graph `gone` was deleted with keep_backup (its backups are orphans)."""
    api = MemoryApi({P1: [*backups("live", 3), *backups("gone", 3)]})
    api.graph_listings[P1] = graph_listing_of({"live": "live"})
    return api


def runner(api: MemoryApi, events: Any = LoggingEvents) -> Runner:
    return Runner(
        api,
        endpoint_of=lambda _p: "mem://ges",
        run_deadline_s=60,
        events=events,
        clock=lambda: NOW,
        monotonic=lambda: 0,
    )


async def run(api: MemoryApi, policy_file: PolicyFile, **kwargs: Any) -> RunSummary:
    return await runner(api).run(policy_file, policy_file.policies, **kwargs)


# --- orphans ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orphans", "deleted"),
    [
        ("include", {"live-1", "live-2", "gone-1", "gone-2"}),
        ("exclude", {"live-1", "live-2"}),
        ("only", {"gone-1", "gone-2"}),
    ],
)
async def test_select_orphans_include_exclude_only(orphans: str, deleted: set[str]) -> None:
    api = api_with_orphans()
    with capture_events() as events:
        summary = await run(api, policy(f", orphans: {orphans}"))
    assert set(api.deleted) == deleted
    assert summary.exit_code() == ExitCode.OK
    plan = summary.policies[0].plan
    assert plan is not None
    assert {d.backup.id: d.backup.orphan for d in plan.decisions} == {
        b: b.startswith("gone") for b in {d.backup.id for d in plan.decisions}
    }
    assert events.named("backups_listed")[0]["orphans"] == 3


async def test_the_graph_listing_comes_after_the_backups_listing() -> None:
    api = api_with_orphans()
    order: list[str] = []
    list_backups, list_graphs = api.list_backups, api.list_graphs

    async def backups_then(*args: Any, **kwargs: Any) -> Any:
        order.append("backups")
        return await list_backups(*args, **kwargs)

    async def graphs_then(*args: Any, **kwargs: Any) -> Any:
        order.append("graphs")
        return await list_graphs(*args, **kwargs)

    api.list_backups = backups_then  # type: ignore[method-assign]
    api.list_graphs = graphs_then  # type: ignore[method-assign]
    await run(api, policy())
    assert order == ["backups", "graphs"]


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (ServerError("down", operation="list_graphs", status=503, error_code="APIGW.0201"), "APIGW.0201"),
        (ListingError("repeats", operation="list_graphs", reason="repeating"), "graph_listing_failed"),
        (graph_listing_of({"live": "live"}, reported_count=2), "incomplete_graphs"),
        (GraphListing([{"id": "live", "name": "live"}, {"name": "no id"}], 2, 1, True), "invalid_graph_record"),
        (GraphListing([{"id": "live", "name": 7}], 1, 1, True), "invalid_graph_record"),
        (GraphListing(["live"], 1, 1, True), "invalid_graph_record"),
        (
            GraphListing([{"id": "live", "name": "live"}], 1, 2, True, ({"id": "live", "name": "other"},)),
            "conflicting_graph_name",
        ),
        (graph_listing_of({"live": "renamed"}), "conflicting_graph_name"),
    ],
)
async def test_a_failed_or_untrusted_graph_listing_deletes_nothing(answer: Any, code: str) -> None:
    api = api_with_orphans()
    api.graph_listings[P1] = answer
    with capture_events() as events:
        summary = await run(api, policy())
    assert api.deleted == []
    assert api.started == []
    assert summary.exit_code() == ExitCode.FAILED
    assert summary.skipped_projects == [P1]
    [failed] = events.named("listing_failed")
    assert failed["error_code"] == code


async def test_a_graph_name_comes_from_the_graph_listing_when_no_record_has_it() -> None:
    # The backups of `g1` carry no graph name: the graph listing names it, so a name glob can select it.
    api = MemoryApi({P1: [*backups("g1", 3, name=""), *backups("g2", 3, name="")]})
    api.graph_listings[P1] = graph_listing_of({"g1": "prod-one", "g2": ""})
    summary = await run(api, policy(graphs='["prod-*"]'))
    assert set(api.deleted) == {"g1-1", "g1-2"}  # g2's name is not known anywhere: a name glob does not select it
    plan = summary.policies[0].plan
    assert plan is not None
    assert {d.backup.graph_name for d in plan.decisions} == {"prod-one"}


async def test_an_orphan_whose_name_is_unknown_fails_closed() -> None:
    # An orphan has no entry in the graph listing; without a name in its records only "*" selects it.
    api = MemoryApi({P1: [*backups("gone", 3, name="")]})
    api.graph_listings[P1] = graph_listing_of({})
    await run(api, policy(graphs='["gone*"]'))
    assert api.deleted == []
    await run(api, policy(', exclude_graphs: ["staging-*"]'))
    assert api.deleted == []
    await run(api, policy())
    assert set(api.deleted) == {"gone-1", "gone-2"}


@pytest.mark.parametrize(
    "error",
    [
        GraphGoneError("gone", operation="delete_backup", status=400, error_code="GES.7000"),
        ServerError("down", operation="delete_backup", status=500),
    ],
)
async def test_deleting_an_orphan_counts_only_on_success_or_7024(error: Exception) -> None:
    api = api_with_orphans()
    api.delete_errors["gone-1"] = error  # type: ignore[assignment]
    api.gone.add("gone-2")
    summary = await run(api, policy(", orphans: only"))
    result = summary.policies[0]
    assert result.ids["failed"] == ["gone-1"]
    assert result.ids["already_deleted"] == ["gone-2"]
    assert result.outcome == "partial"  # the one already gone (GES.7024) is done; the other is not
    assert summary.exit_code() == ExitCode.FAILED


# --- quota --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("available", "listed", "low"),
    [
        (-1, 0, False),
        (0, 0, True),
        (5, 0, True),
        (6, 0, False),
        (10, 90, True),
        (11, 90, False),
        (100, 900, True),
        (101, 900, False),
    ],
)
def test_quota_low_threshold(available: int, listed: int, low: bool) -> None:
    assert quota_low(available, listed) is low


@pytest.mark.parametrize(("available", "warned"), [(0, True), (5, True), (1000, False), (-1, False)])
async def test_the_quota_is_read_once_and_warns_when_low(available: int, warned: bool) -> None:
    api = api_with_orphans()
    api.quotas[P1] = available
    metrics = Metrics()
    calls: list[str] = []
    backup_quota = api.backup_quota

    async def counted(*args: Any, **kwargs: Any) -> int | None:
        calls.append("quota")
        return await backup_quota(*args, **kwargs)

    api.backup_quota = counted  # type: ignore[method-assign]
    two = policy(names=("p", "q"))
    with capture_events() as events:
        summary = await runner(api, lambda: FanOut(LoggingEvents(), MetricsEvents(metrics))).run(two, two.policies)
    assert calls == ["quota"]  # once per project, however many policies
    assert [e["available"] for e in events.named("backup_quota_low")] == ([available] if warned else [])
    assert metrics.backup_quota_available.labels(P1)._value.get() == available
    assert summary.exit_code() == ExitCode.OK


@pytest.mark.parametrize(
    "answer",
    [None, ServerError("down", operation="list_quotas", status=503), ValueError("a bug"), RuntimeError("")],
)
async def test_a_quota_that_cannot_be_read_is_a_warning_never_a_failure(answer: Any) -> None:
    api = api_with_orphans()
    api.quotas[P1] = answer
    with capture_events() as events:
        summary = await run(api, policy())
    [warning] = events.named("quota_unavailable")
    assert warning["log_level"] == "warning"
    assert warning["error"]
    assert summary.exit_code() == ExitCode.OK
    assert len(api.deleted) == 4


async def test_the_quota_is_not_read_when_the_listing_fails() -> None:
    # A project that cannot be listed would only fail again (another login, another refusal); its count is unknown.
    api = api_with_orphans()
    api.listings[P1] = ServerError("down", operation="list_backups", status=503)
    api.quotas[P1] = ServerError("must not be asked", operation="list_quotas", status=500)
    with capture_events() as events:
        await run(api, policy())
    assert events.named("listing_failed")
    assert not events.named("quota_unavailable") and not events.named("backup_quota_low")


# --- sizes --------------------------------------------------------------------------------------------------------


async def test_freed_mb_counts_deleted_backups_with_a_size() -> None:
    project = [*backups("live", 3), *backups("big", 3, size_mb=1.5), *backups("unsized", 3, size_mb=None)]
    api = MemoryApi({P1: project})
    api.gone.add("big-2")  # already gone: GES freed it, not this run
    metrics = Metrics()
    with capture_events() as events:
        summary = await runner(api, lambda: FanOut(LoggingEvents(), MetricsEvents(metrics))).run(
            policy(), policy().policies
        )
    result = summary.policies[0]
    assert result.freed_mb == 10 + 10 + 1.5
    assert summary.to_json()["freed_mb"] == 21.5
    assert result.to_json()["freed_mb"] == 21.5
    assert "would_free_mb" not in summary.to_json()
    assert events.named("run_finished")[0]["freed_mb"] == 21.5
    assert events.named("policy_finished")[0]["freed_mb"] == 21.5
    sizes = {e["backup_id"]: e["size_mb"] for e in events.named("backup_deleted")}
    assert sizes == {"live-1": 10.0, "live-2": 10.0, "big-1": 1.5, "unsized-1": None, "unsized-2": None}
    assert metrics.deleted_megabytes.labels("p")._value.get() == 21.5


async def test_a_dry_run_reports_would_free_mb() -> None:
    api = MemoryApi({P1: [*backups("live", 3), *backups("unsized", 3, size_mb=None)]})
    with capture_events() as events:
        summary = await run(api, policy(), dry_run=True)
    assert api.deleted == []
    assert summary.to_json()["would_free_mb"] == 20.0
    assert "freed_mb" not in summary.to_json()
    assert events.named("run_finished")[0]["would_free_mb"] == 20.0


async def test_a_safety_stop_would_free_nothing() -> None:
    api = MemoryApi({P1: backups("live", 5)})
    summary = await run(api, policy(), dry_run=True, max_deletes=1)
    assert summary.to_json()["would_free_mb"] == 0.0


def test_a_backup_changed_only_in_size_between_pages_is_no_conflict() -> None:
    # A backup that finished while we paged gains its size: the first copy (running, no size) is used.
    first = replace(backups("live", 1, size_mb=None)[0], status="backing_up")
    later = replace(first, status="success", size_mb=12.0)
    from ges_retention.listing_trust import trusted_listing
    from support.memory_api import listing_of

    checked = trusted_listing(listing_of([first], later=[later]))
    assert checked.backups == [first]


def test_would_free_mb_counts_only_the_due_deletions_under_two_phase() -> None:
    from datetime import timedelta as td

    from ges_retention.durations import Duration
    from ges_retention.retention import plan as plan_backups
    from ges_retention.summary import PolicyResult
    from ges_retention.two_phase import two_phase

    project = backups("live", 4, size_mb=5.0)  # live-1..live-3 are planned for deletion
    policy_file = policy()
    planned = plan_backups(project, policy_file.policies[0], NOW)
    # live-1 has been pending for two days, the others were never planned before: only live-1 is due.
    clocks = two_phase(planned, {"live-1": NOW - td(days=2)}, Duration.parse("1d"), NOW, UTC)
    result = PolicyResult("p", P1, plan=planned, dry_run=True, two_phase=clocks)
    assert [d.backup.id for d in result.due] == ["live-1"]
    assert result.sizes() == {"would_free_mb": 5.0}


def test_orphans_are_marked_in_the_list_given_so_a_listing_is_never_held_twice() -> None:
    # Every backup changes (`orphan` goes from unknown to known): a second list would hold a second copy of each
    # (about 6 MB more peak RSS for 100,000 backups, issue 17's listing target).
    listed = [*backups("g1", 2, name="one"), *backups("gone", 1, name="old")]
    check = mark_orphans(listed, {"g1": "one"})
    assert check.backups is listed
    assert [b.orphan for b in listed] == [False, False, True]
