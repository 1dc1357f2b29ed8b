"""The command line: a thin face. Parse arguments, load settings, configure logs, `asyncio.run`, map exit codes.

stdout carries only the command's result; logs and errors go to stderr. An error is one clear line (with a traceback
only under `--debug`): a JSON `command_failed` event when the log format is `json`, like every other stderr line.
Exit codes: 0 ok, 1 some listing or deletion failed, 2 invalid input, 3 safety stop, 130/143 interrupted.

`--log-format`, `--log-level` and `--debug` work before or after the command; the first two override the settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ges_retention import __version__
from ges_retention.errors import GesRetentionError, UsageError
from ges_retention.exit_codes import ExitCode
from ges_retention.inputs import parse_now, read_backup_export

# Cold start (issue 17): a one-shot CronJob pays every import on every run, so this module and the parser import
# nothing heavy. The policy models (pydantic), the settings (pydantic-settings), aiohttp and the emulator are
# imported by the command that needs them; `--version` answers before the parser is even built.
if TYPE_CHECKING:
    from ges_retention.policy import Policy
    from ges_retention.settings import Settings

# `parse_now`, `read_backup_export` and `UsageError` are re-exported for the command modules that used them from here.
__all__ = ["UsageError", "main", "parse_now", "read_backup_export"]


class _BadUsage(UsageError):
    """argparse refused the command line; `main` writes it in the log format (exit 2, argparse's own code too)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(f"{parser.prog}: {message}")
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    # The parser tree's root, whose epilogs (cli_help: the settings' list needs the settings model) are written when
    # a help screen is first formatted rather than each time the parser is built.
    epilog_root: argparse.ArgumentParser | None = None

    def error(self, message: str) -> NoReturn:
        raise _BadUsage(self, message)

    def format_help(self) -> str:
        root = self.epilog_root
        if root is not None and root.epilog is None:
            from ges_retention import cli_help

            cli_help.add_epilogs(root)
        return super().format_help()


def _add_global_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    from ges_retention.logs import LOG_FORMATS, LOG_LEVELS

    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks on errors")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default=default, help="override GES_RETENTION_LOG_FORMAT")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=default, help="override GES_RETENTION_LOG_LEVEL")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ges-retention", description="Retention for Huawei Cloud GES graph backups.")
    parser.add_argument("--version", action="version", version=f"ges-retention {__version__}")
    _add_global_flags(parser, None)
    # The global flags work before or after the command; SUPPRESS keeps a subcommand from resetting them.
    common = _Parser(add_help=False)
    _add_global_flags(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("validate", parents=[common], help="check a policy file: every problem, next fire times")
    p.add_argument("policy_file")
    p.add_argument("--format", choices=("text", "json"), default="text")

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
    from ges_retention import simulate_arguments

    simulate_arguments.add_arguments(sub.add_parser("simulate", parents=[common], help="forecast a policy over time"))
    sub.add_parser("schema", parents=[common], help="print the JSON Schema of the policy file")
    from ges_retention import audit_command, holds_command

    holds_command.add_parsers(sub, parents=[common])
    audit_command.add_parsers(sub, parents=[common])
    p = sub.add_parser("ack", parents=[common], help="acknowledge a definition held by the change gate")
    p.add_argument("policy_file")
    p.add_argument("--policy", required=True, metavar="NAME", help="the held policy")
    p.add_argument(
        "--digest", required=True, metavar="SHA256", help="its gate digest (from policy_change_held or plan)"
    )
    from ges_retention import completion

    completion.add_parser(sub, parents=[common])
    for each in (parser, *sub.choices.values()):
        each.epilog_root = parser  # every one is a _Parser (parser_class)
    return parser


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _cmd_validate(args: argparse.Namespace) -> int:
    from ges_retention.validate import validate_command

    def report(message: str) -> None:
        _print_error(args, message, ExitCode.INVALID, with_traceback=args.debug)

    return validate_command(args.policy_file, fmt=args.format, now=datetime.now(UTC), report_error=report)


def _cmd_schema(_args: argparse.Namespace) -> int:
    print(json.dumps(policy_schema(), indent=2, sort_keys=False))
    return ExitCode.OK


def policy_schema() -> dict[str, Any]:
    from ges_retention.policy import PolicyFileDocument

    schema = PolicyFileDocument.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema.pop("$id", None)
    return schema


def _refuse_orphan_selection(selected: Sequence[Policy]) -> None:
    """An export has no graph listing: whether a backup is an orphan is not known, so `orphans: exclude|only` cannot
    be planned from it (exit 2) rather than being planned as if nothing were an orphan."""
    for policy in selected:
        if policy.select.orphans != "include":
            raise UsageError(
                f"policy {policy.name!r}: select.orphans: {policy.select.orphans} needs a live graph listing; "
                "plan --from-file has none (plan it without --from-file)"
            )


def _cmd_plan(args: argparse.Namespace, settings: Settings | None) -> int:
    from ges_retention.commands import plan_command
    from ges_retention.policy_loading import load_policy_file
    from ges_retention.settings import SettingsError

    policy_file = load_policy_file(args.policy_file)
    selected = policy_file.select(args.policy)
    now = parse_now(args.now)
    if args.from_file is not None:
        _refuse_orphan_selection(selected)
    export = read_backup_export(args.from_file) if args.from_file is not None else None
    if export is None and settings is None:
        raise SettingsError("settings are required to list backups from the API")
    return plan_command(policy_file, selected, now, settings=settings, export=export, fmt=args.format)


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from ges_retention.commands import run_command
    from ges_retention.policy_loading import load_policy_file

    policy_file = load_policy_file(args.policy_file)
    selected = _enabled(policy_file.select(args.policy), named=bool(args.policy))
    from ges_retention.state_access import state_location

    location = state_location(settings)
    if location.kind == "memory":
        from ges_retention.two_phase import refuse_without_durable_state

        refuse_without_durable_state(policy_file, selected, state_display=location.display)
    if not selected:  # every policy of the file is paused: nothing to do is a success
        note = {
            "run_id": None,
            "policies": [],
            "skipped": [{"policy": n, "reason": "paused"} for n in policy_file.names()],
        }
        sys.stdout.write(
            json.dumps(note, indent=2) + "\n" if args.format == "json" else "no run: every policy is paused\n"
        )
        return ExitCode.OK
    return run_command(
        policy_file, selected, settings, dry_run=args.dry_run, max_deletes=args.max_deletes, fmt=args.format
    )


def _enabled(selected: list[Policy], *, named: bool) -> list[Policy]:
    """`enabled: false` pauses a policy: named with `--policy` it is an error, else it is skipped (`run_skipped`)."""
    import structlog

    paused = [p.name for p in selected if not p.enabled]
    if paused and named:
        raise UsageError(f"policy {', '.join(paused)} is paused (enabled: false); set enabled: true to run it")
    for name in paused:
        structlog.get_logger("ges_retention.cli").info("run_skipped", policy=name, reason="paused", trigger="cli")
    return [p for p in selected if p.enabled]


# The journal's commands: they read or change the state without running anything, and need no credentials.
_HOLD_COMMANDS = ("hold", "release", "holds")
_AUDIT_COMMANDS = ("why", "history")
_STATE_COMMANDS = (*_HOLD_COMMANDS, *_AUDIT_COMMANDS, "ack")


def _cmd_state(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "ack":
        from ges_retention import ack

        return ack.ack_command(args, settings)
    if args.command in _HOLD_COMMANDS:
        from ges_retention import holds_command

        return holds_command.run(args, settings)
    from ges_retention import audit_command

    return audit_command.run(args, settings)


def _cmd_daemon(args: argparse.Namespace, settings: Settings) -> int:
    from ges_retention.daemon_process import run_daemon

    return run_daemon(Path(args.policy_file), settings)


def _cmd_demo(args: argparse.Namespace, settings: Settings | None) -> int:
    from ges_retention.demo import run_demo

    return run_demo(settings, log_format=args.log_format, log_level=args.log_level)


def _configure_logs(args: argparse.Namespace, settings: Settings | None) -> None:
    from ges_retention.logs import LOG_FORMATS, LOG_LEVELS, configure_logging, register_secrets

    if settings is not None:
        register_secrets(settings.secret_values())
    fmt = args.log_format or (settings.log_format if settings else _env_choice("LOG_FORMAT", LOG_FORMATS, "json"))
    level = args.log_level or (settings.log_level if settings else _env_choice("LOG_LEVEL", LOG_LEVELS, "info"))
    args.log_format_in_use = fmt  # what the final error line follows from now on
    configure_logging(fmt, level)


def _env_choice(name: str, choices: Sequence[str], default: str) -> str:
    """A setting read directly, for when the settings as a whole are invalid or not needed."""
    value = os.environ.get(f"GES_RETENTION_{name}", "").strip().lower()
    return value if value in choices else default


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "schema":
        return _cmd_schema(args)
    if command == "completion":
        from ges_retention import completion

        print(completion.script(_build_parser(), args.shell), end="")
        return ExitCode.OK
    if command == "emulator":
        from ges_retention.emulator import command as emulator_command

        return emulator_command.run(args)
    if command == "simulate":
        from ges_retention import simulate_command

        return simulate_command.run(args)

    from ges_retention.settings import SettingsError, load_settings

    needs_api = command in ("run", "daemon") or (command == "plan" and args.from_file is None)
    settings: Settings | None
    try:
        settings = load_settings()
    except SettingsError:
        if needs_api or command in ("demo", *_STATE_COMMANDS):
            raise
        settings = None
    _configure_logs(args, settings)
    if command == "validate":
        return _cmd_validate(args)
    if command in _STATE_COMMANDS:
        assert settings is not None
        return _cmd_state(args, settings)
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


def _print_error(args: argparse.Namespace, message: str, code: int, *, with_traceback: bool = False) -> None:
    from ges_retention.logs import LOG_FORMATS, error_line, flush_lines

    flush_lines()  # the run's last lines before its error line
    fmt = getattr(args, "log_format_in_use", None) or args.log_format or _env_choice("LOG_FORMAT", LOG_FORMATS, "json")
    trace = traceback.format_exc() if with_traceback else None
    if trace is not None and fmt == "console":
        sys.stderr.write(trace)
        trace = None
    print(error_line(message, fmt=fmt, exit_code=code, traceback_text=trace), file=sys.stderr)


def _print_usage_error(argv: Sequence[str], exc: _BadUsage) -> None:
    from ges_retention.logs import LOG_FORMATS

    args = argparse.Namespace(log_format=_flag_value(argv, "--log-format", LOG_FORMATS))
    if (args.log_format or _env_choice("LOG_FORMAT", LOG_FORMATS, "json")) == "console":
        exc.parser.print_usage(sys.stderr)
    _print_error(args, str(exc), ExitCode.INVALID)


def _flag_value(argv: Sequence[str], flag: str, choices: Sequence[str]) -> str | None:
    """The value of `flag` in an argument list argparse could not parse, if it is a valid one."""
    for i, word in enumerate(argv):
        value = argv[i + 1] if word == flag and i + 1 < len(argv) else word.removeprefix(f"{flag}=")
        if (word == flag or word.startswith(f"{flag}=")) and value in choices:
            return value
    return None


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words == ["--version"]:  # what argparse would print, without building the parser
        print(f"ges-retention {__version__}")
        return ExitCode.OK
    parser = _build_parser()
    try:
        args = parser.parse_args(words)
    except _BadUsage as exc:
        _print_usage_error(words, exc)
        return ExitCode.INVALID
    try:
        return int(_dispatch(args))
    except GesRetentionError as exc:
        # Policy, settings, usage, cron, duration and record errors: one line, the error type's exit code.
        _print_error(args, str(exc), exc.exit_code, with_traceback=args.debug)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED_SIGINT
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:
        message = f"unexpected {type(exc).__name__}: {exc}"
        _print_error(args, message, ExitCode.FAILED, with_traceback=args.debug)
        return ExitCode.FAILED
