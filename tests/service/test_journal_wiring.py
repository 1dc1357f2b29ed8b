"""The runner with a real journal (`StateJournal` over a SQLite store): write-ahead intents before every DELETE,
outcomes with the request id after, holds re-checked per batch, and no further DELETE once the state fails."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from test_runner import NOW, P1, Clock, policies, project

from ges_retention.audit_report import history_document
from ges_retention.exit_codes import ExitCode
from ges_retention.ges.client import DeleteResult
from ges_retention.journal import StateJournal
from ges_retention.runner import Runner
from ges_retention.state import Scope, Store
from support.logs import capture_events
from support.memory_api import MemoryApi
from support.state_faults import FailingWrites

ENDPOINT = "mem://ges"


class JournalledApi(MemoryApi):
    """A `MemoryApi` that, at each DELETE, reads what the journal says of that backup (write-ahead: `deleting`),
    and answers with a request id."""

    store: Store | None = None
    seen_states: dict[str, str]

    async def delete_backup(
        self, endpoint: str, project_id: str, graph_id: str, backup_id: str, *, deadline: float
    ) -> DeleteResult:
        assert self.store is not None
        report = await self.store.why(backup_id)
        self.seen_states[backup_id] = report.records[-1].state if report.records else "none"
        done = await super().delete_backup(endpoint, project_id, graph_id, backup_id, deadline=deadline)
        return DeleteResult(
            done.outcome, done.attempts, done.duration_s, done.error_code, done.status, f"req-{backup_id}"
        )


def make_runner(api: MemoryApi, store: Any, *, concurrency: int = 2) -> Runner:
    return Runner(
        api,
        endpoint_of=lambda _p: ENDPOINT,
        concurrency=concurrency,
        run_deadline_s=60,
        journal=lambda: StateJournal(store, endpoint_of=lambda _p: ENDPOINT, clock=lambda: NOW),
        clock=lambda: NOW,
        monotonic=Clock(),
    )


def journalled_api(store: Store) -> JournalledApi:
    api = JournalledApi({P1: project(prod=6, staging=4)})
    api.store = store
    api.seen_states = {}
    return api


async def test_every_delete_is_sent_after_its_intent_and_why_shows_the_deletion(store: Store) -> None:
    api = journalled_api(store)
    policy_file = policies()
    summary = await make_runner(api, store).run(policy_file, policy_file.policies, run_id="run-1")
    assert summary.exit_code() == ExitCode.OK
    assert sorted(api.deleted) == ["prod-a-2", "prod-a-3", "prod-a-4", "prod-a-5", "staging-a-1", "staging-a-2",
                                   "staging-a-3"]  # fmt: skip
    assert set(api.seen_states.values()) == {"deleting"}  # the intent was committed before each DELETE
    report = await store.why("prod-a-3")
    (record,) = report.records
    assert (record.state, record.scope, record.run_id) == ("deleted", Scope("prod", ENDPOINT, P1), "run-1")
    assert (record.request_id, record.attempts, record.reasons) == ("req-prod-a-3", 1, ("expired",))
    run = await store.get_run("run-1")
    assert run is not None and run.outcome == "ok" and run.ended_at is not None
    assert run.policies == ("prod", "staging")
    assert run.counts["deleted"] == 7


async def test_a_dry_run_is_recorded_and_writes_no_intent(store: Store) -> None:
    api = journalled_api(store)
    policy_file = policies()
    summary = await make_runner(api, store).run(policy_file, policy_file.policies, dry_run=True, run_id="dry")
    assert summary.outcome == "dry_run" and api.started == []
    assert (await store.why("prod-a-3")).empty
    run = await store.get_run("dry")
    assert run is not None and run.outcome == "dry_run"


async def test_the_recorded_counts_carry_the_sizes_freed_or_that_would_be_freed(store: Store) -> None:
    """Contract: run counts gain `freed_mb` (dry runs: `would_free_mb`); `history` and `GET /v1/runs` show the
    journal's counts, so the journal keeps them."""
    sized = [dataclasses.replace(b, size_mb=1.5) for b in project(prod=6, staging=4)]
    api = JournalledApi({P1: sized})
    api.store, api.seen_states = store, {}
    policy_file = policies()
    await make_runner(api, store).run(policy_file, policy_file.policies, dry_run=True, run_id="dry")
    await make_runner(api, store).run(policy_file, policy_file.policies, run_id="real")
    dry, real = await store.get_run("dry"), await store.get_run("real")
    assert dry is not None and real is not None
    assert dry.counts["would_free_mb"] == 7 * 1.5 and "freed_mb" not in dry.counts
    assert real.counts["freed_mb"] == 7 * 1.5 and "would_free_mb" not in real.counts
    assert history_document([real])["runs"][0]["counts"]["freed_mb"] == 10.5
    # Runs are kept by policy name: the scope each policy ran in is in its counts (`ack` reads it).
    assert real.counts["scopes"] == {
        "prod": {"endpoint": ENDPOINT, "project_id": P1},
        "staging": {"endpoint": ENDPOINT, "project_id": P1},
    }


