"""One retention run: list each project once, plan every selected policy, apply the guards, delete, summarise.

A project is a `ProjectScope`, (endpoint, project_id): the same project id at two endpoints is two listings, and a
policy is planned over the listing of the endpoint its deletions go to. Policies of one scope share one listing.

This is the only place where plans meet the network, through a `BackupApi` (GES in production, a dict in the unit
tests). The guards, in the order they act:
1. a project whose listing failed, is incomplete or contradicts itself (two copies of an id that differ, one graph
   id under two names) deletes nothing (`listing_failed`); a graph's name is resolved from any record of it, else
   from the graph listing, which follows the backups listing and marks orphans (`orphans.py`): a failed or
   untrusted graph listing makes the project's listing untrusted too. The backup quota is read after a trusted
   listing, best effort (a failure is a warning, never a run failure);
2. a backup selected by two policies of the file in its scope is kept (`plan_file` resolves overlap);
3. a policy whose plan exceeds `max_deletes` deletes nothing (`safety_stop`);
4. dry-run (the file's or the command's) deletes nothing;
5. no deletion starts after the run deadline or once a stop was requested (SIGTERM): what is left is reported;
6. write-ahead: no DELETE is sent before its intent is committed in the journal (`journal.py`: batches of at most
   `concurrency` intents, each batch re-checking holds); once the journal cannot be written, no further DELETE.

The runner neither logs nor counts: it tells its `RunEvents` subscribers (`events.py`) what happens. It talks to the
state only through its `RunJournal` (`journal.py`), at the points that seam names.

Its parts live beside it: `backup_api` (the `BackupApi` protocol), `runner_listing` (listing one scope: backups,
graphs, quota), `listing_trust` (guard 1, pure), `runner_planning` (`plan_listings` and `Planned`: guards 2 and 3,
the gates) and `deleting` (the deletion phase: guards 5 and 6).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

import structlog

from ges_retention.backup_api import BackupApi
from ges_retention.deleting import DeletionPhase, deletion_context, state_failed
from ges_retention.events import Deletion, FanOut, LoggingEvents, RunEvents
from ges_retention.gate_state import GONE
from ges_retention.gates import PlanningMemory
from ges_retention.ges.errors import GesError
from ges_retention.ges.loop_clock import loop_clock
from ges_retention.journal import JournalUnavailable, NullJournal, RunJournal
from ges_retention.log_context import log_context
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyFile
from ges_retention.project_scope import ProjectScope
from ges_retention.retention_decisions import Decision
from ges_retention.runner_listing import list_project
from ges_retention.runner_planning import Planned, plan_listings
from ges_retention.summary import PolicyResult, RunSummary, Trigger, new_run_id, policy_outcome, run_outcome

log = structlog.get_logger("ges_retention.runner")

# `BackupApi` is what a `Runner` is built over: named here too.
__all__ = ["BackupApi", "Runner"]


class Runner:
    """Runs policies through one `BackupApi`. Stateless between runs but for the stop request."""

    def __init__(
        self,
        api: BackupApi,
        *,
        endpoint_of: Callable[[Policy], str],
        concurrency: int = 8,
        run_deadline_s: float = 3600.0,
        events: Callable[[], RunEvents] = LoggingEvents,
        journal: Callable[[], RunJournal] = NullJournal,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.api = api
        self.endpoint_of = endpoint_of
        self.concurrency = concurrency
        self.run_deadline_s = run_deadline_s
        # A factory: subscribers with per-run state (progress, the journal's run row) get a fresh instance per run.
        self._events = events
        # Per run too: the journal keeps the run's id and what it heard.
        self._journal = journal
        self._clock = clock
        # The client's deadlines are on the loop's clock: so are the run's.
        self._monotonic = monotonic or loop_clock()
        self._stop = asyncio.Event()
        # Runs past planning by id, their summaries counting as deletions finish: the daemon's live counts.
        self.active: dict[str, RunSummary] = {}

    def request_stop(self) -> None:
        """No new deletion starts after this; in-flight ones finish."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    # --- list and plan ---------------------------------------------------------------------------------------

    async def list_and_plan(
        self,
        policy_file: PolicyFile,
        selected: Sequence[Policy],
        *,
        dry_run: bool = False,
        deadline: float | None = None,
        now: datetime | None = None,
        events: RunEvents | None = None,
        journal: RunJournal | None = None,
    ) -> Planned:
        """List each (endpoint, project_id) of `selected` once (concurrently), then plan every selected policy over
        its own scope's listing as of `now` (default: the clock, read once the listings are in). Deletes nothing:
        `run`, the live `plan` and the demo all come through here, so they agree. The journal's `before_planning`
        and `before_planning_ends` are awaited here."""
        if journal is None:
            journal = self._journal()
        events = events if events is not None else FanOut(self._events(), journal)
        if deadline is None:
            deadline = self._monotonic() + self.run_deadline_s
        # Every policy's endpoint is asked (the service binds its agency there), and each scope listed once.
        scope_of = {policy.name: ProjectScope.of(policy, self.endpoint_of) for policy in selected}
        scopes = sorted(set(scope_of.values()))
        found = await asyncio.gather(*(list_project(self.api, scope, deadline, events) for scope in scopes))
        listings = dict(zip(scopes, found, strict=True))
        now = now if now is not None else self._clock()
        state_error: str | None = None
        memory = PlanningMemory()  # (a state that cannot be read: nothing is deleted, see `state_error`)
        try:
            backups_of = {name: listings[scope].backups for name, scope in scope_of.items()}
            await journal.before_planning(selected, backups_of, now)
            memory = await journal.planning_memory(selected, now)
        except JournalUnavailable as exc:
            state_error = _state_unavailable(exc)
        results = plan_listings(
            policy_file, selected, listings, now, dry_run=dry_run, endpoint_of=self.endpoint_of, memory=memory
        )
        if state_error is None:
            try:
                await journal.before_planning_ends(results, now)
            except JournalUnavailable as exc:
                state_error = _state_unavailable(exc)
        for result in results:
            with log_context(policy=result.name, project_id=result.project_id):
                events.policy_planned(result, now)
        return Planned(
            results,
            listed=sum(len(x.backups) for x in listings.values() if x.backups is not None),
            skipped_projects=sorted({s.project_id for s, x in listings.items() if x.backups is None}),
            now=now,
            state_error=state_error,
        )

    # --- one run ---------------------------------------------------------------------------------------------

    async def run(
        self,
        policy_file: PolicyFile,
        selected: Sequence[Policy],
        *,
        dry_run: bool = False,
        max_deletes: int | None = None,
        trigger: Trigger = "cli",
        run_id: str | None = None,
        should_continue: Callable[[str], bool] | None = None,
        on_busy: Literal["wait", "skip"] = "wait",
        held_locks: Sequence[object] = (),
    ) -> RunSummary:
        """One run. `should_continue(policy_name)` is asked before each DELETE: False starts no further deletion of
        that policy (its outcome `interrupted`); the daemon says False for a policy a reload removed, paused or
        turned to dry_run.

        Each policy's run lock is taken first. `on_busy="wait"` (a one-shot `run`): wait for it up to the lock
        timeout, then `PolicyLocked` (exit 1, naming the holder). `"skip"` (a daemon fire): a policy locked by
        another process is left out (`run_skipped`, `running_elsewhere`, with its holder). `held_locks`: run locks
        the caller already holds (a daemon's leases): used, not taken again, and left to the caller to release."""
        run_id = run_id or new_run_id()
        if max_deletes is not None:
            selected = [_with_max_deletes(p, max_deletes) for p in selected]
        journal = self._journal()
        with log_context(run_id=run_id):
            try:
                try:
                    names = [p.name for p in selected]
                    busy = await journal.lock_policies(names, wait=on_busy == "wait", held=held_locks)
                except JournalUnavailable as exc:
                    _state_unavailable(exc)
                    raise
                for name, holder in busy.items():
                    log.info("run_skipped", policy=name, reason="running_elsewhere", holder=holder, trigger=trigger)
                free = [p for p in selected if p.name not in busy]
                if busy and not free:
                    return RunSummary(run_id, trigger, dry_run, skipped_policies=busy)
                summary, events = await self._run_locked(
                    policy_file, free, journal, dry_run=dry_run, trigger=trigger, run_id=run_id,
                    should_continue=should_continue or (lambda _name: True),
                )  # fmt: skip
                summary.skipped_policies = busy
            finally:
                await journal.run_closes()
            # Said once the run's locks are released: whoever reads `run_finished` may start the next run.
            events.run_finished(summary)
        self.active.pop(run_id, None)  # (a run that raises leaves its entry: the daemon drops it)
        return summary

    async def _run_locked(
        self,
        policy_file: PolicyFile,
        selected: Sequence[Policy],
        journal: RunJournal,
        *,
        dry_run: bool,
        trigger: Trigger,
        run_id: str,
        should_continue: Callable[[str], bool],
    ) -> tuple[RunSummary, RunEvents]:
        started = self._monotonic()
        deadline = started + self.run_deadline_s
        # Dry only when every policy is: a dry policy beside a live one must not make the run look harmless.
        all_dry = dry_run or (bool(selected) and all(p.dry_run for p in selected))
        events = FanOut(self._events(), journal)
        events.run_started(run_id, trigger, [p.name for p in selected], all_dry)
        try:
            await journal.run_begins(run_id, trigger, [p.name for p in selected], all_dry)
        except JournalUnavailable as exc:  # nothing listed, nothing deleted: the run cannot be remembered
            _state_unavailable(exc)
            raise
        planned = await self.list_and_plan(
            policy_file, selected, dry_run=dry_run, deadline=deadline, events=events, journal=journal
        )
        results = planned.results
        summary = RunSummary(run_id, trigger, all_dry, results, planned.listed, planned.skipped_projects)
        summary.state_error = planned.state_error  # (then nothing is deleted: every deletion is `not_started`)
        await self._settle_pending(summary, journal, events, planned.now)
        self.active[run_id] = summary
        phase = DeletionPhase(
            summary,
            events,
            journal,
            send=lambda result, decision: self._delete_one(result, decision, deadline),
            may_start=lambda: not self.stop_requested and self._monotonic() < deadline,
            should_continue=should_continue,
            concurrency=self.concurrency,
        )
        stopped = await phase.run()
        summary.interrupted = self.stop_requested and any(r.not_started for r in results)
        for result in results:
            result.outcome = policy_outcome(result, summary.interrupted or result.name in stopped)
            with log_context(policy=result.name, project_id=result.project_id):
                events.policy_finished(result, self._monotonic() - started)
        summary.duration_s = self._monotonic() - started
        summary.outcome = run_outcome(results, summary.interrupted or bool(stopped))
        if summary.state_error is None:
            try:
                await journal.run_ends(summary)
            except JournalUnavailable as exc:
                state_failed(summary, exc)
        return summary, events

    # --- deletions -------------------------------------------------------------------------------------------

    async def _settle_pending(self, summary: RunSummary, journal: RunJournal, events: RunEvents, now: datetime) -> None:
        """Two-phase: each acting policy's waiting deletions get (or keep) their pending clocks, and its pending rows
        of backups it no longer deletes are closed, before any DELETE. A state that cannot be written stops it all."""
        for result in summary.policies:
            if not result.acts or result.two_phase is None or summary.state_error is not None:
                continue
            try:
                await journal.settle_pending(result, now)
            except JournalUnavailable as exc:
                state_failed(summary, exc)
                return
            two_phase = result.two_phase
            for decision in two_phase.waiting:
                with deletion_context(result, decision):
                    events.deletion_waiting(result, decision, two_phase.clock(decision.backup.id).due_at)
            closed = [(bid, "cancelled", reasons) for bid, reasons in two_phase.cancel.items()]
            closed += [(bid, "gone", (GONE,)) for bid in two_phase.gone]
            for backup_id, state, reasons in closed:
                with log_context(policy=result.name, project_id=result.project_id, backup_id=backup_id):
                    events.pending_closed(result, backup_id, state, reasons)

    async def _delete_one(self, result: PolicyResult, decision: Decision, deadline: float) -> Deletion:
        backup = decision.backup
        try:
            done = await self.api.delete_backup(
                result.endpoint, result.project_id, backup.graph_id, backup.id, deadline=deadline
            )
        except GesError as exc:
            return Deletion("failed", exc.attempts, 0.0, exc.status, exc.error_code, str(exc), exc.request_id)
        return Deletion(
            done.outcome, done.attempts, done.duration_s, done.status, done.error_code, request_id=done.request_id
        )


def _state_unavailable(exc: JournalUnavailable) -> str:
    log.error("state_unavailable", error=exc.error, operation=exc.operation)
    return exc.error


def _with_max_deletes(policy: Policy, max_deletes: int) -> Policy:
    return policy.model_copy(update={"safety": policy.safety.model_copy(update={"max_deletes": max_deletes})})
