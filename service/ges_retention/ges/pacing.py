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

`AdaptivePacer` (`GES_RETENTION_RATE_LIMIT=auto`) is the same loop over `rate_control.AdaptiveRate`, which finds the
limit from the 429s alone; it starts from the rate learned by an earlier run (`RateMemory`, the journal in the
service) and hands back what it learns. Both kinds tell the observer their rate (the gauge
`ges_retention_rate_limit{endpoint,project_id}`).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ges_retention.ges.observe import NullObserver, RequestObserver
from ges_retention.ges.rate_control import AdaptiveRate

__all__ = [
    "AdaptivePacer",
    "AutoRate",
    "Backoff",
    "Pacer",
    "Pacing",
    "RateMemory",
    "RatePacer",
    "SleepFn",
    "TimeFn",
]

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
        "_on_rate",
        "_paused_until",
        "_rate",
        "_recovery_s",
        "_reported_rate",
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
        on_rate: Callable[[float], None] | None = None,
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
        self._on_rate = on_rate
        self._reported_rate = -1.0
        if self.base_rate > 0:
            self._set_rate(self.base_rate)
        elif on_rate is not None:
            on_rate(0.0)  # no limit

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
        # The gauge follows changes of 1% or more: recovery moves the rate on every request.
        if self._on_rate is not None and abs(rate - self._reported_rate) >= 0.01 * self._reported_rate:
            self._reported_rate = rate
            self._on_rate(rate)

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


class Pacer(Protocol):
    """What the transport needs of a pacer: a slot per attempt, and the 429s answered to it."""

    @property
    def rate(self) -> float: ...

    async def acquire(self) -> int:
        """Wait for this request's slot. Returns the generation to hand back with `throttled()`."""
        ...

    def throttled(self, generation: int, retry_after_s: float | None = None) -> bool:
        """A request sent in `generation` got a 429. Returns True if that slowed the pacer down."""
        ...


class RateMemory(Protocol):
    """Where learned rates are kept between runs (the service's journal). Neither method may raise."""

    async def learned_rate(self, endpoint: str, project_id: str) -> float | None:
        """The rate learned by an earlier run, or None."""
        ...

    def on_learned(self, endpoint: str, project_id: str, rate_per_s: float) -> None:
        """A new learned rate: keep it (quickly; called on the event loop, inline with a request)."""
        ...


@dataclass(frozen=True, slots=True)
class AutoRate:
    """`GES_RETENTION_RATE_LIMIT=auto`: the start without a learned rate, the ceiling, and where rates are kept."""

    start_per_s: float = 10.0
    max_per_s: float = 200.0
    memory: RateMemory | None = None

    def __post_init__(self) -> None:
        if not (0 < self.start_per_s <= self.max_per_s and math.isfinite(self.max_per_s)):
            raise ValueError(
                f"need 0 < start_per_s <= max_per_s < inf, got start_per_s={self.start_per_s!r}, "
                f"max_per_s={self.max_per_s!r}"
            )


class AdaptivePacer:
    """The async loop over an `AdaptiveRate`: FIFO waiters, only the head sleeps, a slot is taken after its wait.

    The learned rate is read from memory at the first `acquire()` (the pacer is built outside the loop), under the
    lock, so no request leaves before the start rate is known.
    """

    __slots__ = ("_control", "_lock", "_memory", "_sleep", "_started", "_time", "endpoint", "project_id")

    def __init__(
        self,
        auto: AutoRate,
        endpoint: str,
        project_id: str,
        *,
        observer: RequestObserver | None = None,
        time_fn: TimeFn = time.monotonic,
        sleep_fn: SleepFn = asyncio.sleep,
    ) -> None:
        self.endpoint = endpoint
        self.project_id = project_id
        self._memory = auto.memory
        self._time = time_fn
        self._sleep = sleep_fn
        self._lock = asyncio.Lock()
        self._started = False
        seen = observer if observer is not None else NullObserver()
        memory = auto.memory
        self._control = AdaptiveRate(
            start_per_s=auto.start_per_s,
            max_per_s=auto.max_per_s,
            on_rate=lambda rate: seen.on_rate_limit(endpoint, project_id, rate),
            on_learned=None if memory is None else lambda rate: memory.on_learned(endpoint, project_id, rate),
        )

    @property
    def rate(self) -> float:
        return self._control.rate

    @property
    def control(self) -> AdaptiveRate:
        return self._control

    def __repr__(self) -> str:
        return f"AdaptivePacer(endpoint={self.endpoint!r}, project_id={self.project_id!r}, {self._control!r})"

    async def _start(self) -> None:
        learned: float | None = None
        if self._memory is not None:
            try:
                learned = await self._memory.learned_rate(self.endpoint, self.project_id)
            except Exception:
                learned = None
        self._control.start(self._time(), learned)
        self._started = True

    async def acquire(self) -> int:
        async with self._lock:
            if not self._started:
                await self._start()
            control = self._control
            while True:
                now = self._time()
                start = control.ready_at(now)
                if start <= now:
                    return control.take(now)
                control.waited(now, start)
                # Re-checked after the sleep: a 429 may have cut the rate or paused the pacer meanwhile.
                await self._sleep(start - now)

    def throttled(self, generation: int, retry_after_s: float | None = None) -> bool:
        if not self._started:
            return False  # nothing was sent through this pacer yet
        return self._control.throttled(generation, self._time(), retry_after_s)


class Pacing:
    """The process-wide limits: one semaphore for requests in flight, one pacer per (endpoint, project).

    Pacers are fixed-rate (`RatePacer`) unless `auto` is given (`AdaptivePacer`).
    """

    __slots__ = ("_observer", "_pacers", "_sleep", "_time", "auto", "concurrency", "in_flight", "rate_per_s")

    def __init__(
        self,
        concurrency: int,
        rate_per_s: float,
        *,
        auto: AutoRate | None = None,
        observer: RequestObserver | None = None,
        time_fn: TimeFn = time.monotonic,
        sleep_fn: SleepFn = asyncio.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
        self.concurrency = concurrency
        self.rate_per_s = rate_per_s
        self.auto = auto
        self.in_flight = asyncio.Semaphore(concurrency)
        self._observer: RequestObserver = observer if observer is not None else NullObserver()
        self._time = time_fn
        self._sleep = sleep_fn
        self._pacers: dict[tuple[str, str], Pacer] = {}

    def pacer(self, endpoint: str, project_id: str) -> Pacer:
        key = (endpoint, project_id)
        pacer = self._pacers.get(key)
        if pacer is None:
            pacer = self._pacers[key] = self._new_pacer(endpoint, project_id)
        return pacer

    def _new_pacer(self, endpoint: str, project_id: str) -> Pacer:
        observer = self._observer
        if self.auto is not None:
            return AdaptivePacer(
                self.auto, endpoint, project_id, observer=observer, time_fn=self._time, sleep_fn=self._sleep
            )
        return RatePacer(
            self.rate_per_s,
            time_fn=self._time,
            sleep_fn=self._sleep,
            on_rate=lambda rate: observer.on_rate_limit(endpoint, project_id, rate),
        )

    def __repr__(self) -> str:
        rate = "auto" if self.auto is not None else self.rate_per_s
        return f"Pacing(concurrency={self.concurrency}, rate_per_s={rate}, pacers={len(self._pacers)})"


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
