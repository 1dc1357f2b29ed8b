"""The runner in memory (`support.memory_api`): outcomes, guards, exit codes, deadline and stop, the run's events.

No HTTP server and no real time: the run's monotonic clock is a list a test moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ges_retention.backup import Backup, InvalidBackupRecord
from ges_retention.events import Deletion, FanOut, LoggingEvents, NullRunEvents, RunEvents
from ges_retention.exit_codes import ExitCode
from ges_retention.ges.errors import ServerError, Unauthorized
from ges_retention.policy_loading import PolicyFile, parse_policy_text
from ges_retention.retention_decisions import Decision
from ges_retention.runner import Runner
from ges_retention.summary import PolicyResult, RunSummary
from support.logs import capture_events
from support.memory_api import MemoryApi, listing_of

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
P1, P2 = "0a1b2c3d4e5f", "0f0e0d0c0b0a"


def policies(*, prod: str = "", staging: str = "", staging_project: str = P1, prod_max: int = 100) -> PolicyFile:
    return parse_policy_text(
        f"""\
version: 1
policies:
  - name: prod
    project_id: {P1}
    select: {{graphs: ["prod-*"]}}
    keep: {{last: 2}}
    safety: {{min_keep: 0, max_deletes: {prod_max}}}
{prod}
  - name: staging
    project_id: {staging_project}
    select: {{graphs: ["staging-*"]}}
    keep: {{last: 1}}
    safety: {{min_keep: 0, max_deletes: 100}}
{staging}"""
    )


def backups(graph: str, count: int, *, prefix: str | None = None) -> list[Backup]:
    """`count` daily successes of graph `graph` (named `graph`), newest first: `<prefix>-0` is the newest."""
    prefix = prefix or graph
    return [
        Backup(
            id=f"{prefix}-{i}",
            graph_id=f"id-{graph}",
            graph_name=graph,
            status="success",
            start_ms=int((NOW - timedelta(days=i + 1)).timestamp() * 1000),
            name=f"{prefix}-{i}",
            backup_method="auto",
        )
        for i in range(count)
    ]


def project(prod: int = 5, staging: int = 3) -> list[Backup]:
    return [*backups("prod-a", prod), *backups("staging-a", staging)]


class Clock:
    """The run's monotonic clock: moved by the test (or by the api, on a deletion)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_runner(api: MemoryApi, *, clock: Clock | None = None, events: Any = None, concurrency: int = 2) -> Runner:
    return Runner(
        api,
        endpoint_of=lambda _p: "mem://ges",
        concurrency=concurrency,
        run_deadline_s=60,
        events=events or LoggingEvents,
        clock=lambda: NOW,
        monotonic=clock or Clock(),
    )


async def run(api: MemoryApi, policy_file: PolicyFile | None = None, **kwargs: Any) -> RunSummary:
    policy_file = policy_file or policies()
    return await make_runner(api).run(policy_file, policy_file.policies, **kwargs)


# --- outcomes and exit codes ------------------------------------------------------------------------------------


def gone(*ids: str) -> MemoryApi:
    api = MemoryApi({P1: project()})
    api.gone.update(ids)
    return api


def failing(*ids: str) -> MemoryApi:
    api = MemoryApi({P1: project()})
    api.delete_errors.update({i: ServerError("boom", operation="delete_backup", status=500, attempts=5) for i in ids})
    return api


