"""`ges-retention emulator`: serve the GES + IAM emulator until SIGINT or SIGTERM.

Once listening it prints exactly one JSON line on stdout, so that scripts can point clients at it:

    {"event": "emulator_started", "url": "http://127.0.0.1:8000", "project_id": "...", "ak": "...", "sk": "...",
     "token": "..."}

These are the emulator's own throwaway credentials (the defaults are shown by `--help`). Anything else it has to
say goes to stderr as JSON lines. Exit code 0 on SIGINT/SIGTERM; 1 if it cannot listen; 2, with one line on stderr
and before anything is made, for a host beyond loopback without `--allow-remote` (the control API has no
authentication: anyone who reaches it can change the data and the knobs) or seed sizes beyond the bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

from ges_retention.emulator.config import (
    DEFAULT_AK,
    DEFAULT_IAM_DOMAIN,
    DEFAULT_IAM_PASSWORD,
    DEFAULT_IAM_USER,
    DEFAULT_PROJECT_ID,
    DEFAULT_SK,
    DEFAULT_TOKEN,
    GES_OPERATIONS,
    PROJECT_ID_RE,
    AccessKey,
    EmulatorConfig,
    FaultRates,
    IamUser,
)
from ges_retention.emulator.seeding import MAX_SEED_BACKUPS, check_seed_sizes
from ges_retention.emulator.store import Store

__all__ = ["DEFAULT_PORT", "add_arguments", "build_config", "run"]

DEFAULT_PORT = 8000


def _port(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _count(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _probability(text: str) -> float:
    value = _non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"a probability is 0..1, got {text}")
    return value


def _project_id(text: str) -> str:
    if not PROJECT_ID_RE.fullmatch(text):
        raise argparse.ArgumentTypeError("a project id is 1 to 64 letters and digits")
    return text


def _non_empty(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `ges-retention emulator` (the contract's command table), with their defaults in the help."""
    add = parser.add_argument
    add(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s); beyond loopback only with --allow-remote",
    )
    add(
        "--allow-remote",
        action="store_true",
        help="allow a --host beyond loopback: the control API (/_emulator/) has no authentication",
    )
    add("--port", type=_port, default=DEFAULT_PORT, help="port to listen on; 0 picks a free one (default: %(default)s)")
    add(
        "--seed-graphs",
        type=_count,
        default=5,
        metavar="N",
        help=f"graphs to seed (default: %(default)s; at most {MAX_SEED_BACKUPS:,} backups in all)",
    )
    add(
        "--seed-backups",
        type=_count,
        default=30,
        metavar="M",
        help="backups per seeded graph: daily auto ones going back M days, some manual, failed or running "
        "(default: %(default)s)",
    )
    add(
        "--latency-ms",
        type=_non_negative,
        default=0.0,
        metavar="L",
        help="added to every answer (default: %(default)s)",
    )
    add(
        "--rate-limit",
        type=_count,
        default=0,
        metavar="R",
        help="requests per second per project, over any sliding second; more get 429 APIGW.0308; 0 = no limit "
        "(default: %(default)s)",
    )
    add(
        "--fault-rate",
        type=_probability,
        default=0.0,
        metavar="F",
        help="probability that a GES request fails with a 500, a 503 or a dropped connection, each equally likely "
        "(default: %(default)s)",
    )
    add("--seed", type=_int, default=0, metavar="S", help="seed of every random choice (default: %(default)s)")
    add(
        "--project-id",
        type=_project_id,
        default=DEFAULT_PROJECT_ID,
        metavar="ID",
        help="the emulated project (default: %(default)s)",
    )
    add("--ak", type=_non_empty, default=DEFAULT_AK, metavar="AK", help="access key (default: %(default)s)")
    add("--sk", type=_non_empty, default=DEFAULT_SK, metavar="SK", help="its secret key (default: %(default)s)")
    add(
        "--token",
        type=_non_empty,
        default=DEFAULT_TOKEN,
        metavar="T",
        help="a static X-Auth-Token (default: %(default)s); POST /v3/auth/tokens also issues tokens to the IAM user "
        f"{DEFAULT_IAM_DOMAIN}/{DEFAULT_IAM_USER} with password {DEFAULT_IAM_PASSWORD}",
    )


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator's knobs from the parsed flags."""
    share = args.fault_rate / 3
    faults = (
        {op: FaultRates(error_500=share, error_503=share, drop=share) for op in GES_OPERATIONS} if share > 0 else {}
    )
    return EmulatorConfig(
        project_ids=[args.project_id],
        access_keys=[AccessKey(args.ak, args.sk, args.project_id)],
        tokens={args.token: args.project_id},
        iam_users=[IamUser(DEFAULT_IAM_DOMAIN, DEFAULT_IAM_USER, DEFAULT_IAM_PASSWORD)],
        latency_ms=args.latency_ms,
        rate_limit_per_s=args.rate_limit,
        faults=faults,
        seed=args.seed,
    )


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1): what may listen without `--allow-remote`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def refusal(args: argparse.Namespace) -> str | None:
    """Why these flags must not start an emulator, or None."""
    if not is_loopback(args.host) and not getattr(args, "allow_remote", False):
        return (
            f"--host {args.host[:100]} is beyond loopback and the control API has no authentication; "
            "add --allow-remote to listen there anyway"
        )
    try:
        check_seed_sizes(args.seed_graphs, args.seed_backups)
    except ValueError as exc:
        return f"--seed-graphs/--seed-backups: {exc}"
    return None


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 then, 1 if the emulator cannot listen, 2 for flags it refuses."""
    refused = refusal(args)
    if refused is not None:
        print(f"ges-retention emulator: error: {refused}", file=sys.stderr, flush=True)
        return 2
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:  # a SIGINT before the handlers were installed
        return 0


async def _serve(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the CLI builds its parser from `add_arguments`, and aiohttp costs every command
    # (even `--version`) a tenth of a second of start-up.
    from ges_retention.emulator.app import running_emulator

    config = build_config(args)
    store = Store()
    seeded = store.seed(
        args.project_id,
        graphs=args.seed_graphs,
        backups_per_graph=args.seed_backups,
        now_ms=int(time.time() * 1000),
        seed=args.seed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with running_emulator(store, config, args.host, args.port) as emulator:
            started = {
                "event": "emulator_started",
                "url": emulator.url,
                "project_id": args.project_id,
                "ak": args.ak,
                "sk": args.sk,
                "token": args.token,
            }
            print(json.dumps(started), flush=True)
            _log("info", "emulator_listening", url=emulator.url, graphs=args.seed_graphs, backups=seeded.backups)
            await stop.wait()
            _log("info", "emulator_stopping", url=emulator.url)
    except OSError as exc:
        _log("error", "emulator_failed", error=f"cannot listen on {args.host}:{args.port}: {exc}")
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0


def _log(level: str, event: str, **fields: Any) -> None:
    line = {"timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "level": level, "event": event}
    print(json.dumps({**line, **fields}), file=sys.stderr, flush=True)
