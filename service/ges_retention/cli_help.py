"""What `--help` says beyond the options: the settings, the exit codes and the signals (argparse epilogs).

Shared by the help screens, the man page (manpage.py) and the completion scripts' tooling (completion.py walks the
same parser). The settings are read from `Settings` itself, so a new setting is listed without an edit here.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

__all__ = [
    "EXIT_CODES",
    "SIGNALS",
    "add_epilogs",
    "command_exit_codes",
    "expanded_help",
    "setting_variables",
    "subcommands",
]

EXIT_CODES = {
    0: "ok: everything planned was deleted or already gone (a dry run: planned without a safety stop)",
    1: "something failed: a listing or a deletion (or it did not finish), or what was named is not found",
    2: "invalid input (arguments, policy file, settings, state): nothing was called",
    3: "a safety stop: a policy's plan exceeded its limits and that policy deleted nothing",
    130: "interrupted by SIGINT, after draining in-flight deletions",
    143: "interrupted by SIGTERM, after draining in-flight deletions",
}
# Which codes each command can end with (the contract); a command not listed here gets 0, 1 and 2.
_COMMAND_CODES = {
    "validate": (0, 2),
    "plan": (0, 1, 2, 3),
    "run": (0, 1, 2, 3, 130, 143),
    "daemon": (0, 2),
    "schema": (0,),
    "demo": (0, 1, 2),
    "emulator": (0, 2),
    "completion": (0, 2),
    "simulate": (0, 2),
}
SIGNALS = {
    "SIGTERM, SIGINT": "stop: no new deletion starts, in-flight ones drain (GES_RETENTION_SHUTDOWN_GRACE_S)",
    "SIGHUP": "daemon: reload the policy file now",
    "SIGUSR1": "daemon: run every enabled policy now (one already running is skipped)",
}
_SIGNAL_COMMANDS = ("run", "daemon")


def setting_variables() -> Iterator[tuple[str, str]]:
    """(environment variable, default or `secret`) of every setting, in declaration order."""
    # Imported here: only the help screens and the man page need the settings model (pydantic-settings is slow to
    # import), and the parser is built by every command, `--version` included.
    from pydantic import AliasChoices, SecretStr

    from ges_retention.settings import PREFIX, Settings

    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        variable = alias.choices[0] if isinstance(alias, AliasChoices) else f"{PREFIX}{name.upper()}"
        if field.annotation is not None and SecretStr in getattr(field.annotation, "__args__", (field.annotation,)):
            yield str(variable), "secret, no default"
        elif field.default is None:
            yield str(variable), "no default"
        else:
            yield str(variable), f"default {field.default}"


def command_exit_codes(command: str) -> tuple[int, ...]:
    return _COMMAND_CODES.get(command, (0, 1, 2))


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name, in the order they were added."""
    for action in parser._actions:  # argparse has no public accessor for its subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def expanded_help(action: argparse.Action, prog: str) -> str:
    """An option's help with argparse's `%(default)s`-style references filled in, as --help shows it."""
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    params = {**vars(action), "prog": prog}
    if action.choices is not None:
        params["choices"] = ", ".join(map(str, action.choices))
    return action.help % params


def _lines(title: str, items: list[tuple[str, str]]) -> str:
    width = max(len(key) for key, _ in items)
    return "\n".join([f"{title}:", *(f"  {key:<{width}}  {value}" for key, value in items)])


def main_epilog() -> str:
    return "\n\n".join(
        [
            _lines(
                "settings (environment variables; also read from ./.env and /run/secrets)", list(setting_variables())
            ),
            _lines("exit codes", [(str(code), text) for code, text in EXIT_CODES.items()]),
            _lines("signals", list(SIGNALS.items())),
            "`ges-retention COMMAND --help` for a command; README.md for the settings' meanings.",
        ]
    )


def command_epilog(command: str) -> str:
    parts = [_lines("exit codes", [(str(code), EXIT_CODES[code]) for code in command_exit_codes(command)])]
    if command in _SIGNAL_COMMANDS:
        parts.append(_lines("signals", [(k, v) for k, v in SIGNALS.items() if command == "daemon" or "," in k]))
    parts.append("settings: see `ges-retention --help`")
    return "\n\n".join(parts)


def add_epilogs(parser: argparse.ArgumentParser) -> None:
    """Give the parser and each of its subcommands an epilog, kept as written (line breaks and columns)."""
    parser.epilog = main_epilog()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for name, subparser in subcommands(parser).items():
        if subparser.epilog is None:
            subparser.epilog = command_epilog(name)
            subparser.formatter_class = argparse.RawDescriptionHelpFormatter
