"""Reliability suite: chaos, crash consistency, fuzzing and security, each on the emulator (or a recording server)
on 127.0.0.1. `make test` runs the fast part (`-m "not slow"`), `make soak` the long one (`-m slow`).

The figures (faults injected, kept backups deleted, runs killed, bad inputs tried, ...) are printed at the end of the
session, in a "reliability figures" section.
"""

from __future__ import annotations

import pytest
from reliability_helpers import FIGURES, NOTES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES and not NOTES:
        return
    terminalreporter.section("reliability figures")
    lines = {**{name: str(count) for name, count in FIGURES.items()}, **NOTES}
    for name in sorted(lines):
        terminalreporter.write_line(f"{name}: {lines[name]}")