class _HoldAfterPlanning(StateJournal):
    """A hold placed once the plan is made (holds read before planning are the planner's: see below)."""

    async def before_planning_ends(self, results: Any, now: Any) -> None:
        await self.store.put_hold("prod-a-4", "legal asked", by="test")
        await super().before_planning_ends(results, now)


async def test_a_hold_placed_before_the_run_is_the_planners(store: Store) -> None:
    api = journalled_api(store)
    await store.put_hold("prod-a-4", "legal asked", by="test")
    policy_file = policies()
    summary = await make_runner(api, store).run(policy_file, policy_file.policies, run_id="held")
    prod = summary.policies[0]
    assert "prod-a-4" not in api.started and prod.held == {}
    kept = next(d for d in prod.plan.decisions if d.backup.id == "prod-a-4")  # type: ignore[union-attr]
    assert (kept.action, kept.reasons) == ("keep", ("held: legal asked",))
    assert (prod.planned, prod.deleted) == (3, 3)
    assert (await store.why("prod-a-4")).records == ()


async def test_a_hold_typed_in_another_case_keeps_the_backup_in_the_plan_and_in_the_batch(store: Store) -> None:
    api = journalled_api(store)
    await store.put_hold("PROD-A-4", "typed in upper case", by="test", now=NOW)
    policy_file = policies()
    with capture_events() as logs:
        summary = await make_runner(api, store).run(policy_file, policy_file.policies, run_id="held")
    prod = summary.policies[0]
    kept = next(d for d in prod.plan.decisions if d.backup.id == "prod-a-4")  # type: ignore[union-attr]
    assert (kept.action, kept.reasons) == ("keep", ("held: typed in upper case",))
    assert "prod-a-4" not in api.started and prod.deleted == 3
    assert [(e["backup_id"], e["reason"]) for e in logs.named("backup_held")] == [("prod-a-4", "typed in upper case")]


async def test_each_backup_a_hold_keeps_is_told_as_backup_held_at_debug(store: Store) -> None:
    """Contract: `backup_held` (debug; `reason`, `until`) for each backup of the plan that a hold kept."""
    api = journalled_api(store)
    until = NOW + timedelta(days=2)
    await store.put_hold("prod-a-4", "legal asked", by="test", now=NOW)
    await store.put_hold("staging-a-2", "restore drill", until=until, by="test", now=NOW)
    await store.put_hold("unlisted-9", "not in any listing", by="test", now=NOW)
    policy_file = policies()
    with capture_events() as logs:
        await make_runner(api, store).run(policy_file, policy_file.policies, run_id="held")
    held = {(e["policy"], e["backup_id"]): e for e in logs.named("backup_held")}
    assert set(held) == {("prod", "prod-a-4"), ("staging", "staging-a-2")}
    prod, staging = held["prod", "prod-a-4"], held["staging", "staging-a-2"]
    assert (prod["log_level"], prod["reason"], prod["until"]) == ("debug", "legal asked", None)
    assert (staging["log_level"], staging["reason"], staging["until"]) == (
        "debug",
        "restore drill",
        "2026-11-29T12:00:00Z",
    )
    assert prod["run_id"] == "held"
    assert "prod-a-4" not in api.started and "staging-a-2" not in api.started


