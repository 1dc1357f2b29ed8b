"""The deletion phase alone (`deleting.DeletionPhase`) over a fake journal and a fake send: what its one outcome
writer does when it dies, and when it writes. No HTTP, no real time: sends and writes are gated by events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import pytest
from test_runner import P1, backups

from ges_retention.deleting import DeletionPhase
from ges_retention.events import Deletion, NullRunEvents
from ges_retention.journal import BatchVerdict, Finished, NullJournal
from ges_retention.retention import Decision, Plan
from ges_retention.summary import PolicyResult, RunSummary


def acting_result(count: int) -> PolicyResult:
    """A policy that deletes `count` backups in this run."""
    decisions = tuple(Decision(b, "delete", ("expired",)) for b in backups("prod-a", count))
    plan = Plan("prod", P1, decisions, safety_stop=False, max_deletes=count)
    return PolicyResult("prod", P1, endpoint="mem://ges", plan=plan)


class Journal(NullJournal):
    """Every intent committed (its ticket: the backup id); records each batch and each outcome write."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.writes: list[list[str]] = []

    async def before_batch(self, result: PolicyResult, decisions: Sequence[Decision]) -> BatchVerdict:
        self.batches.append([d.backup.id for d in decisions])
        return BatchVerdict(send={d.backup.id: d.backup.id for d in decisions})

    async def after_deletions(self, finished: Sequence[Finished]) -> None:
        self.writes.append([decision.backup.id for _, decision, _, _ in finished])


class Finishes(NullRunEvents):
    """The order in which deletions are reported finished."""

    def __init__(self) -> None:
        self.order: list[str] = []

    def deletion_finished(self, result: PolicyResult, decision: Decision, deletion: Deletion) -> None:
        self.order.append(decision.backup.id)


Send = Callable[[PolicyResult, Decision], Awaitable[Deletion]]


def phase_of(
    result: PolicyResult, journal: Journal, send: Send, *, concurrency: int, events: NullRunEvents | None = None
) -> DeletionPhase:
    return DeletionPhase(
        RunSummary("r", "cli", False, [result]),
        events or NullRunEvents(),
        journal,
        send=send,
        may_start=lambda: True,
        should_continue=lambda _name: True,
        concurrency=concurrency,
    )


# --- a writer that dies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [RuntimeError("bug in the outcome writer"), asyncio.CancelledError()])
async def test_a_dead_outcome_writer_stops_every_further_delete_and_the_phase_raises_its_error(
    failure: BaseException,
) -> None:
    concurrency, total = 2, 12
    result = acting_result(total)
    sent: list[str] = []
    failed = asyncio.Event()
    in_flight = asyncio.Event()  # the workers' next DELETEs are sent (and wait for `later_sends`)
    later_sends = asyncio.Event()
    sent_when_failed: list[int] = []
    batches_when_failed: list[int] = []

    class DyingWriter(Journal):
        async def after_deletions(self, finished: Sequence[Finished]) -> None:
            async with asyncio.timeout(10):
                await in_flight.wait()
            sent_when_failed.append(len(sent))
            batches_when_failed.append(len(self.batches))
            failed.set()
            raise failure

    async def send(_result: PolicyResult, decision: Decision) -> Deletion:
        sent.append(decision.backup.id)
        if len(sent) == 2 * concurrency:
            in_flight.set()
        if len(sent) > concurrency:  # the DELETEs after the first ones are in flight when the writer dies
            await later_sends.wait()
        return Deletion("deleted", 1)

    journal = DyingWriter()
    task = asyncio.create_task(phase_of(result, journal, send, concurrency=concurrency).run())
    async with asyncio.timeout(10):
        await failed.wait()
    later_sends.set()
    with pytest.raises(type(failure)):
        async with asyncio.timeout(10):
            await task
    # No DELETE was sent, and no intent committed, after the writer died; the ones in flight finished.
    assert sent_when_failed == [len(sent)] == [2 * concurrency]
    assert batches_when_failed == [len(journal.batches)]
    # Every queued deletion is accounted for: what was sent by its answer, the rest (committed or not) not started.
    assert sorted(result.ids["deleted"]) == sorted(sent)
    assert sorted(result.ids["not_started"]) == sorted({d.backup.id for d in result.due} - set(sent))
