"""Reliability suite: chaos, crash consistency, fuzzing and security, each on the emulator (or a recording server)
on 127.0.0.1. `make test` runs the fast part (`-m "not slow"`), `make soak` the long one (`-m slow`).

The figures (faults injected, kept backups deleted, runs killed, bad inputs tried, ...) are printed at the end of the
session, in a "reliability figures" section.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The end-to-end helpers (CLI subprocesses, waiting on conditions) are reused from tests/e2e.
_E2E = str(Path(__file__).resolve().parent.parent / "e2e")
if _E2E not in sys.path:
    sys.path.insert(0, _E2E)

from reliability_helpers import FIGURES, NOTES  # noqa: E402


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES and not NOTES:
        return
    terminalreporter.section("reliability figures")
    lines = {**{name: str(count) for name, count in FIGURES.items()}, **NOTES}
    for name in sorted(lines):
        terminalreporter.write_line(f"{name}: {lines[name]}")
