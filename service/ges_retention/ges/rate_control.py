"""The adaptive rate (`GES_RETENTION_RATE_LIMIT=auto`): pure time logic, no I/O, no event loop.

GES does not publish its API limits; the only signal is a 429 (`APIGW.0308`). `AdaptiveRate` finds the limit and
stays just under it. The async loop that spaces requests with it is `pacing.AdaptivePacer`; every method here takes
`now` (seconds on a monotonic clock), so a test moves time by hand.

The control law, in phases measured in *saturated* seconds (seconds during which requests waited for the pacer; an
idle or demand-limited pacer has learned nothing, so its rate does not climb past what is used):

- **No limit known** (first start, no learned rate): slow start, the rate doubles every second.
- **On a 429** (at most one cut per 2 s, and only for requests sent since the last cut): the ceiling becomes the rate
  the server actually accepted over the last second (sends minus 429s), the best estimate of its window; the rate is
  cut to 0.9 of it (0.75 if the previous cut was less than 10 s ago: the estimate was too high). Any `Retry-After`
  pauses the pacer, and the phase clock starts after the pause.
- **Approach**: exponentially (time constant 1 s) to 0.97 of the ceiling, the plateau.
- **Hold** the plateau until 12 s after the cut, long enough for a 10 s span that teaches the learned rate.
- **Probe** above the plateau, gently first (quadratic in time: +3% of the ceiling after 5 s, +10% after 9 s), so
  touching the limit costs a few 429s, not a burst of them. 10% above the ceiling without a 429 means the limit rose:
  the ceiling is forgotten and slow start resumes.

Why not additive-increase/halve: its sawtooth averages about 0.75 of the limit. Cutting to 0.9 of a measured ceiling
and probing gently near it averages about 0.95, with a few 429s per cycle of about 17 s.

The **learned rate** is the highest rate held for 10 s without a 429 while saturated: the accepted requests over
those 10 s / 10. It is what the next start uses (0.8 of it, and it is the first ceiling). A 429 below the learned rate
makes it stale: the next held span replaces it, higher or lower.

Spacing is a GCRA like `pacing.RatePacer`'s: no 1-second window holds more than `rate * 1.1` requests.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["AdaptiveRate", "RateCallback"]

RateCallback = Callable[[float], None]

_DOUBLING_S = 1.0  # slow start: from 10/s to 400/s in about 5 s
_CUT_INTERVAL_S = 2.0  # the contract: at most one cut per 2 s (the 429s of one overshoot are one signal)
_CUT = 0.9
_CUT_AGAIN = 0.75  # a second cut soon after the first: the ceiling was overestimated, back off harder
_CUT_AGAIN_WITHIN_S = 10.0
_PLATEAU = 0.97  # just under the ceiling: bursts of loop lateness must not fill the server's window
_APPROACH_TAU_S = 1.0
_HOLD_END_S = 12.0  # > the 10 s learned span + the approach
_PROBE_PER_S2 = 0.0012  # ceiling * 0.0012 * t**2: +3% at 5 s, +10% at 9 s
_FORGET_ABOVE = 1.1  # this far above the ceiling without a 429: the limit rose
_LEARN_SPAN_S = 10.0  # the contract: held for 10 s without a 429
_START_SHARE = 0.8  # the contract: start at 0.8 of the learned rate
_SATURATED_GRACE_S = 0.25  # a wait this recent still counts as saturated (the queue just drained)
_WINDOW_BUDGET = 1.1  # as `pacing`: no 1-second window above rate * 1.1
_BUCKET_S = 0.1
_BUCKETS = round(_LEARN_SPAN_S / _BUCKET_S) + 2  # the span's buckets, its oldest partial one, and the current


class _Counts:
    """Events in 0.1 s buckets over the last ~10 s: a ring of (bucket number, count)."""

    __slots__ = ("_counts", "_numbers")

    def __init__(self) -> None:
        self._numbers = [-1] * _BUCKETS
        self._counts = [0] * _BUCKETS

    def add(self, now: float) -> None:
        number = int(now / _BUCKET_S)
        slot = number % _BUCKETS
        if self._numbers[slot] != number:
            self._numbers[slot] = number
            self._counts[slot] = 0
        self._counts[slot] += 1

    def in_last(self, now: float, span_s: float) -> float:
        """Events in (now - span_s, now]: whole buckets, and the share of the oldest one inside the span (events
        taken as spread evenly over a bucket)."""
        position = (now - span_s) / _BUCKET_S
        oldest = int(position)
        inside = 1.0 - (position - oldest)
        total = 0.0
        for number, count in zip(self._numbers, self._counts, strict=True):
            if number > oldest:
                total += count
            elif number == oldest:
                total += count * inside
        return total


class AdaptiveRate:
    """The adaptive rate of one (endpoint, project) and the GCRA spacing at that rate. See the module docstring.

    Call `start(now, learned)` once, then per request `ready_at(now)` (and `waited(now, until)` before sleeping until
    then) or `take(now)` when it is ready; `throttled(generation, now, retry_after_s)` on a 429.
    """

    __slots__ = (
        "_ceiling",
        "_cut_at",
        "_epoch",
        "_from",
        "_generation",
        "_last_429",
        "_last_bucket",
        "_learned",
        "_learned_reported",
        "_learned_stale",
        "_on_learned",
        "_on_rate",
        "_paused_until",
        "_phase_s",
        "_plateau",
        "_rate",
        "_rejected",
        "_reported_rate",
        "_saturated_since",
        "_sends",
        "_started",
        "_tat",
        "_updated",
        "_waited_until",
        "burst_s",
        "max_per_s",
        "min_per_s",
        "start_per_s",
    )

    def __init__(
        self,
        *,
        start_per_s: float,
        max_per_s: float,
        min_per_s: float = 1.0,
        burst_s: float = 0.05,
        on_rate: RateCallback | None = None,
        on_learned: RateCallback | None = None,
    ) -> None:
        if not (0 < start_per_s <= max_per_s and math.isfinite(max_per_s)):
            raise ValueError(
                f"need 0 < start_per_s <= max_per_s < inf, got start_per_s={start_per_s!r}, max_per_s={max_per_s!r}"
            )
        self.start_per_s = float(start_per_s)
        self.max_per_s = float(max_per_s)
        # Cuts never go below this: a shared quota must slow us down, not stall the run.
        self.min_per_s = min(float(min_per_s), self.start_per_s)
        self.burst_s = burst_s
        self._on_rate = on_rate
        self._on_learned = on_learned
        self._sends = _Counts()
        self._rejected = _Counts()
        self._started = 0.0
        self._ceiling: float | None = None
        self._plateau = 0.0
        self._from = self.start_per_s
        self._epoch = 0.0  # the phase clock counts saturated seconds from here
        self._phase_s = 0.0
        self._updated = 0.0
        self._rate = self.start_per_s
        self._reported_rate = -1.0
        self._cut_at = -math.inf
        self._generation = 0
        self._paused_until = -math.inf
        self._last_429 = -math.inf
        self._waited_until = -math.inf
        self._saturated_since = math.inf
        self._learned: float | None = None
        self._learned_reported: float | None = None
        self._learned_stale = False
        self._last_bucket = -1
        self._tat = -math.inf

    # -- what the owner reads ----------------------------------------------------------------------------------------

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def ceiling(self) -> float | None:
        """The limit this believes in (the last 429's accepted rate, or the learned rate at start), or None."""
        return self._ceiling

    @property
    def learned(self) -> float | None:
        return self._learned

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def __repr__(self) -> str:
        return (
            f"AdaptiveRate(rate={self._rate:.3f}, ceiling={self._ceiling!r}, learned={self._learned!r}, "
            f"max_per_s={self.max_per_s!r}, generation={self._generation})"
        )

    # -- inputs -------------------------------------------------------------------------------------------------------

    def start(self, now: float, learned_per_s: float | None = None) -> None:
        """Begin at `now`: at 0.8 of a learned rate (kept from an earlier run; also the first ceiling), else at
        `start_per_s` in slow start."""
        self._started = now
        rate = self.start_per_s
        if learned_per_s is not None and learned_per_s > 0 and math.isfinite(learned_per_s):
            learned = min(float(learned_per_s), self.max_per_s)
            self._learned = self._learned_reported = learned
            self._ceiling = learned
            # It was held for 10 s without a 429: approach all of it, not 0.97 of it.
            self._plateau = learned
            rate = max(self.min_per_s, _START_SHARE * learned)
        self._start_epoch(rate, now)
        self._report_rate(force=True)

    def ready_at(self, now: float) -> float:
        """When the next request may leave (<= now: at once). Brings the rate up to date first."""
        self._advance(now)
        # GCRA lets ceil((1 + tolerance) * rate) requests into a 1-second window: keep that within the budget.
        budget = math.floor(self._rate * _WINDOW_BUDGET + 1e-9)
        tolerance = max(0.0, min(self.burst_s, budget / self._rate - 1.0))
        return max(self._tat - tolerance, self._paused_until)

    def waited(self, now: float, until: float) -> None:
        """The next request waits from `now` to `until`: demand is above the rate (saturated)."""
        if now - self._waited_until > _SATURATED_GRACE_S:
            self._saturated_since = now
        self._waited_until = until

    def take(self, now: float) -> int:
        """A request leaves now (after `ready_at(now) <= now`). Returns the generation to hand back on a 429."""
        self._tat = max(self._tat, now) + 1.0 / self._rate
        self._sends.add(now)
        bucket = int(now / _BUCKET_S)
        if bucket != self._last_bucket:
            # At most ten times a second: the learned rate and the gauge need no finer grain.
            self._last_bucket = bucket
            self._learn(now)
            self._report_rate()
        return self._generation

    def throttled(self, generation: int, now: float, retry_after_s: float | None = None) -> bool:
        """A request sent in `generation` got a 429. Returns True if that cut the rate."""
        self._rejected.add(now)
        self._last_429 = now
        if retry_after_s is not None and retry_after_s > 0:
            self._paused_until = max(self._paused_until, now + retry_after_s)
        # Answers to requests sent before the last cut, and every 429 within 2 s of it, are the same overshoot.
        if generation != self._generation or now - self._cut_at < _CUT_INTERVAL_S:
            return False
        self._advance(now)
        ceiling = max(self.min_per_s, min(self._rate, self._accepted_per_s(now, 1.0)))
        if self._learned is not None and ceiling < self._learned:
            self._learned_stale = True  # the limit is below what was learned: the next held span replaces it
        share = _CUT_AGAIN if now - self._cut_at < _CUT_AGAIN_WITHIN_S else _CUT
        self._ceiling = ceiling
        self._plateau = _PLATEAU * ceiling
        self._cut_at = now
        self._generation += 1
        # The phase clock starts once the server's pause is over.
        self._start_epoch(max(self.min_per_s, share * ceiling), max(now, self._paused_until))
        self._report_rate(force=True)
        return True

    # -- the law ------------------------------------------------------------------------------------------------------

    def _start_epoch(self, rate: float, at: float) -> None:
        self._from = min(rate, self.max_per_s)
        self._rate = self._from
        self._epoch = at
        self._phase_s = 0.0
        self._updated = at

    def _advance(self, now: float) -> None:
        elapsed = now - self._updated
        if elapsed <= 0:
            return
        self._updated = now
        if now - self._waited_until > _SATURATED_GRACE_S:
            return  # not rate-bound: the rate was not tested, so it stays
        self._phase_s += elapsed
        self._rate = self._rate_in_phase(self._phase_s, now)

    def _rate_in_phase(self, t: float, now: float) -> float:
        ceiling = self._ceiling
        if ceiling is None:
            rate = self._from * math.pow(2.0, t / _DOUBLING_S)
        else:
            # Towards the plateau, never down (from above it, e.g. a learned rate above a later ceiling, stay).
            approach = max(self._plateau - self._from, 0.0) * (1.0 - math.exp(-min(t, _HOLD_END_S) / _APPROACH_TAU_S))
            rate = self._from + approach
            if t > _HOLD_END_S:
                rate += ceiling * _PROBE_PER_S2 * (t - _HOLD_END_S) ** 2
            if rate > _FORGET_ABOVE * ceiling:
                # No 429 this far above the ceiling: the limit rose. Slow start from here.
                self._ceiling = None
                self._start_epoch(min(rate, self.max_per_s), now)
        return max(self.min_per_s, min(self.max_per_s, rate))

    def _accepted_per_s(self, now: float, span_s: float) -> float:
        """Requests sent and not answered 429 over the last `span_s`, per second. The server limits what its window
        (a sliding second) holds, so a young pacer's count is divided by the span all the same."""
        accepted = self._sends.in_last(now, span_s) - self._rejected.in_last(now, span_s)
        return max(0.0, accepted / span_s)

    def _learn(self, now: float) -> None:
        held_since = max(self._last_429, self._saturated_since, self._started)
        if now - self._waited_until > _SATURATED_GRACE_S or now - held_since < _LEARN_SPAN_S:
            return
        held = self._accepted_per_s(now, _LEARN_SPAN_S)
        if self._learned is not None and not self._learned_stale and held <= self._learned:
            return
        stale = self._learned_stale
        self._learned = held
        self._learned_stale = False
        reported = self._learned_reported
        # A write per 2% gained: the state is not written ten times a second while the rate creeps up.
        if self._on_learned is not None and (stale or reported is None or held >= 1.02 * reported):
            self._learned_reported = held
            self._on_learned(held)

    def _report_rate(self, *, force: bool = False) -> None:
        if self._on_rate is None:
            return
        if force or abs(self._rate - self._reported_rate) > 0.01 * self._reported_rate:
            self._reported_rate = self._rate
            self._on_rate(self._rate)