@pytest.mark.parametrize(
    ("api", "kwargs", "outcomes", "run_outcome", "code"),
    [
        (MemoryApi({P1: project()}), {}, {"prod": "ok", "staging": "ok"}, "ok", ExitCode.OK),
        (gone("prod-a-2"), {}, {"prod": "ok", "staging": "ok"}, "ok", ExitCode.OK),
        (failing("prod-a-4"), {}, {"prod": "partial", "staging": "ok"}, "partial", ExitCode.FAILED),
        (failing("prod-a-2", "prod-a-3", "prod-a-4"), {}, {"prod": "failed", "staging": "ok"}, "partial", 1),
        (MemoryApi({P1: project()}), {"dry_run": True}, {"prod": "dry_run", "staging": "dry_run"}, "dry_run", 0),
        (MemoryApi({P1: project()}), {"max_deletes": 2}, {"prod": "safety_stop", "staging": "ok"}, "safety_stop", 3),
        (MemoryApi({P1: project()}, {P1: ServerError("down", operation="list_backups", status=503)}), {},
         {"prod": "failed", "staging": "failed"}, "failed", ExitCode.FAILED),
    ],
)  # fmt: skip
async def test_outcomes_and_exit_codes(
    api: MemoryApi, kwargs: dict[str, Any], outcomes: dict[str, str], run_outcome: str, code: int
) -> None:
    summary = await run(api, **kwargs)
    assert {p.name: p.outcome for p in summary.policies} == outcomes
    assert summary.outcome == run_outcome
    assert summary.exit_code() == code


async def test_counts_and_ids_per_outcome() -> None:
    api = failing("prod-a-3")
    api.gone.add("prod-a-4")
    summary = await run(api)
    prod = summary.policies[0].to_json()
    assert prod["ids"] == {
        "deleted": ["prod-a-2"],
        "already_deleted": ["prod-a-4"],
        "failed": ["prod-a-3"],
        "pending": [],
        "not_started": [],
    }
    assert (prod["planned"], prod["deleted"], prod["already_deleted"], prod["failed"]) == (3, 1, 1, 1)
    assert summary.counts() == {
        "listed": 8, "kept": 3, "planned": 5, "deleted": 3, "already_deleted": 1, "failed": 1, "not_started": 0,
        "pending": 0,
    }  # fmt: skip


async def test_a_safety_stop_deletes_nothing_of_that_policy_only() -> None:
    api = MemoryApi({P1: project(prod=10)})
    summary = await run(api, policies(prod_max=5))
    assert summary.policies[0].safety_stop and summary.policies[0].planned == 8
    assert sorted(api.deleted) == ["staging-a-1", "staging-a-2"]


async def test_dry_policy_beside_a_live_one() -> None:
    api = MemoryApi({P1: project()})
    with capture_events() as logs:
        summary = await run(api, policies(staging="    dry_run: true"))
    assert not summary.dry_run, "the run is not dry: prod deletes"
    assert [(p.name, p.dry_run, p.outcome) for p in summary.policies] == [
        ("prod", False, "ok"),
        ("staging", True, "dry_run"),
    ]
    assert sorted(api.deleted) == ["prod-a-2", "prod-a-3", "prod-a-4"]
    started = next(e for e in logs if e["event"] == "run_started")
    assert started["dry_run"] is False
    finished = {e["policy"]: e["dry_run"] for e in logs if e["event"] == "policy_finished"}
    assert finished == {"prod": False, "staging": True}
    planned = {e["policy"]: e["dry_run"] for e in logs if e["event"] == "policy_planned"}
    assert planned == {"prod": False, "staging": True}


async def test_a_run_of_dry_policies_only_is_dry() -> None:
    api = MemoryApi({P1: project()})
    with capture_events() as logs:
        summary = await run(api, policies(prod="    dry_run: true", staging="    dry_run: true"))
    assert summary.dry_run and api.deleted == []
    assert next(e for e in logs if e["event"] == "run_started")["dry_run"] is True


# --- listing guards -------------------------------------------------------------------------------------------


def changed(backup: Backup, **changes: Any) -> Backup:
    values = {f: getattr(backup, f) for f in ("id", "graph_id", "status", "start_ms", "name", "graph_name")}
    values["backup_method"] = backup.backup_method
    return Backup(**{**values, **changes})


