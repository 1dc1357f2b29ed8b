"""The arguments of `ges-retention simulate`, apart from the command (`simulate_command.py`).

Every command builds the whole parser, so this module imports nothing but argparse: the command's own imports (the
policy models, the planner, the SVG) are paid by `simulate` alone.
"""

from __future__ import annotations

import argparse

__all__ = ["DEFAULT_BACKUPS", "MAX_DAYS", "add_arguments"]

DEFAULT_BACKUPS = "0 2 * * *@auto"
MAX_DAYS = 7300  # twenty years


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy_file")
    parser.add_argument("--policy", required=True, metavar="NAME", help="the policy to simulate")
    parser.add_argument("--days", type=_days, default=730, metavar="N", help="days to simulate (default 730)")
    parser.add_argument(
        "--backups",
        action="append",
        metavar="CRON[@METHOD]",
        help=f"a backup cadence, cron in the policy's timezone (repeatable; default {DEFAULT_BACKUPS!r})",
    )
    parser.add_argument("--failure-rate", type=_rate, default=0.0, metavar="F", help="share of failed backups, 0..1")
    parser.add_argument(
        "--outage",
        action="append",
        default=[],
        metavar="START..END",
        help="no backups created from START to END (exclusive); ISO dates or date-times in the policy's timezone",
    )
    parser.add_argument("--quota", type=_non_negative, metavar="N", help="report the first day above N backups")
    parser.add_argument("--from-file", metavar="BACKUPS.json", help="a real export, alive at the start")
    parser.add_argument("--start", metavar="ISO8601", help="first simulated instant (default: today 00:00)")
    parser.add_argument("--svg", metavar="FILE", help="also draw the forecast as an SVG picture")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the failure draws (default 0)")


def _days(text: str) -> int:
    value = _whole(text)
    if not 1 <= value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_DAYS}, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also false for nan
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value