async def test_a_hold_placed_before_the_batch_keeps_the_backup_with_its_reason(store: Store) -> None:
    api = journalled_api(store)
    policy_file = policies()
    runner = make_runner(api, store)
    runner._journal = lambda: _HoldAfterPlanning(store, endpoint_of=lambda _p: ENDPOINT, clock=lambda: NOW)
    with capture_events() as events:
        summary = await runner.run(policy_file, policy_file.policies, run_id="held")
    assert "prod-a-4" not in api.started
    prod = summary.policies[0]
    assert prod.held == {"prod-a-4": "held: legal asked"}
    assert (prod.planned, prod.deleted, prod.not_started) == (3, 3, 0)
    assert summary.exit_code() == ExitCode.OK
    assert [e["reasons"] for e in events.named("deletion_cancelled")] == [["held: legal asked"]]
    (record,) = (await store.why("prod-a-4")).records
    assert (record.state, record.reasons, record.closed_reasons) == ("cancelled", ("expired",), ("held: legal asked",))


# Writes: 1 start_run, 2-3 resolve_deleting (prod, staging), 4 the first intent batch, then outcomes and batches.
@pytest.mark.parametrize("fail_on", [2, 4, 5, 7])
async def test_once_the_state_cannot_be_written_no_further_delete_is_sent(store: Store, fail_on: int) -> None:
    api = journalled_api(store)
    failing = FailingWrites(store, fail_on=fail_on)
    policy_file = policies()
    runner = make_runner(api, failing, concurrency=2)
    with capture_events() as events:
        summary = await runner.run(policy_file, policy_file.policies, run_id="full")
    (unavailable,) = events.named("state_unavailable")
    assert "disk is full" in unavailable["error"]
    assert summary.exit_code() == ExitCode.FAILED
    assert summary.state_error is not None
    # Every DELETE sent had its intent committed before the failure; none was sent after it.
    assert set(api.seen_states.values()) <= {"deleting"}
    committed_batches = failing.writes[: fail_on - 1].count("write_intents")
    assert len(api.started) <= 2 * committed_batches
    not_started = sum(p.not_started for p in summary.policies)
    assert not_started + len(api.started) == 7
    assert not_started > 0
    assert failing.writes[fail_on - 1] in {"resolve_deleting", "write_intents", "record_outcomes"}


async def test_a_state_that_cannot_record_the_start_lists_nothing_and_deletes_nothing(store: Store) -> None:
    from ges_retention.journal import JournalUnavailable

    api = journalled_api(store)
    policy_file = policies()
    with capture_events() as events, pytest.raises(JournalUnavailable):
        await make_runner(api, FailingWrites(store, fail_on=1)).run(policy_file, policy_file.policies)
    assert api.listed == [] and api.started == []
    assert len(events.named("state_unavailable")) == 1


async def test_each_run_prunes_what_ended_longer_ago_than_keep_days(store: Store) -> None:
    from datetime import timedelta

    from ges_retention.state import RunRecord

    old = RunRecord("old", "cli", ("prod",), "elsewhere:1", started_at=NOW - timedelta(days=500))
    await store.start_run(old)
    await store.end_run("old", ended_at=NOW - timedelta(days=500), outcome="ok", counts={})
    older = RunRecord("older", "cli", ("prod",), "elsewhere:1", started_at=NOW - timedelta(days=600))
    await store.start_run(older)
    await store.end_run("older", ended_at=NOW - timedelta(days=600), outcome="ok", counts={})
    api = journalled_api(store)
    policy_file = policies()
    runner = Runner(
        api,
        endpoint_of=lambda _p: ENDPOINT,
        run_deadline_s=60,
        journal=lambda: StateJournal(store, endpoint_of=lambda _p: ENDPOINT, clock=lambda: NOW, keep_days=400),
        clock=lambda: NOW,
        monotonic=Clock(),
    )
    await runner.run(policy_file, policy_file.policies, run_id="now")
    assert await store.get_run("older") is None and await store.get_run("old") is None
    assert await store.get_run("now") is not None
