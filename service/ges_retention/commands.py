"""The `plan` and `run` commands: one asyncio run each, with `run`'s signal handling; the result on stdout.

`cli.py` parses and validates the arguments and calls these. Both commands list and plan through the one pipeline
(`Runner.list_and_plan`), and both take their exit code from `summary.exit_code`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from ges_retention import gate_state
from ges_retention.backup import Backup
from ges_retention.exit_codes import ExitCode
from ges_retention.listing_trust import trusted_backups
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyFile
from ges_retention.project_scope import ProjectScope
from ges_retention.report import render_json, render_summary_text, render_table
from ges_retention.run_coroutine import run_coroutine
from ges_retention.runner_planning import plan_listings
from ges_retention.service import Service, check_endpoints, policy_endpoint
from ges_retention.settings import Settings
from ges_retention.state import StoreInfo
from ges_retention.summary import PolicyResult, RunSummary, exit_code

__all__ = ["plan_command", "run_command"]

log = structlog.get_logger("ges_retention.runner")


def plan_command(
    policy_file: PolicyFile,
    selected: Sequence[Policy],
    now: datetime,
    *,
    settings: Settings | None,
    export: list[Backup] | None,
    fmt: str,
) -> int:
    """`ges-retention plan`: plan an exported listing (`export`), else list from the API; delete nothing. Either way
    the state, when there is one, is read (never created or written): its holds, pending clocks, baselines and acks
    make the plan what a run would do, and the gate's verdict exits 3 for a held policy."""
    if export is not None:
        results, state = run_coroutine(_export_plan(policy_file, selected, now, settings, export))
    else:
        assert settings is not None
        results, state = live_plan(policy_file, selected, settings, now)
    document = {"backend": state.backend, "schema_version": state.schema_version} if state is not None else None
    if fmt == "json":
        sys.stdout.write(render_json(results, now, document))
    else:
        sys.stdout.write(render_table(results, now))
    return int(exit_code(results))


async def _export_plan(
    policy_file: PolicyFile, selected: Sequence[Policy], now: datetime, settings: Settings | None, export: list[Backup]
) -> tuple[list[PolicyResult], StoreInfo | None]:
    from ges_retention.state import open_store
    from ges_retention.state_access import state_location

    listing = trusted_backups(export)
    endpoint_of = _endpoint_of(settings)
    # Every selected policy plans the one export as if it were its own (endpoint, project_id)'s listing: overlap is
    # then resolved per scope, as a run would.
    listings = {ProjectScope.of(p, endpoint_of): listing for p in selected}
    store = await open_store(state_location(settings), mode="read_only")
    if store is None:
        return plan_listings(policy_file, selected, listings, now, dry_run=True, endpoint_of=endpoint_of), None
    try:
        memory = await gate_state.read_memory(store, selected, endpoint_of, now)
        results = plan_listings(
            policy_file, selected, listings, now, dry_run=True, endpoint_of=endpoint_of, memory=memory
        )
        await gate_state.find_acks(store, results)
        return results, store.info
    finally:
        await store.close()


def _endpoint_of(settings: Settings | None) -> Callable[[Policy], str]:
    """The journal's endpoint of a policy for `plan --from-file` (which calls nothing): as `run` would use it when
    it can be known, else the policy's own."""

    def endpoint(policy: Policy) -> str:
        if settings is not None and (settings.endpoint or policy.api_endpoint()):
            return policy_endpoint(policy, settings)
        return policy.api_endpoint() or ""

    return endpoint


def live_plan(
    policy_file: PolicyFile, selected: Sequence[Policy], settings: Settings, now: datetime
) -> tuple[list[PolicyResult], StoreInfo | None]:
    """`plan` without `--from-file`: list from the API and plan as of `now` (with the state, read-only, if any)."""
    check_endpoints(selected, settings)

    async def main() -> tuple[list[PolicyResult], StoreInfo | None]:
        service = Service(settings, state_mode="read_only")
        async with service as runner:
            planned = await runner.list_and_plan(policy_file, selected, dry_run=True, now=now)
            return planned.results, service.store.info if service.store is not None else None

    return run_coroutine(main())


def run_command(
    policy_file: PolicyFile,
    selected: Sequence[Policy],
    settings: Settings,
    *,
    dry_run: bool,
    max_deletes: int | None,
    fmt: str,
) -> int:
    """`ges-retention run`: one run with signal handling; prints the summary on stdout.

    The first SIGTERM/SIGINT stops new deletions and lets in-flight ones finish within the grace period; a second
    one, or the end of the grace period, cancels them."""
    check_endpoints(selected, settings)
    received: list[int] = []

    async def main() -> RunSummary:
        loop = asyncio.get_running_loop()
        async with Service(settings, state_mode="create") as runner:
            task = asyncio.current_task()
            assert task is not None

            def on_signal(signum: int) -> None:
                if received:  # a second signal: stop waiting for in-flight requests
                    task.cancel()
                    return
                received.append(signum)
                log.warning("shutdown_requested", signal=signal.Signals(signum).name)
                runner.request_stop()
                loop.call_later(settings.shutdown_grace_s, task.cancel)

            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, on_signal, signum)
            try:
                return await runner.run(policy_file, selected, dry_run=dry_run, max_deletes=max_deletes, trigger="cli")
            finally:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)

    try:
        summary = run_coroutine(main())
    except asyncio.CancelledError:
        print("ges-retention: interrupted: in-flight requests did not finish within the grace period", file=sys.stderr)
        return _interrupted_code(received)
    if received:
        summary.interrupted = True
    if fmt == "json":
        sys.stdout.write(json.dumps(summary.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render_summary_text(summary))
    return int(summary.exit_code(_interrupted_code(received)))


def _interrupted_code(received: Sequence[int]) -> ExitCode:
    return ExitCode.INTERRUPTED_SIGINT if list(received[:1]) == [signal.SIGINT] else ExitCode.INTERRUPTED_SIGTERM
