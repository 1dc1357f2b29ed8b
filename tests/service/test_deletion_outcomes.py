"""The deletion phase's one outcome writer: every outcome of a committed intent is written, in the order the
deletions finished, several in one write while the previous write is in progress; a write that fails leaves its
rows `deleting` (never `deleted` without a DELETE answered)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from test_journal_wiring import ENDPOINT, JournalledApi, make_runner
from test_runner import NOW, P1, policies, project

from ges_retention.exit_codes import ExitCode
from ges_retention.ges.client import DeleteResult
from ges_retention.journal import Finished, StateJournal
from ges_retention.state import Store
from support.logs import capture_events
from support.state_faults import FailingWrites

ALL = 7  # deletions the two policies plan over project(prod=6, staging=4)


class _CountingApi(JournalledApi):
    """Sets `all_answered` once every planned DELETE has been answered."""

    all_answered: asyncio.Event

    async def delete_backup(
        self, endpoint: str, project_id: str, graph_id: str, backup_id: str, *, deadline: float
    ) -> DeleteResult:
        done = await super().delete_backup(endpoint, project_id, graph_id, backup_id, deadline=deadline)
        if len(self.deleted) == ALL:
            self.all_answered.set()
        return done


def _api(store: Store) -> _CountingApi:
    api = _CountingApi({P1: project(prod=6, staging=4)})
    api.store, api.seen_states, api.all_answered = store, {}, asyncio.Event()
    return api


class _SlowFirstWrite(StateJournal):
    """Records each `after_deletions` call; the first one waits (bounded) until every DELETE was answered, so the
    others pile up behind it."""

    def __init__(self, *args: Any, api: _CountingApi, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = api
        self.calls: list[list[str]] = []

    async def after_deletions(self, finished: Sequence[Finished]) -> None:
        self.calls.append([decision.backup.id for _, decision, _, _ in finished])
        if len(self.calls) == 1:
            async with asyncio.timeout(5):
                await self.api.all_answered.wait()
        await super().after_deletions(finished)


async def test_outcomes_are_all_written_in_the_order_the_deletions_finished_batched_behind_a_slow_write(
    store: Store,
) -> None:
    api = _api(store)
    journals: list[_SlowFirstWrite] = []

    def journal() -> _SlowFirstWrite:
        journals.append(_SlowFirstWrite(store, endpoint_of=lambda _p: ENDPOINT, clock=lambda: NOW, api=api))
        return journals[-1]

    runner = make_runner(api, store, concurrency=2)
    runner._journal = journal
    policy_file = policies()
    with capture_events() as logs:
        summary = await runner.run(policy_file, policy_file.policies, run_id="batched")
    assert summary.exit_code() == ExitCode.OK
    (used,) = journals
    finished_order = [e["backup_id"] for e in logs.named("backup_deleted")]
    assert len(finished_order) == ALL
    # Each outcome written once, in the order finished; those reported during the first write went in one more.
    assert [backup_id for call in used.calls for backup_id in call] == finished_order
    # The first write took the first group (one outcome per worker); all the others, reported while it waited,
    # went in the one write after it.
    assert len(used.calls) == 2 and len(used.calls[1]) >= ALL - 2
    for backup_id in finished_order:
        (record,) = (await store.why(backup_id)).records
        assert (record.state, record.request_id) == ("deleted", f"req-{backup_id}")


async def test_an_outcome_write_that_fails_leaves_its_rows_deleting_never_deleted_without_an_answer(
    store: Store,
) -> None:
    api = _api(store)
    failing = FailingWrites(store, fail_on=2, only=frozenset({"record_outcomes"}))  # the first outcome write passes
    policy_file = policies()
    with capture_events() as events:
        summary = await make_runner(api, failing, concurrency=2).run(policy_file, policy_file.policies, run_id="x")
    assert summary.exit_code() == ExitCode.FAILED and summary.state_error is not None
    assert len(events.named("state_unavailable")) == 1
    states = {}
    for backup_id in api.started:
        (record,) = (await store.why(backup_id)).records
        states[backup_id] = record.state
    assert {b for b, s in states.items() if s == "deleted"} <= set(api.deleted)
    assert set(states.values()) <= {"deleted", "deleting"}
    assert "deleting" in states.values()  # the failed write's rows: a later trusted listing resolves them
    assert failing.writes.count("record_outcomes") == 2  # nothing written after the failure


class _DyingWriter(StateJournal):
    """A journal whose outcome writer dies of a bug (not a `JournalUnavailable`) on its first write."""

    async def after_deletions(self, finished: Sequence[Finished]) -> None:
        raise RuntimeError("bug in the outcome writer")


async def test_a_dead_outcome_writer_crashes_the_run_and_the_next_run_resolves_what_it_left_deleting(
    store: Store,
) -> None:
    api = _api(store)
    runner = make_runner(api, store, concurrency=2)
    runner._journal = lambda: _DyingWriter(store, endpoint_of=lambda _p: ENDPOINT, clock=lambda: NOW)
    policy_file = policies()
    with pytest.raises(RuntimeError, match="bug in the outcome writer"):  # the run crashes: `run_crashed`, exit 1
        await runner.run(policy_file, policy_file.policies, run_id="crashed")
    deleted_then = set(api.deleted)
    committed = {
        b.id: [r for r in (await store.why(b.id)).records if r.run_id == "crashed"] for b in project(prod=6, staging=4)
    }
    intents = {b for b, records in committed.items() if records}
    assert deleted_then <= intents
    assert {r.state for b in intents for r in committed[b]} == {"deleting"}  # nothing written, nothing lost
    # The next run holds the run locks: its trusted listing resolves the crashed run's rows.
    summary = await make_runner(api, store, concurrency=2).run(policy_file, policy_file.policies, run_id="next")
    assert summary.exit_code() == ExitCode.OK
    for backup_id in intents:
        (record,) = [r for r in (await store.why(backup_id)).records if r.run_id == "crashed"]
        assert record.state == ("deleted" if backup_id in deleted_then else "not_started"), backup_id
