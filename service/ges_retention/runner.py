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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, Protocol

import structlog

from ges_retention.backup import Backup, InvalidBackupRecord
from ges_retention.deleting import DeletionPhase, deletion_context, state_failed
from ges_retention.events import Deletion, FanOut, LoggingEvents, RunEvents
from ges_retention.gate_state import GONE
from ges_retention.gates import PlanningMemory, apply_gates
from ges_retention.ges.client import BackupListing, DeleteResult, GraphListing
from ges_retention.ges.errors import GesError
from ges_retention.journal import JournalUnavailable, NullJournal, RunJournal
from ges_retention.orphans import mark_orphans, trusted_graphs
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyFile
from ges_retention.project_scope import ProjectScope
from ges_retention.retention import plan_file
from ges_retention.retention_decisions import Decision
from ges_retention.summary import PolicyResult, RunSummary, Trigger, new_run_id, policy_outcome, run_outcome

log = structlog.get_logger("ges_retention.runner")

__all__ = [
    "BackupApi",
    "Planned",
    "ProjectListing",
    "ProjectScope",
    "Runner",
    "plan_listings",
    "trusted_backups",
    "trusted_listing",
]


class BackupApi(Protocol):
    """What a run needs from GES: list a project's backups and graphs, read its backup quota, delete one backup."""

    async def list_backups(self, endpoint: str, project_id: str, *, deadline: float) -> BackupListing:
        """Every backup of the project as `Backup` values; raises `GesError` or `InvalidBackupRecord`."""

    async def list_graphs(self, endpoint: str, project_id: str, *, deadline: float) -> GraphListing:
        """Every graph of the project, raw; raises `GesError`."""

    async def backup_quota(self, endpoint: str, project_id: str, *, deadline: float) -> int | None:
        """Backups left in the project's quota (-1 = unlimited; None = not in the answer); raises `GesError`."""

    async def delete_backup(
        self, endpoint: str, project_id: str, graph_id: str, backup_id: str, *, deadline: float
    ) -> DeleteResult:
        """`deleted` or `already_deleted` (GES.7024); anything else raises `GesError`."""


@dataclass(frozen=True, slots=True)
class ProjectListing:
    """A project's backups, or None with the reason the listing cannot be used."""

    backups: list[Backup] | None
    error_code: str | None = None
    error: str | None = None
    conflicting_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Planned:
    """The plans of one "list and plan": one result per selected policy, in the order selected."""

    results: list[PolicyResult]
    listed: int
    skipped_projects: list[str]
    """The project ids of the scopes whose listing failed (which endpoint: in the `listing_failed` events)."""
    now: datetime
    state_error: str | None = None
    """The journal could not be written while planning (`state_unavailable`): nothing of this plan may be deleted."""


def trusted_listing(listing: BackupListing) -> ProjectListing:
    """The listing's backups if they can be acted on; else the reason (code, message) they cannot."""
    backups: list[Backup] = listing.records
    if not listing.complete:
        error = f"incomplete listing: {len(backups)} unique backups, {listing.reported_count} reported"
        return ProjectListing(None, "incomplete", error)
    if listing.conflicting_records:
        conflict = _untrusted_conflict(backups, listing.conflicting_records)
        if conflict is not None:
            return ProjectListing(None, "conflicting_record", conflict)
    return trusted_backups(backups, listing.conflicting_records, conflicting_ids=tuple(listing.conflicting_ids))


def trusted_backups(
    backups: list[Backup], later_copies: Sequence[Backup] = (), *, conflicting_ids: tuple[str, ...] = ()
) -> ProjectListing:
    """The backups with each graph's name resolved from any record of it (so that a record without `graph_name` is
    selected and excluded like its graph), or the reason they cannot be trusted: one graph id under two names."""
    names: dict[str, str] = {}
    for backup in (*backups, *later_copies):
        if not backup.graph_name:
            continue
        known = names.setdefault(backup.graph_id, backup.graph_name)
        if known != backup.graph_name:
            error = f"graph {backup.graph_id!r} is listed under two names, {known!r} and {backup.graph_name!r}"
            return ProjectListing(None, "conflicting_graph_name", error)
    named = [
        replace(b, graph_name=names[b.graph_id]) if not b.graph_name and b.graph_id in names else b for b in backups
    ]
    return ProjectListing(named, conflicting_ids=conflicting_ids)


def _untrusted_conflict(first_copies: Sequence[Backup], later_copies: Sequence[Backup]) -> str | None:
    """Why two copies of one id cannot both be true, or None for the one change paging can see honestly.

    A backup that was still `backing_up` on one page may have finished by the next: the first copy (kept, never
    deleted) is used. Any other difference (another graph, start, method, name, or a success that changed status)
    means the server's answers are inconsistent, and nothing is deleted from them.
    """
    first_by_id = {b.id: b for b in first_copies}
    for later in later_copies:
        first = first_by_id[later.id]
        identity = (first.graph_id, first.start_ms, first.backup_method, first.name)
        if identity != (later.graph_id, later.start_ms, later.backup_method, later.name):
            return f"backup {later.id!r} was listed twice with different graph, start, method or name"
        if first.status != later.status and first.status != "backing_up":
            return f"backup {later.id!r} was listed as {first.status!r} and then as {later.status!r}"
    return None


