"""Every command the README shows is exercised here, so the docs cannot rot.

Commands are the `$ ` lines of the README's console blocks. `ges-retention` commands run for real (the API ones
against a `ges-retention emulator` process on 127.0.0.1); `make` targets must exist in the Makefile (running
`make test` from inside the suite would recurse); `pip`/`docker` commands are checked against the files they use
(no container engine here, and reinstalling the package mid-suite would change what is under test).
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from subprocess_env import emulator_env

REPO = Path(__file__).resolve().parents[2]
# The quickstart block runs as written, in order, in test_readme_quickstart.py (it starts an emulator and a daemon).
_QUICKSTART = re.compile(r"## Try it against the emulator\n.*?(?=\n## )", flags=re.DOTALL)
README = _QUICKSTART.sub("", (REPO / "README.md").read_text(), count=1)
PROJECT = "0a1b2c3d4e5f"  # the example policy file's project


def readme_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```console\n(.*?)```", README, flags=re.DOTALL):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\"):  # continuation lines
                    i += 1
                    command = command[:-1] + " " + lines[i].strip()
                commands.append(command.split("  #")[0].strip())
            i += 1
    return commands


COMMANDS = readme_commands()
CLI = [c for c in COMMANDS if c.startswith("ges-retention ")]
MAKE = [c for c in COMMANDS if c.startswith("make ")]
OTHER = [c for c in COMMANDS if c not in CLI and c not in MAKE]


def test_the_readme_shows_the_two_commands() -> None:
    assert "make demo" in MAKE and "make test" in MAKE
    assert len(CLI) >= 8


@pytest.mark.parametrize("command", MAKE)
def test_make_targets_exist(command: str) -> None:
    makefile = (REPO / "Makefile").read_text()
    for target in command.split()[1:]:
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.MULTILINE), target


@pytest.mark.parametrize("command", OTHER)
def test_other_commands_use_files_that_exist(command: str) -> None:
    words = shlex.split(command)
    if words[:2] == ["pip", "install"]:
        assert (REPO / "pyproject.toml").is_file() and words[2] == "."
    elif words[:2] == ["docker", "build"]:
        assert (REPO / words[words.index("-f") + 1]).is_file()
    elif words[:2] == ["docker", "run"]:
        assert "ges-retention:0.1.0" in words
    else:
        pytest.fail(f"a README command this test does not know how to check: {command}")


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    """`ges-retention emulator` as the README shows it, on the example policy's project."""
    with subprocess.Popen(
        [sys.executable, "-m", "ges_retention", "emulator", "--port", "0", "--project-id", PROJECT],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            started = json.loads(proc.stdout.readline())
            assert started["event"] == "emulator_started"
            yield str(started["url"])
        finally:
            proc.terminate()
            assert proc.wait(timeout=20) == 0


@pytest.fixture(scope="module")
def state_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The journal every README command uses (`GES_RETENTION_STATE`): created here, as `run` or `daemon` would."""
    path = tmp_path_factory.mktemp("state") / "state.db"
    asyncio.run(_with_store(path, None))
    return path


async def _with_store(path: Path, hold: str | None) -> None:
    from ges_retention.state import open_store, resolve_state_location

    store = await open_store(resolve_state_location(str(path)), mode="create")
    assert store is not None
    try:
        if hold is not None:
            await store.put_hold(hold, "placed by the README test", by="test")
    finally:
        await store.close()


# Commands about a backup that the README shows after `hold`: each test places the hold itself, so that no test
# depends on another one having run first.
_NEEDS_A_HOLD = ("why", "release")

# Where a README command is expected to exit other than 0, and why.
# The example policies delete more than `change_budget` (10) on a state with no baseline: the change gate holds them
# (exit 3) until acknowledged, and `plan` says so too.
_HELD = {3}
EXPECTED_CODES = {
    "ges-retention run config/policy.example.yaml --max-deletes 20 --format json": {0, 3},  # 3 when > 20 planned
    "ges-retention plan config/policy.example.yaml --from-file config/backups.example.json "
    "--now 2026-11-27T12:00:00Z": _HELD,
    "ges-retention plan config/policy.example.yaml --from-file config/backups.example.json "
    "--now 2026-11-27T12:00:00Z --format json": _HELD,
    "ges-retention run config/policy.example.yaml --policy prod-nightly --dry-run": _HELD,
}


@pytest.mark.parametrize("command", CLI)
def test_cli_commands_run(command: str, emulator_url: str, state_path: Path) -> None:
    words = shlex.split(command)[1:]
    if words[0] in _NEEDS_A_HOLD:
        asyncio.run(_with_store(state_path, words[1]))
    if words[0] == "emulator":
        with subprocess.Popen(
            [sys.executable, "-m", "ges_retention", *words],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as proc:
            try:
                assert proc.stdout is not None
                line = json.loads(proc.stdout.readline())
                assert set(line) == {"event", "url", "project_id", "ak", "sk", "token"}
            finally:
                proc.terminate()
                assert proc.wait(timeout=20) == 0
        return
    env = emulator_env(emulator_url, GES_RETENTION_STATE=str(state_path))
    result = subprocess.run(
        [sys.executable, "-m", "ges_retention", *words],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in EXPECTED_CODES.get(command, {0}), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    if ("--format" in words and words[words.index("--format") + 1] == "json") or words[0] == "schema":
        json.loads(result.stdout)
    if words[0] == "demo":
        assert "Backups before" in result.stdout
