"""The README's "Try it against the emulator" block, run as written: each `$ ` line in bash, in order.

A line ending in `&` is started in the background and waited for until it prints its first line (what a reader
sees before typing the next command); `export` lines change the environment of the lines after them; the daemon,
which a reader stops with Ctrl-C, is stopped with SIGINT once it has started. The emulator's port is fixed in the
README, so concurrent runs of this test on one machine take turns through a lock file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from subprocess_env import clean_env

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
HEADING = "## Try it against the emulator"
EXAMPLE_PROJECT = "0a1b2c3d4e5f"


def quickstart_commands() -> list[str]:
    section = README.split(HEADING, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```console\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None, "the quickstart has a console block"
    return [line[2:] for line in block.group(1).splitlines() if line.startswith("$ ")]


COMMANDS = quickstart_commands()


@pytest.fixture
def one_at_a_time() -> Iterator[None]:
    with open(Path(tempfile.gettempdir()) / "ges-retention-readme-quickstart.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _stop(proc: subprocess.Popen[str], sig: int) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    code = proc.wait(timeout=60)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return code


def test_the_quickstart_covers_the_first_hour() -> None:
    words = [shlex.split(c.rstrip("&"))[:2] for c in COMMANDS]
    assert words[0] == ["ges-retention", "emulator"] and COMMANDS[0].endswith("&")
    assert words[1][0] == "export"
    assert [w[1] for w in words[2:]] == ["validate", "plan", "run", "run", "ack", "run", "daemon"]
    assert "--dry-run" in COMMANDS[4] and "--dry-run" not in COMMANDS[5]
    assert [expected_code(c) for c in COMMANDS[2:]] == [0, 3, 3, 3, 0, 0, 0]


def expected_code(command: str) -> int:
    """A line ending in `# exit N...` is expected to exit N (the change gate holds a first run); else 0."""
    found = re.search(r"#\s*exit (\d+)", command.split("$(")[0] if "$(" in command else command)
    return int(found.group(1)) if found else 0


def test_the_emulator_default_project_is_the_examples() -> None:
    from ges_retention.emulator.config import DEFAULT_PROJECT_ID

    assert DEFAULT_PROJECT_ID == EXAMPLE_PROJECT
    assert f"project_id: {EXAMPLE_PROJECT}" in (REPO / "config" / "policy.example.yaml").read_text()


@pytest.mark.timeout(600)
def test_the_quickstart_runs_as_written(one_at_a_time: None) -> None:
    env = clean_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    background: list[subprocess.Popen[str]] = []
    try:
        for command in COMMANDS:
            if command.endswith("&"):
                proc = subprocess.Popen(
                    ["bash", "-c", f"exec {command[:-1].strip()}"],
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                background.append(proc)
                assert proc.stdout is not None
                started = json.loads(proc.stdout.readline() or "{}")
                assert started.get("event") == "emulator_started", f"{command}: port busy? {started}"
                assert started["project_id"] == EXAMPLE_PROJECT
            elif command.startswith("export "):
                for assignment in shlex.split(command)[1:]:
                    name, _, value = assignment.partition("=")
                    env[name] = value
            elif " daemon " in f" {command} ":
                _run_daemon_until_started(command, env)
            else:
                result = subprocess.run(
                    ["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
                )
                expected = expected_code(command)
                assert result.returncode == expected, f"{command}: exit {result.returncode}\n{result.stderr[-2000:]}"
                assert result.stdout.strip(), command
                for line in result.stderr.splitlines():
                    assert list(json.loads(line))[:3] == ["timestamp", "level", "event"], line
    finally:
        for proc in background:
            assert _stop(proc, signal.SIGTERM) == 0


def _run_daemon_until_started(command: str, env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        events = []
        for line in proc.stderr:  # bounded by the daemon's start; a daemon that dies ends the loop
            events.append(json.loads(line)["event"])
            if events[-1] == "daemon_started":
                break
        assert "daemon_started" in events, events
    finally:
        code = _stop(proc, signal.SIGINT)  # Ctrl-C
    assert code == 0


@pytest.mark.parametrize("example", sorted((REPO / "config").glob("*.example.yaml")), ids=lambda p: p.name)
def test_the_commands_in_the_example_files_run(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The example policy's header once told readers to rehearse with a `backups.json` that does not exist.
    from ges_retention.cli import main

    monkeypatch.chdir(REPO)
    for line in example.read_text().splitlines():
        found = re.search(r"^#.*?\bges-retention ((?:validate|plan) .*)$", line)
        if found:
            # A rehearsal on a new state (no baselines) may show a policy held by the change gate: exit 3.
            expected = (0, 3) if found.group(1).startswith("plan ") else (0,)
            code = main(shlex.split(found.group(1)))
            assert code in expected, f"{example.name}: {line}\n{capsys.readouterr().err}"
