"""Cold start (issue 17): what the CLI imports to build its parser and to answer `--version`.

A one-shot CronJob pays every import on every run. These tests check which modules are loaded (behaviour), never a
duration: the timings are `make bench` (`python -m bench --only cold_start`).
"""

from __future__ import annotations

import json
import subprocess
import sys

from subprocess_env import clean_env

# Heavy at import, and needed by no command's parser: the HTTP stack, the emulator's server, the metrics, the daemon's
# scheduler, the settings (pydantic-settings) and the policy models (pydantic model building).
HEAVY = (
    "aiohttp",
    "ges_retention.emulator.app",
    "prometheus_client",
    "apscheduler",
    "pydantic_settings",
    "ges_retention.settings",
    "ges_retention.policy",
)


def _loaded_after(code: str) -> set[str]:
    """The modules (of HEAVY) loaded in a fresh interpreter after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=clean_env(), timeout=60, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_cli_imports_nothing_heavy() -> None:
    assert _loaded_after("import ges_retention.cli") == set()


def test_building_the_parser_imports_nothing_heavy() -> None:
    assert _loaded_after("import ges_retention.cli as cli\ncli._build_parser()") == set()


def test_version_answers_without_building_anything() -> None:
    code = "import ges_retention.cli as cli\nassert cli.main(['--version']) == 0"
    assert _loaded_after(code) == set()


def test_version_prints_what_argparse_printed() -> None:
    from ges_retention import __version__

    fast = subprocess.run(
        [sys.executable, "-m", "ges_retention", "--version"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    # `--version` after a global flag goes through argparse's own version action: the same line, the same exit code.
    slow = subprocess.run(
        [sys.executable, "-m", "ges_retention", "--debug", "--version"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert (fast.returncode, fast.stdout, fast.stderr) == (0, f"ges-retention {__version__}\n", "")
    assert (slow.returncode, slow.stdout, slow.stderr) == (fast.returncode, fast.stdout, fast.stderr)


def test_the_help_screen_still_lists_the_settings() -> None:
    """The epilogs are written when help is first formatted: the main one and a command's."""
    main_help = subprocess.run(
        [sys.executable, "-m", "ges_retention", "--help"], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    command_help = subprocess.run(
        [sys.executable, "-m", "ges_retention", "validate", "--help"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert main_help.returncode == 0 and "GES_RETENTION_ENDPOINT" in main_help.stdout
    assert "exit codes:" in main_help.stdout
    assert command_help.returncode == 0 and "exit codes:" in command_help.stdout
    assert "settings: see `ges-retention --help`" in command_help.stdout
