"""`why` and `history`: what the journal remembers, read without taking any lock or changing anything.

`why BACKUP_ID`: every record of the backup, oldest first (planned or pending since, policy, run, reasons, deleted
when, outcome, attempts, the DELETE's request id) and its hold; no record is exit 1 `no record of BACKUP_ID`.
`history`: runs newest first with trigger, outcome and counts. Exit codes: 0; 1 no record; 2 bad input or state.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ges_retention.errors import NotFound, UsageError
from ges_retention.run_coroutine import run_coroutine

if TYPE_CHECKING:
    from ges_retention.settings import Settings
    from ges_retention.state import RunRecord, StateLocation, WhyReport

__all__ = ["COMMANDS", "DEFAULT_HISTORY_LIMIT", "add_parsers", "history_command", "run", "why_command"]

COMMANDS = ("why", "history")
DEFAULT_HISTORY_LIMIT = 20


def add_parsers(sub: argparse._SubParsersAction[Any], *, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("why", parents=parents, help="what the journal knows of a backup: plans, deletion, hold")
    p.add_argument("backup_id", metavar="BACKUP_ID")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p = sub.add_parser("history", parents=parents, help="recorded runs, newest first, with outcome and counts")
    p.add_argument("--policy", metavar="NAME", help="only the runs of this policy")
    p.add_argument("--since", metavar="DURATION", help="only runs started within this long (e.g. 7d, 12h)")
    p.add_argument(
        "--limit",
        type=_positive_int,
        default=DEFAULT_HISTORY_LIMIT,
        metavar="N",
        help="at most N runs (default %(default)s)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def run(args: argparse.Namespace, settings: Settings, *, now: datetime | None = None) -> int:
    from ges_retention.state_access import state_location

    at = now or datetime.now(UTC)
    location = state_location(settings)
    if args.command == "why":
        return why_command(location, args.backup_id, fmt=args.format, now=at)
    return history_command(location, policy=args.policy, since=args.since, limit=args.limit, fmt=args.format, now=at)


def why_command(location: StateLocation, backup_id: str, *, fmt: str, now: datetime) -> int:
    from ges_retention.audit_report import render_why_text, why_document
    from ges_retention.state import validate_backup_id
    from ges_retention.state_access import existing_store

    validate_backup_id(backup_id)

    async def main() -> WhyReport:
        async with existing_store(location) as store:
            return await store.why(backup_id)

    report = run_coroutine(main())
    if report.empty:
        raise NotFound(f"no record of {backup_id}")
    if fmt == "json":
        sys.stdout.write(json.dumps(why_document(report, now), indent=2) + "\n")
    else:
        sys.stdout.write(render_why_text(report, now))
    return 0


def history_command(
    location: StateLocation, *, policy: str | None, since: str | None, limit: int, fmt: str, now: datetime
) -> int:
    from ges_retention.audit_report import history_document, render_history_text
    from ges_retention.state_access import existing_store

    start: datetime | None = None
    if since is not None:
        from ges_retention.durations import Duration

        start = Duration.parse(since).before(now, UTC)
    if policy is not None and not policy.strip():
        raise UsageError("--policy: a policy name is not blank")

    async def main() -> list[RunRecord]:
        async with existing_store(location) as store:
            return await store.history(policy=policy, since=start, limit=limit)

    runs = run_coroutine(main())
    if fmt == "json":
        sys.stdout.write(json.dumps(history_document(runs), indent=2) + "\n")
    else:
        sys.stdout.write(render_history_text(runs))
    return 0
