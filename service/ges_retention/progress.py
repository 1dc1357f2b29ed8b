"""`run_progress` on long runs: a run-events subscriber that reports the pace of deletions.

While deleting, at the first deletion event `interval_s` (10 s) or more after the previous line (or after the first
deletion started), it logs `run_progress` with `done` (deletions ended, whatever their outcome), `planned` (deletions
queued in this run), `per_s` and `eta_s` (None until a pace is known). Driven by the run's own events, not a timer:
it cannot outlive its run, and a fake clock moves it in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from ges_retention.events import Deletion, NullRunEvents
from ges_retention.ges.loop_clock import loop_clock
from ges_retention.retention_decisions import Decision
from ges_retention.summary import PolicyResult

__all__ = ["PROGRESS_INTERVAL_S", "Progress"]

PROGRESS_INTERVAL_S = 10.0

log = structlog.get_logger("ges_retention.runner")


def _log(**fields: Any) -> None:
    log.info("run_progress", **fields)


class Progress(NullRunEvents):
    __slots__ = ("_clock", "_emit", "_last", "_started", "done", "interval_s", "planned")

    def __init__(
        self,
        *,
        interval_s: float = PROGRESS_INTERVAL_S,
        clock: Callable[[], float] | None = None,
        emit: Callable[..., None] = _log,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock if clock is not None else loop_clock()  # made per run, inside its loop
        self._emit = emit
        self.planned = 0
        self.done = 0
        self._started: float | None = None
        self._last = 0.0

    def deletion_pending(self, result: PolicyResult, decision: Decision) -> None:
        self.planned += 1

    def deletion_started(self, result: PolicyResult, decision: Decision) -> None:
        if self._started is None:
            self._started = self._last = self._clock()
        self._maybe_report()

    def deletion_finished(self, result: PolicyResult, decision: Decision, deletion: Deletion) -> None:
        self.done += 1
        self._maybe_report()

    def deletion_held(self, result: PolicyResult, decision: Decision, reason: str) -> None:
        self.done += 1  # kept by a hold: not waiting any more
        self._maybe_report()

    def _maybe_report(self) -> None:
        if self._started is None:
            return
        now = self._clock()
        if now - self._last < self.interval_s:
            return
        self._last = now
        elapsed_s = now - self._started
        per_s = self.done / elapsed_s if elapsed_s > 0 else 0.0
        eta_s = round((self.planned - self.done) / per_s, 1) if per_s > 0 else None
        self._emit(done=self.done, planned=self.planned, per_s=round(per_s, 2), eta_s=eta_s)