@pytest.mark.parametrize(
    ("answer", "error_code"),
    [
        (listing_of(project(), reported_count=9), "incomplete"),
        (listing_of(project(), later=[changed(project()[3], graph_id="elsewhere")]), "conflicting_record"),
        (listing_of(project(), later=[changed(project()[3], status="failed")]), "conflicting_record"),
        (InvalidBackupRecord("bad start_timestamp", backup_id="x"), "invalid_record"),
        (Unauthorized("no", operation="list_backups", status=401, error_code="APIGW.0301"), "APIGW.0301"),
    ],
)
async def test_an_untrusted_listing_deletes_nothing_of_its_project(answer: Any, error_code: str) -> None:
    api = MemoryApi({P1: project(), P2: backups("staging-b", 3)}, {P1: answer})
    with capture_events() as logs:
        summary = await run(api, policies(staging_project=P2))
    assert sorted(api.deleted) == ["staging-b-1", "staging-b-2"], "the other project still runs"
    assert summary.skipped_projects == [P1]
    assert summary.policies[0].listing_error and summary.policies[0].outcome == "failed"
    failed = [e for e in logs if e["event"] == "listing_failed"]
    assert [(e["project_id"], e["error_code"]) for e in failed] == [(P1, error_code)]
    assert summary.exit_code() == ExitCode.FAILED


async def test_a_backup_that_finished_while_paging_is_a_warning_not_a_failure() -> None:
    running = changed(project()[4], status="backing_up")
    first = [*project()[:4], running, *project()[5:]]
    api = MemoryApi({P1: project()}, {P1: listing_of(first, later=[project()[4]])})
    with capture_events() as logs:
        summary = await run(api)
    assert summary.outcome == "ok"
    assert "prod-a-4" not in api.deleted, "the first copy (still running) is the one planned: kept"
    assert [e["backup_ids"] for e in logs if e["event"] == "listing_conflict"] == [["prod-a-4"]]


async def test_each_project_is_listed_once() -> None:
    api = MemoryApi({P1: project()})
    await run(api)
    assert api.listed == [("mem://ges", P1)]


# --- deadline and stop ------------------------------------------------------------------------------------------


async def test_no_deletion_starts_after_the_deadline() -> None:
    clock = Clock()
    api = MemoryApi({P1: project(prod=6)})
    runner = make_runner(api, clock=clock, concurrency=1)
    original = api.delete_backup

    async def slow_delete(*args: Any, **kwargs: Any) -> Any:
        clock.t += 45  # the second deletion ends past the 60 s deadline
        return await original(*args, **kwargs)

    api.delete_backup = slow_delete  # type: ignore[method-assign]
    policy_file = policies()
    summary = await runner.run(policy_file, policy_file.policies)
    assert len(api.started) == 2
    assert summary.total("not_started") == 4  # prod's 2 others, and staging's 2
    assert summary.policies[0].outcome == "partial" and summary.outcome == "partial"
    assert summary.exit_code() == ExitCode.FAILED


async def test_a_stop_lets_in_flight_deletions_finish_and_starts_no_other() -> None:
    api = MemoryApi({P1: project(prod=8)}, gate=asyncio.Event())
    runner = make_runner(api, concurrency=2)
    policy_file = policies()
    task = asyncio.create_task(runner.run(policy_file, policy_file.policies))
    await api.wait_started(2)  # both workers are in flight, held at the gate
    runner.request_stop()
    api.gate.set()  # type: ignore[union-attr]
    summary = await task
    assert sorted(api.deleted) == sorted(api.started) and len(api.deleted) == 2
    assert summary.interrupted and summary.outcome == "interrupted"
    assert summary.total("not_started") == 4 + 2  # prod's 4 others, and staging's 2
    assert summary.exit_code(ExitCode.INTERRUPTED_SIGINT) == ExitCode.INTERRUPTED_SIGINT


async def test_a_stop_with_nothing_left_is_not_an_interruption() -> None:
    api = MemoryApi({P1: project()})
    runner = make_runner(api)
    runner.request_stop()
    policy_file = policies(prod="    dry_run: true", staging="    dry_run: true")
    summary = await runner.run(policy_file, policy_file.policies)
    assert not summary.interrupted and summary.outcome == "dry_run"


# --- the events ---------------------------------------------------------------------------------------------------


