"""The man page, generated from the argparse parser: `python -m ges_retention.manpage > docs/ges-retention.1`.

`make man` writes it; a test fails when the committed page differs, so a new subcommand, option or setting shows up
in the page as soon as the parser has it. No date in the page: the same parser gives the same bytes.
"""

from __future__ import annotations

import argparse
import sys

from ges_retention import __version__
from ges_retention.cli_help import (
    EXIT_CODES,
    SIGNALS,
    command_exit_codes,
    expanded_help,
    setting_variables,
    subcommands,
)

__all__ = ["render"]

_USAGE_WIDTH = 100


def _escape(text: str) -> str:
    """Roff text: backslashes and hyphens escaped, no line starting with a control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(f"\\&{line}" if line.startswith((".", "'")) else line for line in text.splitlines())


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(prog=parser.prog, width=_USAGE_WIDTH)  # not the terminal's width
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip()


def _invocation(action: argparse.Action) -> str:
    flags = ", ".join(f"\\fB{_escape(flag)}\\fR" for flag in action.option_strings)
    if action.nargs == 0:
        return flags
    if action.metavar is not None:
        metavar = str(action.metavar)
    elif action.choices is not None:
        metavar = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        metavar = action.dest.upper()
    return f"{flags} \\fI{_escape(metavar)}\\fR"


def _options(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            lines += [".TP", _invocation(action)]
        else:
            choices = f" ({', '.join(map(str, action.choices))})" if action.choices else ""
            lines += [".TP", f"\\fI{_escape(str(action.metavar or action.dest).upper())}\\fR{_escape(choices)}"]
        lines.append(_escape(expanded_help(action, parser.prog)) or "\\&")
    return lines


def _summary(parser: argparse.ArgumentParser) -> str:
    description = (parser.description or "").rstrip(".")
    return description[:1].lower() + description[1:]


def render(parser: argparse.ArgumentParser) -> str:
    commands = subcommands(parser)
    helps: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    lines = [
        f'.TH GES\\-RETENTION 1 "" "ges\\-retention {__version__}" "User Commands"',
        ".SH NAME",
        f"ges\\-retention \\- {_escape(_summary(parser))}",
        ".SH SYNOPSIS",
        ".B ges\\-retention",
        "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGUMENTS\\fR]",
        ".SH DESCRIPTION",
        _escape(
            "Reads retention policies from a YAML file, lists Huawei Cloud GES graph backups, decides which have "
            "expired and why, and deletes them with concurrent, rate-limited, retried calls. stdout carries only a "
            "command's result; log events go to stderr."
        ),
        ".SH GLOBAL OPTIONS",
        *_options(parser),
        ".SH COMMANDS",
    ]
    for name, subparser in commands.items():
        lines += [
            f'.SS "{_escape(name)}"',
            _escape(helps.get(name, "")),
            ".PP",
            ".nf",
            _escape(_usage(subparser)),
            ".fi",
        ]
        lines += _options(subparser)
        codes = ", ".join(map(str, command_exit_codes(name)))
        lines += [".PP", f"Exit codes: {codes}."]
    lines += [".SH ENVIRONMENT", _escape("Settings are read from the environment, then ./.env and /run/secrets.")]
    for variable, default in setting_variables():
        lines += [".TP", f"\\fB{_escape(variable)}\\fR", _escape(default)]
    lines.append(".SH EXIT STATUS")
    for code, text in EXIT_CODES.items():
        lines += [".TP", f"\\fB{code}\\fR", _escape(text)]
    lines += [".PP", _escape("When several apply: 2 > 130/143 > 1 > 3 > 0."), ".SH SIGNALS"]
    for signals, text in SIGNALS.items():
        lines += [".TP", f"\\fB{_escape(signals)}\\fR", _escape(text)]
    lines += [
        ".SH SEE ALSO",
        _escape("README.md of ges-retention: the policy file, retention semantics, metrics, operations runbook."),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    from ges_retention.cli import _build_parser

    sys.stdout.write(render(_build_parser()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
