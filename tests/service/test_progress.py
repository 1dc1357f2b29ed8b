"""`run_progress`: a subscriber on a clock seam; the test moves the clock."""

from __future__ import annotations

from typing import Any

from ges_retention.events import Deletion
from ges_retention.progress import Progress
from ges_retention.summary import PolicyResult


class Clock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


def make() -> tuple[Progress, Clock, list[dict[str, Any]]]:
    clock = Clock()
    lines: list[dict[str, Any]] = []
    return Progress(clock=clock, emit=lambda **f: lines.append(f)), clock, lines


RESULT = PolicyResult("prod", "p")
DECISION: Any = None  # the subscriber does not look at the decision


def queue(progress: Progress, count: int) -> None:
    for _ in range(count):
        progress.deletion_pending(RESULT, DECISION)


def test_nothing_is_reported_before_the_interval_and_nothing_before_deleting() -> None:
    progress, clock, lines = make()
    queue(progress, 100)
    clock.t += 60  # planning took a minute: no deletion yet, no line
    progress.deletion_started(RESULT, DECISION)
    clock.t += 9.9
    progress.deletion_finished(RESULT, DECISION, Deletion("deleted"))
    assert lines == []


def test_every_ten_seconds_while_deleting_with_pace_and_eta() -> None:
    progress, clock, lines = make()
    queue(progress, 100)
    progress.deletion_started(RESULT, DECISION)
    for _ in range(20):
        clock.t += 0.5
        progress.deletion_finished(RESULT, DECISION, Deletion("deleted"))
    assert lines == [{"done": 20, "planned": 100, "per_s": 2.0, "eta_s": 40.0}]
    clock.t += 4
    progress.deletion_finished(RESULT, DECISION, Deletion("failed"))
    assert len(lines) == 1, "the next line waits for another 10 s"
    clock.t += 6
    progress.deletion_finished(RESULT, DECISION, Deletion("not_started"))
    assert lines[-1] == {"done": 22, "planned": 100, "per_s": 1.1, "eta_s": 70.9}


def test_a_stalled_run_reports_no_eta() -> None:
    progress, clock, lines = make()
    queue(progress, 3)
    progress.deletion_started(RESULT, DECISION)
    clock.t += 30
    progress.deletion_started(RESULT, DECISION)
    assert lines == [{"done": 0, "planned": 3, "per_s": 0.0, "eta_s": None}]