class Recorder(NullRunEvents):
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    def run_started(self, run_id: str, trigger: Any, policies: Sequence[str], dry_run: bool) -> None:
        self.seen.append(f"run_started {','.join(policies)}")

    def listing_done(self, project_id: str, backups: Sequence[Backup], conflicting_ids: Sequence[str]) -> None:
        self.seen.append(f"listing_done {len(backups)}")

    def policy_planned(self, result: PolicyResult, now: datetime) -> None:
        self.seen.append(f"policy_planned {result.name}")

    def deletion_pending(self, result: PolicyResult, decision: Decision) -> None:
        self.seen.append(f"pending {decision.backup.id}")

    def deletion_started(self, result: PolicyResult, decision: Decision) -> None:
        self.seen.append(f"started {decision.backup.id}")

    def deletion_finished(self, result: PolicyResult, decision: Decision, deletion: Deletion) -> None:
        self.seen.append(f"finished {decision.backup.id} {deletion.outcome}")

    def policy_finished(self, result: PolicyResult, duration_s: float) -> None:
        self.seen.append(f"policy_finished {result.name} {result.outcome}")

    def run_finished(self, summary: RunSummary) -> None:
        self.seen.append(f"run_finished {summary.outcome}")


async def test_every_subscriber_hears_the_run_in_order() -> None:
    first: list[str] = []
    second: list[str] = []
    api = MemoryApi({P1: project(prod=3, staging=2)})
    api.gone.add("staging-a-1")

    def subscribers() -> RunEvents:
        return FanOut(Recorder(first), Recorder(second))

    runner = make_runner(api, events=subscribers, concurrency=1)
    policy_file = policies()
    await runner.run(policy_file, policy_file.policies)
    assert (
        first
        == second
        == [
            "run_started prod,staging",
            "listing_done 5",
            "policy_planned prod",
            "policy_planned staging",
            "pending prod-a-2",
            "pending staging-a-1",
            "started prod-a-2",
            "finished prod-a-2 deleted",
            "started staging-a-1",
            "finished staging-a-1 already_deleted",
            "policy_finished prod ok",
            "policy_finished staging ok",
            "run_finished ok",
        ]
    )


async def test_policy_planned_comes_before_any_deletion_with_its_counts() -> None:
    api = MemoryApi({P1: project(prod=5)})
    with capture_events() as logs:
        await run(api, policies(staging="    dry_run: true"))
    names = [e["event"] for e in logs]
    assert names.index("policy_planned") < names.index("backup_deleted")
    prod = next(e for e in logs if e["event"] == "policy_planned" and e["policy"] == "prod")
    assert {k: prod[k] for k in ("kept", "planned", "due", "pending", "holds", "change_held", "dry_run")} == {
        "kept": 2, "planned": 3, "due": 3, "pending": 0, "holds": 0, "change_held": False, "dry_run": False
    }  # fmt: skip
    assert prod["run_id"] and prod["project_id"] == P1


async def test_deletion_lines_carry_the_backup_context() -> None:
    api = failing("prod-a-4")
    with capture_events() as logs:
        await run(api)
    failed = next(e for e in logs if e["event"] == "backup_delete_failed")
    assert (failed["policy"], failed["backup_id"], failed["graph_id"], failed["status"]) == (
        "prod", "prod-a-4", "id-prod-a", 500
    )  # fmt: skip
    assert failed["attempts"] == 5 and failed["run_id"]


# --- graph names (GES facts: resolved per graph id, fail closed) ------------------------------------------------


def unnamed(items: list[Backup]) -> list[Backup]:
    return [changed(b, graph_name="") for b in items]


async def test_a_record_without_a_graph_name_is_excluded_like_its_graph() -> None:
    # staging-a's newest record carries the name; the older ones do not. Before names were resolved per graph id,
    # the unnamed records escaped `exclude_graphs` and the "everything but staging" policy deleted them.
    staging = backups("staging-a", 4)
    api = MemoryApi({P1: [*backups("prod-a", 3), staging[0], *unnamed(staging[1:])]})
    policy_file = parse_policy_text(
        f"""\
version: 1
policies:
  - name: all-but-staging
    project_id: {P1}
    select: {{exclude_graphs: ["staging-*"]}}
    keep: {{last: 1}}
    safety: {{min_keep: 0}}
"""
    )
    summary = await run(api, policy_file)
    assert sorted(api.deleted) == ["prod-a-1", "prod-a-2"]
    assert summary.outcome == "ok"


