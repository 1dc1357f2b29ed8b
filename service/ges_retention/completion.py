"""`ges-retention completion bash|zsh|fish`: shell completion scripts generated from the argparse parser.

Generated at run time from the same parser that parses the command line, so a new subcommand or option completes
without an edit here. Options with `choices` complete their values, options and positionals whose name says file
(`policy_file`, `--from-file`, `--ca-bundle`...) complete file names.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

from ges_retention.cli_help import expanded_help, subcommands

__all__ = ["SHELLS", "add_parser", "script"]

SHELLS = ("bash", "zsh", "fish")
PROG = "ges-retention"
_FUNCTION = "_ges_retention"


@dataclass(frozen=True, slots=True)
class _Option:
    flags: tuple[str, ...]
    help: str
    takes_value: bool
    choices: tuple[str, ...]
    is_file: bool
    repeatable: bool


@dataclass(frozen=True, slots=True)
class _Command:
    name: str
    help: str
    options: tuple[_Option, ...]
    positional_files: bool
    positional_choices: tuple[str, ...]


def add_parser(sub: argparse._SubParsersAction[Any], **kwargs: Any) -> None:
    p = sub.add_parser("completion", help="print a shell completion script", **kwargs)
    p.add_argument("shell", choices=SHELLS)


def _file_like(name: str) -> bool:
    return bool(re.search(r"file|path|bundle|dir", name))


def _options(parser: argparse.ArgumentParser) -> tuple[_Option, ...]:
    options = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        takes_value = action.nargs != 0
        options.append(
            _Option(
                flags=tuple(action.option_strings),
                help=" ".join(expanded_help(action, parser.prog).split()),
                takes_value=takes_value,
                choices=tuple(map(str, action.choices or ())),
                is_file=takes_value and _file_like(action.dest),
                repeatable=isinstance(action, argparse._AppendAction | argparse._CountAction),
            )
        )
    return tuple(options)


def _commands(parser: argparse.ArgumentParser) -> tuple[_Command, ...]:
    helps = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return tuple(
        _Command(
            name=name,
            help=" ".join(helps.get(name, "").split()),
            options=_options(subparser),
            positional_files=any(
                not a.option_strings and _file_like(a.dest) for a in subparser._actions if a.nargs != 0
            ),
            positional_choices=tuple(
                str(choice) for a in subparser._actions if not a.option_strings for choice in a.choices or ()
            ),
        )
        for name, subparser in subcommands(parser).items()
    )


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    commands = _commands(parser)
    global_options = _options(parser)
    if shell == "bash":
        return _bash(commands, global_options)
    if shell == "zsh":
        return _zsh(commands, global_options)
    if shell == "fish":
        return _fish(commands, global_options)
    raise ValueError(f"unknown shell {shell!r}; expected one of {', '.join(SHELLS)}")


# --- bash ------------------------------------------------------------------------------------------------------------


def _bash_value_cases(scope: str, options: tuple[_Option, ...]) -> list[str]:
    cases = []
    for option in options:
        if not option.takes_value:
            continue
        pattern = "|".join(f"{scope}:{flag}" for flag in option.flags)
        if option.choices:
            action = f'COMPREPLY=($(compgen -W "{" ".join(option.choices)}" -- "$cur")); return 0'
        elif option.is_file:
            action = 'COMPREPLY=($(compgen -f -- "$cur")); return 0'
        else:
            action = "return 0"  # a free value: nothing to propose
        cases.append(f"        {pattern}) {action} ;;")
    return cases


def _bash(commands: tuple[_Command, ...], global_options: tuple[_Option, ...]) -> str:
    names = " ".join(c.name for c in commands)
    global_flags = " ".join(f for o in global_options for f in o.flags)
    value_cases = _bash_value_cases("", global_options)
    option_cases = []
    word_cases = []
    for command in commands:
        value_cases += _bash_value_cases(command.name, command.options)
        flags = " ".join(f for o in command.options for f in o.flags)
        option_cases.append(f'        {command.name}) opts="{flags}" ;;')
        if command.positional_choices:
            words = " ".join(command.positional_choices)
            word_cases.append(f'            {command.name}) COMPREPLY=($(compgen -W "{words}" -- "$cur")) ;;')
        elif command.positional_files:
            word_cases.append(f'            {command.name}) COMPREPLY=($(compgen -f -- "$cur")) ;;')
    lines = [
        f"# bash completion for {PROG}; generated by `{PROG} completion bash`.",
        f"# Load it with: source <({PROG} completion bash)",
        f"# (or save it as ~/.local/share/bash-completion/completions/{PROG})",
        f"{_FUNCTION}() {{",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" cmd="" opts="" i',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        case "${COMP_WORDS[i]}" in',
        f'            {"|".join(c.name for c in commands)}) cmd="${{COMP_WORDS[i]}}"; break ;;',
        "        esac",
        "    done",
        '    case "$cmd:$prev" in',
        *value_cases,
        "    esac",
        '    if [[ -z "$cmd" ]]; then',
        f'        COMPREPLY=($(compgen -W "{names} {global_flags}" -- "$cur"))',
        "        return 0",
        "    fi",
        '    case "$cmd" in',
        *option_cases,
        "    esac",
        "    local flag",  # the global flags that the command does not repeat
        f"    for flag in {global_flags}; do",
        '        [[ " $opts " == *" $flag "* ]] || opts="$opts $flag"',
        "    done",
        '    if [[ "$cur" == -* ]]; then',
        '        COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
        "    else",
        '        case "$cmd" in',
        *word_cases,
        "        esac",
        "    fi",
        "    return 0",
        "}",
        f"complete -o filenames -o bashdefault -F {_FUNCTION} {PROG}",
    ]
    return "\n".join(lines) + "\n"


# --- zsh -------------------------------------------------------------------------------------------------------------


def _zsh_quote(text: str, *, colons: bool = True) -> str:
    """Text inside a single-quoted _arguments spec: no brackets or colons unescaped, no bare single quote.
    A `_describe` description may hold colons (only the first one separates): `colons=False` keeps them."""
    text = text.replace("[", "(").replace("]", ")")
    if colons:
        text = text.replace(":", r"\:")
    return text.replace("'", "'\\''")


def _zsh_specs(options: tuple[_Option, ...]) -> list[str]:
    specs = []
    for option in options:
        help_text = _zsh_quote(option.help)
        if option.takes_value:
            if option.choices:
                value = f":{_zsh_quote(option.flags[-1].lstrip('-'))}:({' '.join(option.choices)})"
            elif option.is_file:
                value = ":file:_files"
            else:
                value = ":value: "
        else:
            value = ""
        eq = "=" if option.takes_value else ""
        if len(option.flags) > 1:  # zsh brace expansion: one spec per flag, mutually exclusive unless repeatable
            head = "'*'" if option.repeatable else f"'({' '.join(option.flags)})'"
            specs.append(f"{head}{{{','.join(option.flags)}}}'{eq}[{help_text}]{value}'")
        else:
            star = "*" if option.repeatable else ""
            specs.append(f"'{star}{option.flags[0]}{eq}[{help_text}]{value}'")
    return specs


def _zsh(commands: tuple[_Command, ...], global_options: tuple[_Option, ...]) -> str:
    described = [f"        '{c.name}:{_zsh_quote(c.help, colons=False)}'" for c in commands]
    cases = []
    for command in commands:
        specs = _zsh_specs(command.options)
        if command.positional_choices:
            specs.append(f"'1:{command.name}:({' '.join(command.positional_choices)})'")
        elif command.positional_files:
            specs.append("'*:file:_files'")
        cases.append(f"        ({command.name})")
        cases.append(f"            _arguments {' '.join(specs) or ''} && return 0")
        cases.append("            ;;")
    lines = [
        f"#compdef {PROG}",
        f"# zsh completion for {PROG}; generated by `{PROG} completion zsh`.",
        f"# Load it with: source <({PROG} completion zsh)   (compinit first), or save it as _{PROG} in your $fpath.",
        f"{_FUNCTION}() {{",
        "    local curcontext=$curcontext state line",
        "    typeset -A opt_args",
        "    local -a commands",
        "    commands=(",
        *described,
        "    )",
        f"    _arguments -C {' '.join(_zsh_specs(global_options))} '1: :->command' '*:: :->args' && return 0",
        "    case $state in",
        "    (command)",
        f"        _describe -t commands '{PROG} command' commands",
        "        ;;",
        "    (args)",
        "        case $words[1] in",
        *cases,
        "        esac",
        "        ;;",
        "    esac",
        "}",
        'if [[ "${zsh_eval_context[-1]}" == loadautofunc ]]; then',
        f'    {_FUNCTION} "$@"',
        "else",
        f"    compdef {_FUNCTION} {PROG}",
        "fi",
    ]
    return "\n".join(lines) + "\n"


# --- fish ------------------------------------------------------------------------------------------------------------


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_option(condition: str, option: _Option) -> str:
    words = [f"complete -c {PROG} -n {_fish_quote(condition)}"]
    for flag in option.flags:
        words.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
    if option.takes_value:
        if option.choices:
            words.append(f"-x -a {_fish_quote(' '.join(option.choices))}")
        elif option.is_file:
            words.append("-r -F")
        else:
            words.append("-x")
    if option.help:
        words.append(f"-d {_fish_quote(option.help)}")
    return " ".join(words)


def _fish(commands: tuple[_Command, ...], global_options: tuple[_Option, ...]) -> str:
    names = " ".join(c.name for c in commands)
    lines = [
        f"# fish completion for {PROG}; generated by `{PROG} completion fish`.",
        f"# Load it with: {PROG} completion fish | source   (or save it in ~/.config/fish/completions/{PROG}.fish)",
        f"complete -c {PROG} -f",
    ]
    lines += [_fish_option("true", option) for option in global_options]
    for command in commands:
        lines.append(
            f"complete -c {PROG} -n {_fish_quote(f'not __fish_seen_subcommand_from {names}')} -a {command.name}"
            + (f" -d {_fish_quote(command.help)}" if command.help else "")
        )
        seen = f"__fish_seen_subcommand_from {command.name}"
        lines += [_fish_option(seen, option) for option in command.options]
        if command.positional_choices:
            lines.append(
                f"complete -c {PROG} -n {_fish_quote(seen)} -a {_fish_quote(' '.join(command.positional_choices))}"
            )
        elif command.positional_files:
            lines.append(f"complete -c {PROG} -n {_fish_quote(seen)} -F")
    return "\n".join(lines) + "\n"
