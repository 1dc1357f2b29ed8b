"""Shared pieces of the reliability suite: distinctive test credentials, the secret scan, CLI and daemon
subprocesses whose every output line is scanned, a tiny recording GES server, and the figures the suite reports.

Every load or fault test talks to 127.0.0.1 only (the in-process emulator, or `ListingServer`), is bounded in
requests and time, and stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

import support.processes
from ges_retention.backup import Backup
from ges_retention.emulator.app import EMULATOR_KEY, RunningEmulator
from ges_retention.policy_loading import parse_policy_text
from ges_retention.retention import plan_file
from ges_retention.service import Service
from ges_retention.settings import Settings
from ges_retention.summary import RunSummary
from subprocess_env import clean_env
from support.processes import CliResult, finish, start_cli
from support.waiting import wait_for

__all__ = [
    "FIGURES",
    "HTTP_TOKEN",
    "IAM_PASSWORD",
    "NOTES",
    "SECRETS",
    "SECURITY_TOKEN",
    "SK",
    "TOKEN",
    "WRONG_HTTP_TOKEN",
    "WRONG_PASSWORD",
    "WRONG_SK",
    "WRONG_TOKEN",
    "CliResult",
    "DaemonProcess",
    "ListingServer",
    "assert_no_secrets",
    "base_env",
    "expected_plan",
    "finish_cli",
    "issued_tokens",
    "note",
    "record",
    "run_cli",
    "run_in_process",
    "start_cli",
    "wait_for",
    "write_file",
]

# Distinctive credentials: nothing else in the suite's output can contain "SECRET-". The emulator is configured with
# these (or refuses the WRONG_ ones), so every service process of the suite holds one of them.
TOKEN = "SECRET-token-7f3a9c1e5b2d"
SK = "SECRET-sk-4d2b8e6a0c1f"
SECURITY_TOKEN = "SECRET-sectoken-9e1f3a5c7b0a"
IAM_PASSWORD = "SECRET-password-2c4e6a8b0d3e"
HTTP_TOKEN = "SECRET-http-6b8d0f2a4c5e"
WRONG_TOKEN = "SECRET-wrong-token-1a2b3c4d"
WRONG_SK = "SECRET-wrong-sk-5e6f7a8b"
WRONG_PASSWORD = "SECRET-wrong-password-9c0d1e2f"
WRONG_HTTP_TOKEN = "SECRET-wrong-http-3a4b5c6d"
SECRETS = (
    TOKEN,
    SK,
    SECURITY_TOKEN,
    IAM_PASSWORD,
    HTTP_TOKEN,
    WRONG_TOKEN,
    WRONG_SK,
    WRONG_PASSWORD,
    WRONG_HTTP_TOKEN,
)
# The common part: a secret cut, quoted or concatenated still shows it.
SECRET_MARK = "SECRET-"

# --- figures ------------------------------------------------------------------------------------------------------

FIGURES: Counter[str] = Counter()
NOTES: dict[str, str] = {}


def record(name: str, value: int = 1) -> None:
    """Add to one of the figures the suite reports at the end (`pytest_terminal_summary` in conftest)."""
    FIGURES[name] += value


def note(name: str, value: object) -> None:
    """A figure that is not a count (kill points, durations), reported with the others."""
    NOTES[name] = str(value)


def write_file(path: str, text: str) -> None:
    """Write a small file (the policy of a test) in the working directory."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


# --- the secret scan ----------------------------------------------------------------------------------------------


def assert_no_secrets(lines: Iterable[str], *, extra: Iterable[str] = (), where: str = "output") -> int:
    """Fail if any line holds a test credential (or one of `extra`, e.g. IAM tokens the emulator issued).

    Returns the number of lines scanned (a figure)."""
    needles = [SECRET_MARK, *SECRETS, *(e for e in extra if e)]
    scanned = 0
    for line in lines:
        scanned += 1
        for needle in needles:
            assert needle not in line, f"a secret ({needle[:12]}...) appears in {where}: {line[:300]}"
    record("log lines scanned for secrets", scanned)
    return scanned


def issued_tokens(emulator: RunningEmulator) -> list[str]:
    """The IAM tokens (and agency secret keys and security tokens) the emulator issued: secrets the service held,
    which must not be logged either."""
    registry = emulator.app[EMULATOR_KEY].tokens
    temporary = [secret for key in registry.temporary_keys() for secret in (key.sk, key.security_token)]
    return [*getattr(registry, "_issued", {}), *temporary]


# --- CLI subprocesses ---------------------------------------------------------------------------------------------


base_env = clean_env


async def finish_cli(
    proc: asyncio.subprocess.Process, *, timeout_s: float = 120.0, extra_secrets: Callable[[], Iterable[str]] = tuple
) -> CliResult:
    """Wait (bounded) for a CLI subprocess; scan every line it wrote for secrets."""
    result = await finish(proc, timeout_s)
    lines = [*result.stdout.splitlines(), *result.stderr.splitlines()]
    assert_no_secrets(lines, extra=extra_secrets(), where="the output of a ges-retention process")
    record("subprocesses run")
    return result