async def test_one_graph_id_under_two_names_makes_the_listing_untrusted() -> None:
    prod = backups("prod-a", 5)
    api = MemoryApi({P1: [*prod[:4], changed(prod[4], graph_name="staging-a"), *backups("staging-b", 3)]})
    with capture_events() as logs:
        summary = await run(api)
    assert api.deleted == []
    assert summary.skipped_projects == [P1] and summary.exit_code() == ExitCode.FAILED
    failed = next(e for e in logs if e["event"] == "listing_failed")
    assert failed["error_code"] == "conflicting_graph_name" and "'id-prod-a'" in failed["error"]


@pytest.mark.parametrize(
    ("select", "selected"),
    [
        ("{}", True),  # the default, graphs: ["*"]
        ('{graphs: ["*"]}', True),
        ('{graphs: ["id-mystery"]}', True),  # by its exact id
        ('{graphs: ["**"]}', False),  # any other name glob does not select an unknown name
        ('{graphs: ["*", "prod-*"]}', True),
        ('{graphs: ["?*"]}', False),
        ('{exclude_graphs: ["prod-*"]}', False),  # every exclude glob excludes an unknown name
        ('{graphs: ["id-mystery"], exclude_graphs: ["nothing-like-it"]}', False),
    ],
)
async def test_a_graph_whose_name_is_unknown_fails_closed_both_ways(select: str, selected: bool) -> None:
    mystery = [changed(b, graph_id="id-mystery", graph_name="") for b in backups("m", 3)]
    api = MemoryApi({P1: mystery})
    policy_file = parse_policy_text(
        f"""\
version: 1
policies:
  - name: p
    project_id: {P1}
    select: {select}
    keep: {{last: 1}}
    safety: {{min_keep: 0}}
"""
    )
    await run(api, policy_file)
    assert sorted(api.deleted) == (["m-1", "m-2"] if selected else [])


# --- the daemon's per-policy stop ------------------------------------------------------------------------------


async def test_should_continue_false_starts_no_further_deletion_of_that_policy_only() -> None:
    api = MemoryApi({P1: project(prod=6, staging=4)})
    asked: list[str] = []

    def should_continue(name: str) -> bool:
        asked.append(name)
        return not (name == "prod" and asked.count("prod") > 1)  # a reload paused prod after its first deletion

    runner = make_runner(api, concurrency=1)
    policy_file = policies()
    summary = await runner.run(policy_file, policy_file.policies, should_continue=should_continue)
    prod, staging = summary.policies
    assert (prod.deleted, prod.not_started, prod.outcome) == (1, 3, "interrupted")
    assert (staging.deleted, staging.outcome) == (3, "ok")
    assert summary.outcome == "interrupted"
    assert runner.active == {}  # the live summary is dropped once the run ends


async def test_a_policy_told_to_stop_starts_no_further_deletion_and_the_others_go_on() -> None:
    api = MemoryApi({P1: project(prod=6, staging=3)})
    asked: list[str] = []

    def should_continue(policy: str) -> bool:
        asked.append(policy)
        return not (policy == "prod" and "prod-a-3" in api.deleted)

    policy_file = policies()
    summary = await make_runner(api, concurrency=1).run(
        policy_file, policy_file.policies, should_continue=should_continue
    )
    assert sorted(api.deleted) == ["prod-a-2", "prod-a-3", "staging-a-1", "staging-a-2"]
    prod, staging = summary.policies
    assert (prod.outcome, prod.ids["not_started"]) == ("interrupted", ["prod-a-4", "prod-a-5"])
    assert staging.outcome == "ok"
    assert summary.outcome == "interrupted"
