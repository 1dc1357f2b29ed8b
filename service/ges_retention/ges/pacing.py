"""How fast and how many: a request pacer per (endpoint, project), the global in-flight cap, and retry backoff.

`RatePacer` is a GCRA (generic cell rate algorithm, a leaky bucket kept as one "theoretical arrival time"):
requests leave it spaced by `1/rate`, with a tolerance of at most `burst_s` (50 ms) so that a small burst absorbs
the event loop's wake-up lateness without ever letting a 1-second window hold more than `rate * 1.1` requests. (A
bucket of ~1/10 s would fill the gateway's 10% budget exactly; half of it leaves room for network jitter.)

Only the head of the queue sleeps: waiters queue on a FIFO lock, and a slot is taken only once its wait is over. So a
task cancelled while waiting takes nothing with it and leaves no gap or debt behind.

On a 429 the pacer halves its rate (once per "generation": answers to requests sent before the last slow-down do not
count again, or one burst of 429s would floor it), pauses for the server's `Retry-After` if it gave one, and then
recovers linearly towards the configured rate: quickly up to 90% of the rate that was throttled, slowly beyond it. A
rate set above what the account is allowed thus settles just under the real limit instead of hammering the gateway.

Rate 0 means no limit: `acquire()` returns at once, without a clock read, a lock or a sleep.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable

__all__ = ["Backoff", "Pacing", "RatePacer", "SleepFn", "TimeFn"]

TimeFn = Callable[[], float]
SleepFn = Callable[[float], Awaitable[None]]

# The gateway's budget: no 1-second window may hold more than this times the rate.
_WINDOW_BUDGET = 1.1


class RatePacer:
    """Spaces requests to `rate_per_s` with small bursts; slows down on 429 and recovers gradually."""

    __slots__ = (
        "_ceiling",
        "_generation",
        "_interval",
        "_last_change",
        "_lock",
        "_min_rate",
        "_paused_until",
        "_rate",
        "_recovery_s",
        "_sleep",
        "_tat",
        "_time",
        "_tolerance",
        "base_rate",
        "burst_s",
    )

    def __init__(
        self,
        rate_per_s: float,
        *,
        burst_s: float = 0.05,
        recovery_s: float = 30.0,
        min_rate_per_s: float | None = None,
        time_fn: TimeFn = time.monotonic,
        sleep_fn: SleepFn = asyncio.sleep,
    ) -> None:
        if not rate_per_s >= 0 or math.isinf(rate_per_s):
            raise ValueError(f"rate_per_s must be a finite number >= 0, got {rate_per_s!r}")
        if burst_s < 0 or recovery_s <= 0:
            raise ValueError("burst_s must be >= 0 and recovery_s > 0")
        self.base_rate = float(rate_per_s)
        self.burst_s = burst_s
        self._recovery_s = recovery_s
        # Halving never goes below this: a misconfigured rate must converge, not stall the run.
        self._min_rate = min_rate_per_s if min_rate_per_s is not None else self.base_rate / 32
        self._time = time_fn
        self._sleep = sleep_fn
        self._lock = asyncio.Lock()
        self._tat = -math.inf  # theoretical arrival time of the next request
        self._paused_until = -math.inf
        self._generation = 0
        self._ceiling = self.base_rate
        self._last_change = 0.0
        self._rate = 0.0
        self._interval = 0.0
        self._tolerance = 0.0
        if self.base_rate > 0:
            self._set_rate(self.base_rate)

    @property
    def rate(self) -> float:
        """The rate in force now (lower than `base_rate` after a 429, until it has recovered)."""
        return self._rate

    @property
    def generation(self) -> int:
        return self._generation

    def __repr__(self) -> str:
        return f"RatePacer(base_rate={self.base_rate!r}, rate={self._rate:.3f}, generation={self._generation})"

    def _set_rate(self, rate: float) -> None:
        self._rate = rate
        self._interval = 1.0 / rate
        # GCRA lets ceil((1 + tolerance) * rate) requests into a 1-second window: keep that within the budget.
        budget = math.floor(rate * _WINDOW_BUDGET + 1e-9)
        self._tolerance = max(0.0, min(self.burst_s, budget / rate - 1.0))

    def _recover(self, now: float) -> None:
        elapsed = now - self._last_change
        if elapsed <= 0:
            return
        # Full speed: from 0 to the configured rate in `recovery_s`; ten times slower near the rate that got a 429.
        step = self.base_rate / self._recovery_s
        knee = 0.9 * self._ceiling
        rate = self._rate
        if rate < knee:
            rate = min(knee, rate + step * elapsed)
            elapsed = 0.0 if rate < knee else elapsed - (rate - self._rate) / step
        if elapsed > 0:
            rate += step / 10 * elapsed
        self._last_change = now
        self._set_rate(min(self.base_rate, rate))

    async def acquire(self) -> int:
        """Wait for this request's slot. Returns the generation to hand back with `throttled()`."""
        if self.base_rate == 0:
            return 0
        async with self._lock:
            while True:
                now = self._time()
                if self._rate < self.base_rate:
                    self._recover(now)
                start = max(self._tat - self._tolerance, self._paused_until)
                if start <= now:
                    break
                # Re-checked after the sleep: a 429 may have slowed the rate or paused the pacer meanwhile.
                await self._sleep(start - now)
            self._tat = max(self._tat, now) + self._interval
            return self._generation

    def throttled(self, generation: int, retry_after_s: float | None = None) -> bool:
        """A request sent in `generation` got a 429. Returns True if that slowed the pacer down."""
        if self.base_rate == 0:
            return False
        now = self._time()
        if retry_after_s is not None and retry_after_s > 0:
            self._paused_until = max(self._paused_until, now + retry_after_s)
        if generation != self._generation:
            return False
        if self._rate < self.base_rate:
            self._recover(now)
        self._ceiling = self._rate
        self._generation += 1
        self._last_change = now
        self._set_rate(max(self._min_rate, self._rate / 2))
        return True


