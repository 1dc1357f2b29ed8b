"""`hold`, `release` and `holds`: protect a backup from every policy, by hand, until a time or until released.

A hold is kept in the state (never in `:memory:`), by backup id. A backup the state has no record of may be held (an
operator protects a backup before any run has planned it): the command says so. The held backup is kept with reason
`held: REASON` by every policy, and the intent batches re-check holds, so a hold placed during a run protects the
backup from then on. Exit codes: 0; 1 `release` of a backup that is not held; 2 bad input or state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ges_retention.errors import NotFound, UsageError, shorten

if TYPE_CHECKING:
    from ges_retention.settings import Settings
    from ges_retention.state import Hold, StateLocation

__all__ = ["COMMANDS", "add_parsers", "hold_command", "holds_command", "release_command", "run"]

COMMANDS = ("hold", "release", "holds")


def add_parsers(sub: argparse._SubParsersAction[Any], *, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("hold", parents=parents, help="keep a backup whatever the policies say, until released")
    p.add_argument("backup_id", metavar="BACKUP_ID")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why it is kept: 1-200 printable characters")
    end = p.add_mutually_exclusive_group()
    end.add_argument("--for", dest="for_", metavar="DURATION", help="end the hold after this long (e.g. 30d, 6mo)")
    end.add_argument("--until", metavar="ISO8601", help="end the hold at this instant (no offset = UTC)")
    p = sub.add_parser("release", parents=parents, help="remove the hold of a backup")
    p.add_argument("backup_id", metavar="BACKUP_ID")
    p = sub.add_parser("holds", parents=parents, help="list the holds in force")
    p.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace, settings: Settings, *, now: datetime | None = None) -> int:
    """One of `hold`, `release`, `holds` as parsed; `now` for tests (default: the clock)."""
    from ges_retention.state_access import state_location

    at = now or datetime.now(UTC).replace(microsecond=0)  # whole seconds: `--for 7d` ends at a readable time
    location = state_location(settings)
    if args.command == "hold":
        return hold_command(location, args.backup_id, args.reason, for_=args.for_, until=args.until, now=at)
    if args.command == "release":
        return release_command(location, args.backup_id, now=at)
    return holds_command(location, fmt=args.format, now=at)


def _hold_end(for_: str | None, until: str | None, now: datetime) -> datetime | None:
    if for_ is not None:
        from dateutil.relativedelta import relativedelta

        from ges_retention.durations import Duration

        d = Duration.parse(for_)
        span = relativedelta(
            years=d.years,
            months=d.months,
            weeks=d.weeks,
            days=d.days,
            hours=d.hours,
            minutes=d.minutes,
            seconds=d.seconds,
        )
        try:
            return now.astimezone(UTC) + span  # calendar arithmetic in UTC, like `within` in a UTC policy
        except (OverflowError, ValueError):
            raise UsageError(f"--for {shorten(for_)} ends beyond the year 9999") from None
    if until is not None:
        from ges_retention.inputs import parse_instant

        end = parse_instant(until, "--until")
        if end <= now:
            raise UsageError(f"--until {shorten(until)} is not in the future: such a hold would protect nothing")
        return end
    return None


def hold_command(
    location: StateLocation, backup_id: str, reason: str, *, for_: str | None, until: str | None, now: datetime
) -> int:
    from ges_retention.state import validate_backup_id, validate_hold_reason
    from ges_retention.state_access import cli_placed_by, existing_store

    validate_backup_id(backup_id)  # exit 2 before the state is even opened
    validate_hold_reason(reason)
    end = _hold_end(for_, until, now)

    async def main() -> tuple[Hold, Hold | None, bool]:
        async with existing_store(location, durable_for="hold") as store:
            known = bool((await store.why(backup_id)).records)
            previous = await store.get_hold(backup_id)
            hold = await store.put_hold(backup_id, reason, until=end, by=cli_placed_by(), now=now)
            return hold, previous, known

    hold, previous, known = asyncio.run(main())
    from ges_retention.report import plain

    lines = [f"held {plain(hold.backup_id)} {_until_text(hold)}: {plain(hold.reason)}"]
    if previous is not None and previous.in_force(now):
        lines.append(f"it replaces the hold {_until_text(previous)}: {plain(previous.reason)}")
    if not known:
        lines.append(
            f"note: the state has no record of {plain(backup_id)} (no run here has planned it): the hold is placed "
            "all the same and protects it from the first run that lists it"
        )
    lines.append(f"state: {location.display}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _until_text(hold: Hold) -> str:
    from ges_retention.report import iso_utc

    return "until released" if hold.until is None else f"until {iso_utc(hold.until)}"


def release_command(location: StateLocation, backup_id: str, *, now: datetime) -> int:
    from ges_retention.report import plain
    from ges_retention.state import validate_backup_id
    from ges_retention.state_access import existing_store

    validate_backup_id(backup_id)

    async def main() -> tuple[Hold | None, bool]:
        async with existing_store(location, durable_for="release") as store:
            previous = await store.get_hold(backup_id)
            return previous, await store.release_hold(backup_id, now=now)

    previous, released = asyncio.run(main())
    if not released or previous is None:
        raise NotFound(f"{backup_id} is not held (state: {location.display})")
    sys.stdout.write(f"released {plain(backup_id)} (was held {_until_text(previous)}: {plain(previous.reason)})\n")
    sys.stdout.write(f"state: {location.display}\n")
    return 0


def holds_command(location: StateLocation, *, fmt: str, now: datetime) -> int:
    from ges_retention.audit_report import holds_document, render_holds_table
    from ges_retention.state_access import existing_store

    async def main() -> list[Hold]:
        async with existing_store(location) as store:
            return await store.list_holds(at=now)

    holds = asyncio.run(main())
    if fmt == "json":
        sys.stdout.write(json.dumps(holds_document(holds, now), indent=2) + "\n")
    else:
        sys.stdout.write(render_holds_table(holds))
    return 0
