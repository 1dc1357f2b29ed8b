"""Help epilogs (settings, exit codes, signals), `ges-retention completion bash|zsh|fish`, and the man page: all
generated from the argparse parser, so a new subcommand or setting appears in each without an edit."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ges_retention.cli import _build_parser, main
from ges_retention.cli_help import EXIT_CODES, SIGNALS, setting_variables, subcommands
from ges_retention.completion import SHELLS, script
from ges_retention.manpage import render
from ges_retention.settings import Settings


def _commands() -> list[str]:
    names = list(subcommands(_build_parser()))
    assert {"validate", "plan", "run", "daemon", "schema", "completion"} <= set(names)
    return names


def _completion(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell]) == 0
    out, err = capsys.readouterr()
    assert not err
    return out


# --- help epilogs ----------------------------------------------------------------------------------------------------


def test_main_help_lists_every_setting_exit_code_and_signal(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    variables = [variable for variable, _ in setting_variables()]
    assert len(variables) == len(Settings.model_fields)
    for variable in [*variables, "GES_RETENTION_CONCURRENCY", "HUAWEICLOUD_SDK_AK"]:
        assert variable in out
    for code in EXIT_CODES:
        assert f"\n  {code} " in out
    for signals in SIGNALS:
        assert signals in out
    # A secret's value never shows; its default is not a value either.
    assert "GES_RETENTION_SK" in out and "secret" in out


@pytest.mark.parametrize("command", ["run", "plan", "daemon", "validate", "completion"])
def test_each_command_help_has_its_exit_codes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out
    if command == "run":
        assert "\n  143 " in out and "\n  3 " in out and "SIGTERM" in out
    if command == "daemon":
        assert "SIGHUP" in out and "SIGUSR1" in out
    if command == "validate":
        assert "\n  3 " not in out


# --- completion ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_script_mentions_every_subcommand(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _completion(shell, capsys)
    for command in _commands():
        assert command in text, f"{shell}: {command} missing"
    assert "from-file" in text and "dry-run" in text  # fish writes long options as `-l from-file`


def test_a_new_subcommand_completes_without_an_edit() -> None:
    parser = _build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            added = action.add_parser("frobnicate", help="a subcommand added later")
            added.add_argument("--level", choices=("low", "high"))
    for shell in SHELLS:
        text = script(parser, shell)
        assert "frobnicate" in text and "level" in text and "high" in text, shell


def test_completion_of_an_unknown_shell_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "powershell"]) == 2  # a usage error: one line on stderr, no SystemExit
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("shell", SHELLS)
def test_the_shell_accepts_the_script(shell: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    binary = shutil.which(shell)
    if binary is None:
        pytest.skip(f"{shell} is not installed (.ci/run installs zsh and fish with apt-get)")
    path = tmp_path / f"completion.{shell}"
    path.write_text(_completion(shell, capsys), encoding="utf-8")
    result = subprocess.run([binary, "-n", str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr


def _bash_complete(path: Path, words: list[str]) -> list[str]:
    bash = shutil.which("bash")
    assert bash is not None
    quoted = " ".join(f"'{w}'" for w in words)
    program = (
        f"source {path}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _ges_retention; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run([bash, "-c", program], capture_output=True, text=True, timeout=30, check=True)
    return [line for line in result.stdout.splitlines() if line]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_options_and_choices(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "completion.bash"
    path.write_text(_completion("bash", capsys), encoding="utf-8")
    assert _bash_complete(path, ["ges-retention", "pl"]) == ["plan"]
    assert sorted(_bash_complete(path, ["ges-retention", "plan", "--format", ""])) == ["json", "table"]
    assert _bash_complete(path, ["ges-retention", "run", "--dr"]) == ["--dry-run"]
    assert sorted(_bash_complete(path, ["ges-retention", "completion", ""])) == sorted(SHELLS)
    assert _bash_complete(path, ["ges-retention", "--debug", "valid"]) == ["validate"]
    (tmp_path / "policy.yaml").write_text("", encoding="utf-8")
    assert _bash_complete(path, ["ges-retention", "validate", str(tmp_path / "pol")]) == [str(tmp_path / "policy.yaml")]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed (.ci/run installs it with apt-get)")
def test_fish_completes_commands_and_choices(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "completion.fish"
    path.write_text(_completion("fish", capsys), encoding="utf-8")

    def complete(line: str) -> list[str]:
        program = f"source {path}; complete -C '{line}'"
        result = subprocess.run(["fish", "-c", program], capture_output=True, text=True, timeout=30, check=True)
        return sorted(entry.split("\t")[0] for entry in result.stdout.splitlines())

    assert complete("ges-retention pl") == ["plan"]
    assert complete("ges-retention plan --format ") == ["json", "table"]
    assert complete("ges-retention completion ") == sorted(SHELLS)


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (.ci/run installs it with apt-get)")
def test_zsh_registers_the_completion_function(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "completion.zsh"
    path.write_text(_completion("zsh", capsys), encoding="utf-8")
    program = (
        f"autoload -U compinit; compinit -u -d {tmp_path}/zcompdump; source {path}; print -r -- $_comps[ges-retention]"
    )
    result = subprocess.run(
        ["zsh", "-f", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == "_ges_retention", result.stderr


# --- man page --------------------------------------------------------------------------------------------------------


def test_the_man_page_documents_every_command_setting_and_exit_code() -> None:
    page = render(_build_parser())
    assert page.startswith(".TH GES\\-RETENTION 1 ")
    assert page == render(_build_parser()), "the same parser gives the same page"
    for command in _commands():
        assert f'.SS "{command}"' in page
    for variable, _ in setting_variables():
        escaped = variable.replace("-", "\\-")
        assert f"\\fB{escaped}\\fR" in page
    for code in EXIT_CODES:
        assert f"\\fB{code}\\fR" in page
    assert "\\fB\\-\\-from\\-file\\fR \\fIBACKUPS.json\\fR" in page
    assert not [line for line in page.splitlines() if line.startswith("'")]


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_groff_formats_the_man_page_without_warnings(tmp_path: Path) -> None:
    path = tmp_path / "ges-retention.1"
    path.write_text(render(_build_parser()), encoding="utf-8")
    result = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stderr, result.stderr


def test_make_man_writes_the_page_from_the_module(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ges_retention.manpage"], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == render(_build_parser())
