"""The command line: a thin face. Parse arguments, load settings, configure logs, `asyncio.run`, map exit codes.

stdout carries only the command's result; logs and errors go to stderr. An error is one clear line (with a traceback
only under `--debug`). Exit codes: 0 ok, 1 some listing or deletion failed, 2 invalid input, 3 safety stop,
130/143 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ges_retention import __version__
from ges_retention.errors import GesRetentionError, UsageError
from ges_retention.exit_codes import ExitCode
from ges_retention.inputs import parse_now, read_backup_export
from ges_retention.policy import Policy, PolicyFileDocument
from ges_retention.policy_loading import load_policy_file
from ges_retention.settings import Settings, SettingsError, load_settings

# `parse_now`, `read_backup_export` and `UsageError` are re-exported for the command modules that used them from here.
__all__ = ["UsageError", "main", "parse_now", "read_backup_export"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse's own exit code for bad usage is 2, which is also ours for invalid input.
        self.exit(ExitCode.INVALID, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ges-retention", description="Retention for Huawei Cloud GES graph backups.")
    parser.add_argument("--version", action="version", version=f"ges-retention {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    # `--debug` works before or after the command; SUPPRESS keeps a subcommand from resetting it.
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("validate", parents=[common], help="check a policy file")
    p.add_argument("policy_file")

    p = sub.add_parser("plan", parents=[common], help="decide what would be kept and deleted; deletes nothing")
    p.add_argument("policy_file")
    p.add_argument("--policy", action="append", default=[], metavar="NAME", help="plan only this policy (repeatable)")
    p.add_argument("--from-file", metavar="BACKUPS.json", help="plan an exported backup list instead of the API")
    p.add_argument("--now", metavar="ISO8601", help="plan as of this instant (no offset = UTC); default: the clock")
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = sub.add_parser("run", parents=[common], help="one run: list, plan, delete, summarise")
    p.add_argument("policy_file")
    p.add_argument("--policy", action="append", default=[], metavar="NAME")
    p.add_argument("--dry-run", action="store_true", help="plan and log, delete nothing")
    p.add_argument("--max-deletes", type=_non_negative_int, metavar="N", help="replace safety.max_deletes")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser("daemon", parents=[common], help="schedule policies, watch the file, serve health and metrics")
    p.add_argument("policy_file")

    p = sub.add_parser("emulator", parents=[common], help="a local GES + IAM emulator for tests and demos")
    from ges_retention.emulator import command as emulator_command

    emulator_command.add_arguments(p)

    sub.add_parser("demo", parents=[common], help="run the example policy against a seeded in-process emulator")
    sub.add_parser("schema", parents=[common], help="print the JSON Schema of the policy file")
    return parser


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _describe(policy: Policy) -> str:
    keep = policy.keep
    rules = [
        f"{rule} {getattr(keep, rule)}"
        for rule in ("last", "hourly", "daily", "weekly", "monthly", "yearly")
        if getattr(keep, rule)
    ]
    if keep.within is not None:
        rules.append(f"within {keep.within}")
    if keep.names or keep.ids:
        rules.append(f"{len(keep.names) + len(keep.ids)} pin(s)")
    schedule = f"schedule '{policy.schedule}' ({policy.timezone})" if policy.schedule else "on demand"
    parts = [
        f"{policy.name}: project {policy.project_id}",
        schedule,
        "keep " + ", ".join(rules),
        f"min_keep {policy.safety.min_keep}, max_deletes {policy.safety.max_deletes}",
    ]
    if policy.dry_run:
        parts.append("dry-run")
    return "; ".join(parts)


def _cmd_validate(args: argparse.Namespace) -> int:
    policy_file = load_policy_file(args.policy_file)
    for policy in policy_file.policies:
        print(_describe(policy))
    return ExitCode.OK


def _cmd_schema(_args: argparse.Namespace) -> int:
    print(json.dumps(policy_schema(), indent=2, sort_keys=False))
    return ExitCode.OK


def policy_schema() -> dict[str, Any]:
    schema = PolicyFileDocument.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema.pop("$id", None)
    return schema


def _cmd_plan(args: argparse.Namespace, settings: Settings | None) -> int:
    from ges_retention.commands import plan_command

    policy_file = load_policy_file(args.policy_file)
    selected = policy_file.select(args.policy)
    now = parse_now(args.now)
    export = read_backup_export(args.from_file) if args.from_file is not None else None
    if export is None and settings is None:
        raise SettingsError("settings are required to list backups from the API")
    return plan_command(policy_file, selected, now, settings=settings, export=export, fmt=args.format)


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from ges_retention.commands import run_command

    policy_file = load_policy_file(args.policy_file)
    selected = policy_file.select(args.policy)
    return run_command(
        policy_file, selected, settings, dry_run=args.dry_run, max_deletes=args.max_deletes, fmt=args.format
    )


def _cmd_daemon(args: argparse.Namespace, settings: Settings) -> int:
    from ges_retention.daemon import run_daemon

    return run_daemon(Path(args.policy_file), settings)


def _cmd_demo(_args: argparse.Namespace, settings: Settings | None) -> int:
    from ges_retention.demo import run_demo

    return run_demo(settings)


def _configure_logs(settings: Settings | None) -> None:
    from ges_retention.logs import configure_logging, register_secrets

    if settings is None:
        configure_logging()
        return
    register_secrets(settings.secret_values())
    configure_logging(settings.log_format, settings.log_level)


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "schema":
        return _cmd_schema(args)
    if command == "validate":
        return _cmd_validate(args)
    if command == "emulator":
        from ges_retention.emulator import command as emulator_command

        return emulator_command.run(args)

    needs_api = command in ("run", "daemon") or (command == "plan" and args.from_file is None)
    settings: Settings | None
    try:
        settings = load_settings()
    except SettingsError:
        if needs_api or command == "demo":
            raise
        settings = None
    _configure_logs(settings)
    if needs_api:
        assert settings is not None
        settings.credentials()  # exactly one complete scheme, before any request
    if command == "plan":
        return _cmd_plan(args, settings)
    if command == "demo":
        return _cmd_demo(args, settings)
    assert settings is not None
    if command == "run":
        return _cmd_run(args, settings)
    return _cmd_daemon(args, settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(_dispatch(args))
    except GesRetentionError as exc:
        # Policy, settings, usage, cron, duration and record errors: one line, the error type's exit code.
        if args.debug:
            traceback.print_exc()
        print(f"ges-retention: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED_SIGINT
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        else:
            from ges_retention.logs import scrub

            print(f"ges-retention: error: unexpected {type(exc).__name__}: {scrub(str(exc))}", file=sys.stderr)
        return ExitCode.FAILED