async def run_cli(
    args: list[str],
    env: Mapping[str, str],
    *,
    timeout_s: float = 120.0,
    extra_secrets: Callable[[], Iterable[str]] = tuple,
) -> CliResult:
    """Run the real CLI in a subprocess while this loop keeps serving the emulator."""
    return await finish_cli(await start_cli(args, env), timeout_s=timeout_s, extra_secrets=extra_secrets)


class DaemonProcess(support.processes.DaemonProcess):
    """A `ges-retention daemon` subprocess (`support.processes`) whose every output line is scanned at the stop."""

    async def stop(self, extra_secrets: Iterable[str] = ()) -> int:  # type: ignore[override]
        """SIGTERM, wait (bounded) for the exit code, scan every line the daemon wrote."""
        code = await super().stop(signal.SIGTERM)
        assert_no_secrets([*self.stdout_lines, *self.lines], extra=extra_secrets, where="the output of the daemon")
        record("subprocesses run")
        return code


# --- plans --------------------------------------------------------------------------------------------------------


def expected_plan(
    records: Iterable[Mapping[str, Any]], policy_text: str, now: datetime
) -> tuple[set[str], set[str], list[Backup]]:
    """(ids the file's policies delete, ids they keep, the backups) as the planner decides over `records`."""
    policy_file = parse_policy_text(policy_text)
    backups = [Backup.from_api(r) for r in records]
    plans = plan_file(policy_file.policies, policy_file.policies, lambda _p: backups, now)
    delete = {d.backup.id for p in plans for d in p.deletions}
    return delete, {b.id for b in backups} - delete, backups


# --- one run in this process -------------------------------------------------------------------------------------


async def run_in_process(
    endpoint: str, policy_text: str, *, now: datetime, token: str = TOKEN, **overrides: Any
) -> RunSummary:
    """One `Runner.run` of every policy of `policy_text` against `endpoint`, with the clock fixed at `now`."""
    values: dict[str, Any] = {
        "token": token,
        "endpoint": endpoint,
        "rate_limit": 0,
        "max_attempts": 2,
        "backoff_max_s": 0.01,
        "request_timeout_s": 5,
        "page_size": 50,
        "concurrency": 4,
    }
    values.update(overrides)
    settings = Settings(_env_file=None, **values)
    async with Service(settings, clock=lambda: now) as runner:
        policy_file = parse_policy_text(policy_text)
        return await runner.run(policy_file, policy_file.policies)


# --- a tiny GES server that serves whatever a test gives it and records the raw requests --------------------------


@dataclass
class SeenRequest:
    method: str
    raw_path: str
    path: str


class ListingServer:
    """Serves `GET /v2/{p}/graphs/backups` from a queue of raw bodies (then an empty page with `tail_count`), answers
    every DELETE with `{}`, and records every request with its raw path, as sent on the wire. The bodies are served in
    the order the requests arrive, whatever their `offset`; `served_offsets[i]` is the offset `served[i]` answered
    (the client reads its pages in offset order, which concurrent requests need not arrive in). The graph listing is
    `graphs` (default: none, so every backup is an orphan, which `orphans: include` plans like any other); the
    quota is unlimited."""

    def __init__(self) -> None:
        self.pages: list[bytes] = []
        self.tail_count = 0
        self.served: list[bytes] = []
        self.served_offsets: list[int] = []
        self.requests: list[SeenRequest] = []
        self.graphs: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def load(self, pages: list[bytes], tail_count: int) -> None:
        self.pages = list(pages)
        self.tail_count = tail_count
        self.served = []
        self.served_offsets = []
        self.requests = []

    @property
    def deletes(self) -> list[SeenRequest]:
        return [r for r in self.requests if r.method == "DELETE"]

    async def _any(self, request: web.Request) -> web.Response:
        self.requests.append(SeenRequest(request.method, request.raw_path, request.path))
        if request.method == "DELETE":
            return web.json_response({})
        if request.method == "GET" and request.path.endswith("/graphs/backups"):
            if self.pages:
                body = self.pages.pop(0)
            else:
                body = json.dumps({"backup_count": self.tail_count, "backup_list": []}).encode()
            self.served.append(body)
            self.served_offsets.append(int(request.query.get("offset", "0")))
            return web.Response(body=body, content_type="application/json")
        if request.method == "GET" and request.path.endswith("/graphs"):
            return web.json_response({"graph_count": len(self.graphs), "graphs": self.graphs})
        if request.method == "GET" and request.path.endswith("/graphs/quotas"):
            return web.json_response({"quotas": {"resources": [{"type": "backup", "available": -1}]}})
        return web.json_response({"error_code": "APIGW.0101", "error_msg": "no such API"}, status=404)

    async def __aenter__(self) -> ListingServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