def plan_listings(
    policy_file: PolicyFile,
    selected: Sequence[Policy],
    listings: Mapping[ProjectScope, ProjectListing],
    now: datetime,
    *,
    dry_run: bool,
    endpoint_of: Callable[[Policy], str] = lambda _policy: "",
    memory: PlanningMemory | None = None,
) -> list[PolicyResult]:
    """Pure: a result per selected policy, planned over its scope's listing (`ProjectScope.of(policy, endpoint_of)`;
    or failed with the listing's reason), with the holds in force, then gated (`gates.apply_gates`: two-phase clocks,
    the change gate) with what the journal remembers (`memory`; None: nothing, as with no state). Overlap is resolved
    over every policy of the file in the same (endpoint, project_id)."""
    memory = memory if memory is not None else PlanningMemory()

    def scope_of(policy: Policy) -> ProjectScope:
        return ProjectScope.of(policy, endpoint_of)

    plannable = [p for p in selected if listings[scope_of(p)].backups is not None]
    empty: list[Backup] = []
    plans = plan_file(
        policy_file.policies,
        plannable,
        lambda scope: listings[scope].backups or empty,
        now,
        memory.holds,
        scope_of=scope_of,
    )
    by_name = {p.policy: p for p in plans}
    results = []
    for policy in selected:
        scope = scope_of(policy)
        listing = listings[scope]
        results.append(
            PolicyResult(
                policy.name,
                policy.project_id,
                scope.endpoint,
                plan=by_name.get(policy.name),
                listing_error=listing.error if listing.backups is None else None,
                dry_run=dry_run or policy.dry_run,
                enabled=policy.enabled,
            )
        )
    ignored = apply_gates(
        policy_file,
        results,
        lambda scope: listings[scope].backups,
        now,
        holds=memory.holds,
        memory=memory.policies,
        endpoint_of=endpoint_of,
    )
    for stale in ignored:  # (a pure function that logs: the one warning the planner's caller cannot miss)
        log.warning(
            "policy_ack_ignored", policy=stale.policy, digest=stale.written, reason="not the held definition's digest"
        )
    return results


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
        self._monotonic = monotonic or (lambda: asyncio.get_running_loop().time())
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
        found = await asyncio.gather(*(self._list_project(scope, deadline, events) for scope in scopes))
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
            with structlog.contextvars.bound_contextvars(policy=result.name, project_id=result.project_id):
                events.policy_planned(result, now)
        return Planned(
            results,
            listed=sum(len(x.backups) for x in listings.values() if x.backups is not None),
            skipped_projects=sorted({s.project_id for s, x in listings.items() if x.backups is None}),
            now=now,
            state_error=state_error,
        )

    async def _list_project(self, scope: ProjectScope, deadline: float, events: RunEvents) -> ProjectListing:
        endpoint, project_id = scope
        # The endpoint is bound too: one project id may be listed at two endpoints, and its events must say which.
        with structlog.contextvars.bound_contextvars(project_id=project_id, endpoint=endpoint):
            try:
                # Records become `Backup` values page by page; one invalid record, a later copy of an id
                # included, makes the whole listing untrusted.
                checked = trusted_listing(await self.api.list_backups(endpoint, project_id, deadline=deadline))
            except GesError as exc:
                checked = ProjectListing(None, exc.error_code, str(exc))
            except InvalidBackupRecord as exc:
                checked = ProjectListing(None, "invalid_record", str(exc))
            if checked.backups is not None:
                # Only once the backups listing is complete: see `orphans`.
                checked = await self._with_graphs(endpoint, project_id, checked, deadline)
            if checked.backups is None:
                events.listing_failed(project_id, checked.error_code, checked.error or "")
            else:
                events.listing_done(project_id, checked.backups, checked.conflicting_ids)
                # Only after a trusted listing: its count is the threshold's, and a project that cannot be listed
                # (refused credentials, an agency withdrawn) would only fail again, with another login.
                await self._read_quota(endpoint, project_id, len(checked.backups), deadline, events)
            return checked

    async def _with_graphs(
        self, endpoint: str, project_id: str, checked: ProjectListing, deadline: float
    ) -> ProjectListing:
        """The listing with orphans marked and names completed from the graph listing, or untrusted with its reason."""
        try:
            graphs = await self.api.list_graphs(endpoint, project_id, deadline=deadline)
        except GesError as exc:
            return ProjectListing(None, exc.error_code or "graph_listing_failed", f"graph listing: {exc}")
        check = trusted_graphs(
            graphs.graphs,
            complete=graphs.complete,
            reported_count=graphs.reported_count,
            later_copies=graphs.later_copies,
        )
        if check.names is None:
            return ProjectListing(None, check.error_code, check.error)
        marked = mark_orphans(checked.backups or [], check.names)  # marked in place: the listing is not held twice
        if marked.backups is None:
            return ProjectListing(None, marked.error_code, marked.error)
        return replace(checked, backups=marked.backups)

    async def _read_quota(
        self, endpoint: str, project_id: str, listed: int, deadline: float, events: RunEvents
    ) -> None:
        """Best effort: any failure is the warning `quota_unavailable`, never a failure of the run."""
        try:
            available = await self.api.backup_quota(endpoint, project_id, deadline=deadline)
        except Exception as exc:  # best effort by contract: the run goes on whatever happened
            events.quota_unavailable(project_id, str(exc) or type(exc).__name__)
            return
        if available is None:
            events.quota_unavailable(project_id, "the quota answer has no 'backup' entry")
        else:
            events.quota_read(project_id, available, listed)

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
        with structlog.contextvars.bound_contextvars(run_id=run_id):
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
            with structlog.contextvars.bound_contextvars(policy=result.name, project_id=result.project_id):
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
                with structlog.contextvars.bound_contextvars(
                    policy=result.name, project_id=result.project_id, backup_id=backup_id
                ):
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
