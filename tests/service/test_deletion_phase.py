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
from ges_retention.log_context import bound_context, log_context
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
        self._changed = asyncio.Event()

    def deletion_finished(self, result: PolicyResult, decision: Decision, deletion: Deletion) -> None:
        self.order.append(decision.backup.id)
        self._changed.set()

    async def reached(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.order) < count:
                self._changed.clear()
                await self._changed.wait()


class FakeClock:
    """The phase's `sleep`: a sleeper wakes only once the test has moved `now` past its end."""

    def __init__(self) -> None:
        self.now = 0.0
        self.delays: list[float] = []
        self.armed = asyncio.Event()  # set by each sleep
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    async def sleep(self, delay_s: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.delays.append(delay_s)
        self._sleepers.append((self.now + delay_s, woken))
        self.armed.set()
        await woken

    def advance(self, delta_s: float) -> None:
        self.now += delta_s
        for until, woken in self._sleepers:
            if until <= self.now and not woken.done():
                woken.set_result(None)
        self._sleepers = [(until, woken) for until, woken in self._sleepers if not woken.done()]


Send = Callable[[PolicyResult, Decision], Awaitable[Deletion]]


def phase_of(
    result: PolicyResult,
    journal: Journal,
    send: Send,
    *,
    concurrency: int,
    events: NullRunEvents | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> DeletionPhase:
    return DeletionPhase(
        RunSummary("r", "cli", False, [result]),
        events or NullRunEvents(),
        journal,
        send=send,
        may_start=lambda: True,
        should_continue=lambda _name: True,
        concurrency=concurrency,
        sleep=sleep or FakeClock().sleep,  # (by default never moved: no outcome is written for its age)
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


# --- how far intents run ahead -------------------------------------------------------------------------------


async def test_at_most_one_batch_waits_while_the_workers_send_the_one_before() -> None:
    """The write-ahead depth: intents are committed for the batch being sent, the batch waiting, and the next one
    (written while the waiting one waits), never more: a run stopped now leaves at most that many unsent."""
    concurrency = 2
    result = acting_result(8)
    journal = Journal()
    gates = {d.backup.id: asyncio.Event() for d in result.due}
    sending: list[str] = []
    started = asyncio.Event()

    async def send(_result: PolicyResult, decision: Decision) -> Deletion:
        sending.append(decision.backup.id)
        started.set()
        await gates[decision.backup.id].wait()
        return Deletion("deleted", 1)

    async def settled() -> None:  # every task has run as far as it can
        for _ in range(20):
            await asyncio.sleep(0)

    first, second, *_ = [d.backup.id for d in result.due]
    task = asyncio.create_task(phase_of(result, journal, send, concurrency=concurrency).run())
    async with asyncio.timeout(10):
        await started.wait()
        await settled()
        # Sending batch 0, batch 1 waiting, batch 2 committed: the feeder waits for batch 1 to be taken.
        assert (len(journal.batches), len(sending)) == (3, 2)
        gates[first].set()
        await settled()
        assert (len(journal.batches), len(sending)) == (3, 3)  # half of batch 1 taken: it still waits
        gates[second].set()
        await settled()
        assert (len(journal.batches), len(sending)) == (4, 4)  # batch 1 taken: batch 2 waits, batch 3 written
        for gate in gates.values():
            gate.set()
        await task
    assert len(result.ids["deleted"]) == 8


# --- when the writer writes -----------------------------------------------------------------------------------


class TimedJournal(Journal):
    """Records the fake time of each outcome write; `written` is set by each."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.written_at: list[float] = []
        self.written = asyncio.Event()

    async def after_deletions(self, finished: Sequence[Finished]) -> None:
        await super().after_deletions(finished)
        self.written_at.append(self.clock.now)
        self.written.set()


async def test_outcomes_are_written_in_groups_of_at_least_concurrency_in_the_order_reported() -> None:
    concurrency = 4
    result = acting_result(3 * concurrency)
    clock = FakeClock()  # never moved: no group is written for its age
    journal = TimedJournal(clock)
    finishes = Finishes()

    answers = {d.backup.id: asyncio.Event() for d in result.due}

    async def send(_result: PolicyResult, decision: Decision) -> Deletion:
        await answers[decision.backup.id].wait()
        return Deletion("deleted", 1)

    phase = phase_of(result, journal, send, concurrency=concurrency, events=finishes, sleep=clock.sleep)
    task = asyncio.create_task(phase.run())
    for count, decision in enumerate(result.due, 1):  # answered one at a time: the writer may run after each
        answers[decision.backup.id].set()
        await finishes.reached(count)
    async with asyncio.timeout(10):
        await task
    assert [backup_id for write in journal.writes for backup_id in write] == finishes.order
    assert len(finishes.order) == 3 * concurrency
    assert all(len(write) >= concurrency for write in journal.writes[:-1]), journal.writes
    assert journal.writes[-1]  # (the last: what the senders left, written once they are done)


async def test_a_slow_phase_writes_its_few_outcomes_once_the_oldest_has_waited_the_bound() -> None:
    concurrency = 4
    result = acting_result(2 * concurrency)
    clock = FakeClock()
    journal = TimedJournal(clock)
    finishes = Finishes()
    gate = asyncio.Event()

    async def send(_result: PolicyResult, decision: Decision) -> Deletion:
        if decision.backup.id != "prod-a-0":  # one answered, the other DELETEs slow (gated)
            await gate.wait()
        return Deletion("deleted", 1)

    phase = phase_of(result, journal, send, concurrency=concurrency, events=finishes, sleep=clock.sleep)
    task = asyncio.create_task(phase.run())
    async with asyncio.timeout(10):
        await clock.armed.wait()  # one outcome waits, fewer than a group: its time bound runs
    assert clock.delays == [0.5] and journal.writes == []
    clock.advance(0.4)
    clock.advance(0.1)
    async with asyncio.timeout(10):
        await journal.written.wait()
    assert not gate.is_set() and not task.done()  # written while the senders still run
    assert (journal.writes, journal.written_at) == ([["prod-a-0"]], [0.5])
    gate.set()
    async with asyncio.timeout(10):
        await task
    assert [backup_id for write in journal.writes for backup_id in write] == finishes.order
    assert sorted(finishes.order) == sorted(d.backup.id for d in result.due)


# --- the log context ------------------------------------------------------------------------------------------


class ContextSeen(NullRunEvents):
    """The log context bound when each event arrives."""

    def __init__(self) -> None:
        self.pending: list[dict[str, object]] = []
        self.finished: list[dict[str, object]] = []

    def deletion_pending(self, result: PolicyResult, decision: Decision) -> None:
        self.pending.append(bound_context())

    def deletion_finished(self, result: PolicyResult, decision: Decision, deletion: Deletion) -> None:
        self.finished.append(bound_context())


async def test_a_queued_deletion_binds_no_log_context_a_sent_one_does() -> None:
    result = acting_result(3)
    seen = ContextSeen()

    async def send(_result: PolicyResult, decision: Decision) -> Deletion:
        return Deletion("deleted", 1)

    with log_context(run_id="r"):
        async with asyncio.timeout(10):
            await phase_of(result, Journal(), send, concurrency=2, events=seen).run()
    assert seen.pending == [{"run_id": "r"}] * 3  # documented in `RunEvents.deletion_pending`
    assert sorted(str(context["backup_id"]) for context in seen.finished) == ["prod-a-0", "prod-a-1", "prod-a-2"]
    assert all(context["policy"] == "prod" and context["run_id"] == "r" for context in seen.finished)
