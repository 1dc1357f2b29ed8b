"""The deletion phase of one run: write-ahead batches and the workers that send the DELETEs.

A feeder takes the queued deletions in order, a batch at a time (at most `concurrency` items, all of one policy), and
awaits the journal's `before_batch` (the intents committed in one transaction that re-checks holds) before handing
the batch to the workers; it writes the next batch while the workers send the previous one, so the journal costs a
commit per batch, not a wait per DELETE. A worker checks again, just before sending, that the run may still start a
deletion of that policy (stop requested, deadline, `should_continue`, the journal still writable), sends it and
reports the outcome. A committed intent that is not sent is reported `not_started`.

Outcomes are written by one long-lived writer task of the phase (not a task per deletion): a worker appends its
outcome and goes on to its next DELETE; the writer takes every outcome waiting, in the order reported, and writes
them in one `after_deletions` call, while the next ones accumulate. It writes once at least `concurrency` outcomes
wait (each commit rewrites the same index pages in SQLite's WAL: a few large groups cost less per row than many
small ones), or the senders are done, or the oldest waiting outcome has waited `outcome_flush_s` (0.5 s: a slow,
paced run keeps its journal current). The next DELETE waits only for its
own intent's commit, never for an outcome's. The phase ends once every reported outcome is written (or the journal
failed). Waiting loses nothing that matters if the process dies meanwhile: a row not written stays `deleting`, which
a later run with a trusted listing resolves (listed: `not_started`; gone: `deleted`).

Once the journal cannot be written (`JournalUnavailable`), no further DELETE is sent: what is left is `not_started`,
`state_unavailable` is logged once and the run exits 1 (`RunSummary.state_error`).

If the writer itself dies of anything else (a bug, a store error not mapped), no further DELETE is sent either: an
outcome sent now would never be written. No further intent is committed, what is left is `not_started`, the DELETEs
in flight finish, and the phase raises the writer's exception (the run crashes: `run_crashed`, exit 1). The intents
committed and not sent stay `deleting`, like those whose outcome was not written: the next run of the policy (it
holds the run lock) resolves them against its trusted listing (listed: `not_started`; gone: `deleted`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager

import structlog

from ges_retention.events import Deletion, RunEvents
from ges_retention.journal import BatchVerdict, Finished, JournalUnavailable, PolicyFenced, RunJournal
from ges_retention.log_context import log_context
from ges_retention.retention import Decision
from ges_retention.summary import PolicyResult, RunSummary

__all__ = ["OUTCOME_FLUSH_S", "DeletionPhase", "deletion_context", "state_failed"]

log = structlog.get_logger("ges_retention.runner")

# How long an outcome may wait for its group (fewer than `concurrency` outcomes) before it is written all the same.
OUTCOME_FLUSH_S = 0.5

# One item handed to a worker: (result, decision, ticket, sendable); None ends a worker.
_Item = tuple[PolicyResult, Decision, object, bool] | None


def deletion_context(result: PolicyResult, decision: Decision) -> AbstractContextManager[None]:
    backup = decision.backup
    # Bound once per deletion (sent, or held), around what may log: `log_context` binds all five in one variable.
    # (Not when queued: no subscriber logs `deletion_pending`, and a binding per deletion is not free.)
    return log_context(
        policy=result.name,
        project_id=result.project_id,
        graph_id=backup.graph_id,
        backup_id=backup.id,
        backup_name=backup.name,
    )


def state_failed(summary: RunSummary, exc: JournalUnavailable) -> None:
    """The journal cannot be written: said once per run; the run exits 1."""
    if summary.state_error is None:
        summary.state_error = exc.error
        log.error("state_unavailable", error=exc.error, operation=exc.operation)


class DeletionPhase:
    """Deletes every due backup of a run's results, write-ahead. `run()` returns the policies `should_continue`
    stopped."""

    __slots__ = (
        "_drained",
        "_finished",
        "_flush_timer",
        "_may_start",
        "_ready",
        "_send",
        "_senders_done",
        "_should_continue",
        "_sleep",
        "_to_write",
        "_writer_failed",
        "concurrency",
        "events",
        "journal",
        "outcome_flush_s",
        "stopped",
        "summary",
    )

    def __init__(
        self,
        summary: RunSummary,
        events: RunEvents,
        journal: RunJournal,
        *,
        send: Callable[[PolicyResult, Decision], Awaitable[Deletion]],
        may_start: Callable[[], bool],
        should_continue: Callable[[str], bool],
        concurrency: int,
        outcome_flush_s: float = OUTCOME_FLUSH_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.summary = summary
        self.events = events
        self.journal = journal
        self._send = send
        self._may_start = may_start
        self._should_continue = should_continue
        self.concurrency = max(1, concurrency)
        self.outcome_flush_s = outcome_flush_s
        self._sleep = sleep  # the time bound's one clock (tests move a fake one)
        self.stopped: set[str] = set()
        # At most one batch waits here while the workers send the previous one. The feeder puts a whole batch at once,
        # when the workers have taken all of the previous one (`_drained`): it wakes once per batch, not once per item
        # as a put into a full queue would.
        self._ready: asyncio.Queue[_Item] = asyncio.Queue()
        self._drained = asyncio.Event()
        # Outcomes reported and not yet handed to the journal, in the order reported. `_to_write` wakes the writer:
        # set when a group is full, when the senders are done, or by `_flush_timer` (armed by the oldest waiting).
        self._finished: list[Finished] = []
        self._to_write = asyncio.Event()
        self._flush_timer: asyncio.Task[None] | None = None
        self._senders_done = False
        # Set by the writer the moment it fails: a sender reads it before each DELETE, the feeder before each batch.
        self._writer_failed: BaseException | None = None

    def may_start(self, result: PolicyResult) -> bool:
        """May a deletion of this policy start now?"""
        if result.name not in self.stopped and not self._should_continue(result.name):
            self.stopped.add(result.name)
        if self.summary.state_error is not None or self._writer_failed is not None or result.name in self.stopped:
            return False
        if not self.journal.may_send(result):  # PostgreSQL: the policy's lease no longer valid here
            self.stopped.add(result.name)
            return False
        return self._may_start()

    async def run(self) -> set[str]:
        queue = self._queue(self.summary.policies)
        if queue:
            workers = min(self.concurrency, len(queue))
            writer = asyncio.create_task(self._write_outcomes())
            try:
                async with asyncio.TaskGroup() as senders:
                    senders.create_task(self._feed(queue, workers))
                    for _ in range(workers):
                        senders.create_task(self._work())
            except BaseException:  # as before: an error (or cancellation) of the phase does not wait for writes
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
                self._stop_flush_timer()
                raise
            # Every outcome reported is in `_finished`: the writer writes them all, then ends (or raises what
            # killed it: the senders stopped sending when it died).
            self._senders_done = True
            self._to_write.set()
            try:
                await writer
            finally:
                self._stop_flush_timer()
        return self.stopped

    def _queue(self, results: Sequence[PolicyResult]) -> list[tuple[PolicyResult, Decision]]:
        queue: list[tuple[PolicyResult, Decision]] = []
        for result in results:
            if not result.acts:  # no plan, dry, safety-stopped or held by the change gate
                continue
            for decision in result.due:  # two-phase: only those whose clock is up
                queue.append((result, decision))
                self.events.deletion_pending(result, decision)  # outside the deletion's log context (see RunEvents)
        return queue

    async def _feed(self, queue: list[tuple[PolicyResult, Decision]], workers: int) -> None:
        index = 0
        while index < len(queue):
            result = queue[index][0]
            batch: list[Decision] = []
            while index < len(queue) and queue[index][0] is result and len(batch) < self.concurrency:
                batch.append(queue[index][1])
                index += 1
            verdict = await self._write_intents(result, batch)
            await self._hand_out(result, batch, verdict)
        await self._put_batch([None] * workers)

    async def _write_intents(self, result: PolicyResult, batch: list[Decision]) -> BatchVerdict | None:
        """The batch's verdict, or None when none of it may be sent (the run stopped, or the journal failed).
        `should_continue` is asked once per deletion, by the worker, right before its DELETE."""
        if self.summary.state_error is not None or self._writer_failed is not None:
            return None
        if result.name in self.stopped or not self._may_start():
            return None
        try:
            return await self.journal.before_batch(result, batch)
        except PolicyFenced as exc:  # another process holds the policy now: none of its deletions more, here
            self.stopped.add(result.name)
            log.error("lease_lost", policy=exc.policy, holder=exc.holder, reason="fenced")
            return None
        except JournalUnavailable as exc:
            state_failed(self.summary, exc)
            return None

    async def _hand_out(self, result: PolicyResult, batch: list[Decision], verdict: BatchVerdict | None) -> None:
        items: list[_Item] = []
        for decision in batch:
            backup_id = decision.backup.id
            if verdict is not None and backup_id in verdict.held:
                reason = verdict.held[backup_id]
                result.held[backup_id] = reason
                with deletion_context(result, decision):
                    self.events.deletion_held(result, decision, reason)
                continue
            sendable = verdict is not None and backup_id in verdict.send
            ticket = verdict.send[backup_id] if verdict is not None and sendable else None
            items.append((result, decision, ticket, sendable))
        await self._put_batch(items)

    async def _put_batch(self, items: list[_Item]) -> None:
        while not self._ready.empty():  # the previous batch still waits: this one waits for it to be taken
            self._drained.clear()
            await self._drained.wait()
        for item in items:
            self._ready.put_nowait(item)

    async def _work(self) -> None:
        while (item := await self._ready.get()) is not None:
            if self._ready.empty():
                self._drained.set()
            result, decision, ticket, sendable = item
            with deletion_context(result, decision):
                if sendable and self.may_start(result):
                    self.events.deletion_started(result, decision)
                    deletion = await self._send(result, decision)
                else:
                    deletion = Deletion("not_started")
                result.record(deletion.outcome, decision.backup.id, decision.backup.size_mb)
                self.events.deletion_finished(result, decision, deletion)
                if sendable:  # its intent was committed: its outcome (or that it was not sent after all)
                    self._finished.append((result, decision, ticket, deletion))
                    if len(self._finished) >= self.concurrency:
                        self._to_write.set()
                    elif self._flush_timer is None:  # the oldest waiting: written within `outcome_flush_s`
                        self._flush_timer = asyncio.create_task(self._flush_after())

    async def _flush_after(self) -> None:
        await self._sleep(self.outcome_flush_s)
        self._to_write.set()

    def _stop_flush_timer(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()  # (a no-op once it fired)
            self._flush_timer = None

    async def _write_outcomes(self) -> None:
        """The phase's one outcome writer: every outcome waiting in one write, once a group is full, its oldest has
        waited `outcome_flush_s` or the senders are done; until the senders are done and nothing is left. Any other
        failure (or its cancellation) stops the senders before it propagates."""
        try:
            while True:
                await self._to_write.wait()
                self._to_write.clear()
                self._stop_flush_timer()  # what it was armed for is taken now; the next outcome arms the next one
                batch, self._finished = self._finished, []
                if batch and self.summary.state_error is None:  # else their rows stay `deleting` (resolved later)
                    try:
                        await self.journal.after_deletions(batch)
                    except JournalUnavailable as exc:
                        state_failed(self.summary, exc)
                if self._senders_done and not self._finished:
                    return
        except BaseException as exc:
            self._writer_failed = exc  # read synchronously by every sender: no DELETE starts after this line
            raise
