"""What a request passes through before its operation: latency, the per-project rate window, holds, and faults.

- Latency: `latency_ms` (+ up to `latency_jitter_ms`) before anything else.
- Rate: at most `rate_limit_per_s` requests per project in any sliding second, else 429 `APIGW.0308`.
- Hold: while an operation is held (control API, or `Holds.hold` in process), its requests wait, authenticated and
  counted, until released one by one (`release(op, count)`) or all at once (`unhold(op)`). Tests make overlaps
  with it instead of latency: hold `delete_backup`, start a run, wait until N deletions are waiting, act, release.
- Faults, drawn per request from `faults[operation]` with the seeded random stream: 500 `GES.0500`, 503 `GES.0503`,
  a dropped connection (before the operation happens), a hang of `hang_s` (then the normal answer). A listing also
  draws `repeat` (`repeats`): it then answers the page at offset 0 whatever offset was asked (a server that repeats
  itself).

Every wait ends when the emulator stops: a held or hung request is then dropped without an answer.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ges_retention.emulator.config import EmulatorConfig
from ges_retention.emulator.errors import ApiError, throttled
from ges_retention.emulator.stats import Stats

__all__ = ["Dropped", "Gates", "HoldState", "Holds"]


class Dropped(Exception):
    """The connection must be closed without an answer."""


@dataclass(slots=True)
class HoldState:
    """One operation's hold: whether new requests wait, how many wait now, how many were let go."""

    holding: bool = False
    waiting: int = 0
    released: int = 0
    permits: int = 0

    def to_json(self) -> dict[str, object]:
        return {"holding": self.holding, "waiting": self.waiting, "released": self.released}


class Holds:
    """The hold gate. All of it runs on the event loop; one `Condition` wakes both the held and their watchers."""

    def __init__(self, stopping: asyncio.Event) -> None:
        self._states: dict[str, HoldState] = {}
        self._changed = asyncio.Condition()
        self._stopping = stopping

    def state(self, operation: str) -> HoldState:
        return self._states.setdefault(operation, HoldState())

    def to_json(self) -> dict[str, dict[str, object]]:
        return {op: state.to_json() for op, state in sorted(self._states.items())}

    async def hold(self, operation: str) -> None:
        """From now on, requests of `operation` wait at the gate."""
        async with self._changed:
            self.state(operation).holding = True
            self._changed.notify_all()

    async def release(self, operation: str, count: int) -> None:
        """Let `count` waiting (or future) requests of `operation` through; the hold stays."""
        async with self._changed:
            self.state(operation).permits += count
            self._changed.notify_all()

    async def unhold(self, operation: str) -> None:
        """Stop holding `operation`: every waiting request goes on."""
        async with self._changed:
            state = self.state(operation)
            state.holding = False
            state.permits = 0
            self._changed.notify_all()

    async def wait_until_waiting(self, operation: str, count: int) -> HoldState:
        """Return once at least `count` requests of `operation` wait at the gate (bound it with a timeout)."""
        async with self._changed:
            state = self.state(operation)
            await self._changed.wait_for(lambda: state.waiting >= count)
            return state

    async def notify_stopping(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def passage(self, operation: str) -> None:
        """The gate: return at once unless `operation` is held; raise `Dropped` if the emulator stops meanwhile."""
        state = self._states.get(operation)
        if state is None or not state.holding:
            return
        async with self._changed:
            state.waiting += 1
            self._changed.notify_all()
            try:
                await self._changed.wait_for(lambda: not state.holding or state.permits > 0 or self._stopping.is_set())
            finally:
                state.waiting -= 1
                self._changed.notify_all()
            if self._stopping.is_set():
                raise Dropped
            if state.holding:
                state.permits -= 1
            state.released += 1


class Gates:
    """The gates of one emulator, reading its (mutable) config on every request."""

    def __init__(
        self,
        config: EmulatorConfig,
        rng: random.Random,
        stats: Stats,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.rng = rng
        self.stats = stats
        self._sleep = sleep  # a seam: unit tests of latency and hangs do not wait for real
        self.windows: dict[str, deque[float]] = {}
        self.stopping = asyncio.Event()
        self.holds = Holds(self.stopping)

    async def latency(self) -> None:
        delay_ms = self.config.latency_ms
        if self.config.latency_jitter_ms > 0:
            delay_ms += self.rng.uniform(0, self.config.latency_jitter_ms)
        if delay_ms > 0:
            await self._sleep(delay_ms / 1000)

    def rate_limit(self, project_id: str) -> None:
        limit = self.config.rate_limit_per_s
        if limit <= 0:
            return
        now = time.monotonic()
        window = self.windows.setdefault(project_id, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= limit:
            raise throttled(limit)
        window.append(now)

    async def fault(self, operation: str) -> None:
        rates = self.config.fault_rates(operation)
        if rates is None or rates.total <= 0:
            return
        draw = self.rng.random()
        for kind, rate in (("error_500", rates.error_500), ("error_503", rates.error_503), ("drop", rates.drop)):
            if draw < rate:
                self.stats.fault(operation, kind)
                _raise_fault(kind)
            draw -= rate
        if draw < rates.hang:
            self.stats.fault(operation, "hang")
            await self._hang()

    def repeats(self, operation: str) -> bool:
        """Whether this page of a listing ignores its offset (the `repeat` fault), drawn by the listing itself."""
        rates = self.config.fault_rates(operation)
        if rates is None or rates.repeat <= 0 or self.rng.random() >= rates.repeat:
            return False
        self.stats.fault(operation, "repeat")
        return True

    def reset(self) -> None:
        """Rate windows start over; holds stay (they are released explicitly)."""
        self.windows.clear()

    async def stop(self) -> None:
        """The emulator stops: every hung or held request is let go without an answer."""
        self.stopping.set()
        await self.holds.notify_stopping()

    async def _hang(self) -> None:
        stopping = asyncio.ensure_future(self.stopping.wait())
        hung = asyncio.ensure_future(self._sleep(self.config.hang_s))
        try:
            await asyncio.wait((stopping, hung), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (stopping, hung):
                waiter.cancel()
        if self.stopping.is_set():
            raise Dropped  # the emulator is stopping: let the hung request go without an answer
        # hung long enough: now the normal answer


def _raise_fault(kind: str) -> None:
    if kind == "error_500":
        raise ApiError(500, "GES.0500", "Internal server error (fault injected by the emulator).")
    if kind == "error_503":
        raise ApiError(503, "GES.0503", "Service unavailable (fault injected by the emulator).")
    raise Dropped