class Pacing:
    """The process-wide limits: one semaphore for requests in flight, one pacer per (endpoint, project)."""

    __slots__ = ("_pacers", "_sleep", "_time", "concurrency", "in_flight", "rate_per_s")

    def __init__(
        self,
        concurrency: int,
        rate_per_s: float,
        *,
        time_fn: TimeFn = time.monotonic,
        sleep_fn: SleepFn = asyncio.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
        self.concurrency = concurrency
        self.rate_per_s = rate_per_s
        self.in_flight = asyncio.Semaphore(concurrency)
        self._time = time_fn
        self._sleep = sleep_fn
        self._pacers: dict[tuple[str, str], RatePacer] = {}

    def pacer(self, endpoint: str, project_id: str) -> RatePacer:
        key = (endpoint, project_id)
        pacer = self._pacers.get(key)
        if pacer is None:
            pacer = RatePacer(self.rate_per_s, time_fn=self._time, sleep_fn=self._sleep)
            self._pacers[key] = pacer
        return pacer

    def __repr__(self) -> str:
        return f"Pacing(concurrency={self.concurrency}, rate_per_s={self.rate_per_s}, pacers={len(self._pacers)})"


class Backoff:
    """Exponential backoff with full jitter, capped, honouring a server's `Retry-After`.

    Wait before retry n (n = 1 after the first failure): uniform(0, min(cap, base * 2**(n-1))). With a `Retry-After`
    of r seconds, at least min(r, cap), plus up to 20% of it so that the throttled requests do not all come back in
    the same instant. A `Retry-After` above the cap is cut to the cap: the operator's cap wins, and the pacer's pause
    keeps the other requests of that project back meanwhile.
    """

    __slots__ = ("_rng", "base_s", "cap_s")

    def __init__(self, *, base_s: float = 0.2, cap_s: float = 30.0, rng: random.Random | None = None) -> None:
        if base_s <= 0 or cap_s < 0:
            raise ValueError("base_s must be > 0 and cap_s >= 0")
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng if rng is not None else random.Random()

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        exponent = min(max(attempt, 1) - 1, 62)  # 2**62 * base is past any cap; avoids float overflow
        ceiling = min(self.cap_s, self.base_s * 2.0**exponent)
        wait = self._rng.uniform(0.0, ceiling)
        if retry_after_s is not None:
            floor = min(max(retry_after_s, 0.0), self.cap_s)
            spread = min(0.2 * floor, self.cap_s - floor)
            wait = max(wait, floor + self._rng.uniform(0.0, spread))
        return wait

    def __repr__(self) -> str:
        return f"Backoff(base_s={self.base_s!r}, cap_s={self.cap_s!r})"
