"""The adaptive rate (`GES_RETENTION_RATE_LIMIT=auto`): slow start, cuts, Retry-After, gentle probing, the max, the
learned rate; and its pacer, memory and gauge.

Pure time logic: every test hands `AdaptiveRate` the time itself (or a fake clock to the pacer). Nothing sleeps.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from ges_retention.ges.pacing import AdaptivePacer, AutoRate, Pacing, RatePacer
from ges_retention.ges.rate_control import AdaptiveRate

from .fakes import FakeClock

T0 = 1000.0


def saturated(control: AdaptiveRate, now: float, until: float) -> tuple[float, list[float]]:
    """Requests always waiting (demand above the rate) from `now` to `until`: the times they left."""
    stamps: list[float] = []
    while now < until:
        ready = control.ready_at(now)
        if ready > now:
            control.waited(now, ready)
            now = ready
            continue
        control.take(now)
        stamps.append(now)
    return now, stamps


def rate_over(stamps: list[float], start: float, end: float) -> float:
    return (bisect.bisect_left(stamps, end) - bisect.bisect_left(stamps, start)) / (end - start)


def started(
    start: float = 10.0,
    maximum: float = 1000.0,
    learned: float | None = None,
    on_learned: Callable[[float], None] | None = None,
) -> AdaptiveRate:
    control = AdaptiveRate(start_per_s=start, max_per_s=maximum, on_learned=on_learned)
    control.start(T0, learned)
    return control


def cut_at(control: AdaptiveRate, now: float) -> bool:
    return control.throttled(control.generation, now)


# -- increase ---------------------------------------------------------------------------------------------------------


def test_slow_start_doubles_every_saturated_second() -> None:
    control = started(start=10)
    _, stamps = saturated(control, T0, T0 + 4)
    assert control.rate == pytest.approx(160, rel=0.02)
    assert rate_over(stamps, T0 + 3, T0 + 4) == pytest.approx(160 / 1.386, rel=0.1)  # the mean of 80 * 2**t over 1 s


def test_the_rate_does_not_climb_while_demand_is_below_it() -> None:
    control = started(start=10)
    now = T0
    for _ in range(100):  # one request every 0.2 s: 5/s asked, 10/s allowed, never a wait
        assert control.ready_at(now) <= now
        control.take(now)
        now += 0.2
    assert control.rate == 10


def test_never_above_the_max() -> None:
    control = started(start=10, maximum=50)
    _, stamps = saturated(control, T0, T0 + 20)
    assert control.rate == 50
    assert rate_over(stamps, T0 + 10, T0 + 20) == pytest.approx(50, rel=0.02)
    learned = started(start=10, maximum=50, learned=400)
    assert learned.rate == 40  # 0.8 of the learned rate, itself capped at the max
    assert learned.ceiling == 50


# -- cuts -------------------------------------------------------------------------------------------------------------


def test_a_429_cuts_to_0_9_of_what_was_accepted_and_only_once_per_2_s() -> None:
    control = started(start=100, maximum=100)
    now, _ = saturated(control, T0, T0 + 5)  # at the max, 100/s, for 5 s
    generation = control.generation
    assert control.throttled(generation, now)
    assert control.ceiling == pytest.approx(100, rel=0.03)
    assert control.rate == pytest.approx(90, rel=0.03)
    # The rest of the same overshoot: answers to requests sent before the cut, or within 2 s of it.
    assert not control.throttled(generation, now + 0.01)
    now, _ = saturated(control, now, now + 1.5)
    assert not control.throttled(control.generation, now)
    assert control.generation == generation + 1
    now, _ = saturated(control, now, now + 0.6)
    rate = control.rate
    assert control.throttled(control.generation, now)  # 2.1 s after the first: a second cut
    # Within 10 s of the previous cut: its estimate was too high, so this one cuts harder (0.75).
    assert control.rate < 0.8 * rate


def test_the_ceiling_is_what_the_server_accepted_not_what_was_sent() -> None:
    control = started(start=100, maximum=100)
    now, _ = saturated(control, T0, T0 + 5)
    for i in range(30):  # 30 of the last second's 100 requests were 429s
        assert (i == 0) == control.throttled(control.generation if i == 0 else -1, now - 0.5 + i * 0.01)
    # The first 429 cut at ~0.5 s before the others counted; a later cut sees them all.
    now, _ = saturated(control, now, now + 2.5)
    for i in range(30):
        control.throttled(-1, now - 0.3 + i * 0.001)
    assert control.throttled(control.generation, now)
    # ~90 sent in the last second, 30 of them refused: the server's window took ~60.
    assert control.ceiling is not None and control.ceiling < 0.75 * 100


def test_retry_after_pauses_and_the_climb_starts_after_the_pause() -> None:
    control = started(start=100, maximum=100)
    now, _ = saturated(control, T0, T0 + 3)
    assert control.throttled(control.generation, now, retry_after_s=5.0)
    assert control.ready_at(now) == pytest.approx(now + 5.0)
    cut_rate = control.rate
    later, stamps = saturated(control, now, now + 5.0)
    assert stamps == []  # nothing leaves during the pause
    assert control.rate == pytest.approx(cut_rate)  # and the pause taught nothing
    _, stamps = saturated(control, later, later + 1.0)
    assert stamps and stamps[0] >= now + 5.0
    # A Retry-After on a 429 that does not cut (within 2 s) still pauses.
    control.throttled(-1, later + 1.0, retry_after_s=2.0)
    assert control.ready_at(later + 1.0) == pytest.approx(later + 3.0)


# -- probing near the ceiling -----------------------------------------------------------------------------------------


def test_probing_is_gentle_near_the_ceiling_and_quick_far_below_it() -> None:
    control = started(start=100, maximum=1000)
    now, _ = saturated(control, T0, T0 + 10)
    assert control.ceiling is None
    now, _ = saturated(control, now, now + 0.0)
    # Pretend the server took 200/s: the last second's sends are whatever they were; cut and read the ceiling.
    assert cut_at(control, now)
    ceiling = control.ceiling
    assert ceiling is not None
    rates: dict[float, float] = {}
    start = now
    for t in (0.5, 1, 2, 3, 5, 8, 12, 14, 16, 17, 18, 20):
        now, _ = saturated(control, now, start + t)
        rates[t] = control.rate / ceiling
    assert rates[0.5] > 0.92  # from 0.9, most of the way to the plateau within a second
    assert 0.96 < rates[3] <= 0.97
    # The plateau holds until 12 s after the cut (room for a 10 s learned span)...
    assert rates[12] - rates[5] < 0.005
    # ...then probes gently: under 1% of the ceiling in the first 2 s, the ceiling itself only ~5 s later.
    assert rates[14] - rates[12] < 0.01
    assert rates[16] < 1.0 <= rates[18]
    # An additive increase at the slow start's early pace would have crossed the ceiling long before.
    assert rates[20] < 1.1


def test_no_429_far_above_the_ceiling_means_the_limit_rose() -> None:
    control = started(start=100, maximum=1000, learned=100)
    assert control.ceiling == 100
    now, _ = saturated(control, T0, T0 + 23)
    assert control.ceiling is None  # forgotten: 10% above it without a 429
    rate = control.rate
    saturated(control, now, now + 2)
    assert control.rate > 2 * rate  # slow start again


# -- the learned rate -------------------------------------------------------------------------------------------------


@dataclass
class Learned:
    rates: list[float] = field(default_factory=list)

    def __call__(self, rate: float) -> None:
        self.rates.append(rate)


def test_the_learned_rate_is_the_best_10_s_held_without_a_429() -> None:
    learned = Learned()
    control = started(start=50, maximum=50, on_learned=learned)
    now, _ = saturated(control, T0, T0 + 9.5)
    assert learned.rates == []  # not 10 s yet
    now, _ = saturated(control, now, now + 1.0)
    assert learned.rates and learned.rates[-1] == pytest.approx(50, rel=0.03)
    assert control.learned == pytest.approx(learned.rates[-1], rel=0.02)  # written again only per 2% gained
    count = len(learned.rates)
    saturated(control, now, now + 20)
    assert len(learned.rates) == count  # no gain, no write


def test_a_429_restarts_the_10_s_and_an_idle_pacer_learns_nothing() -> None:
    learned = Learned()
    control = started(start=50, maximum=50, on_learned=learned)
    now, _ = saturated(control, T0, T0 + 8)
    control.throttled(-1, now)  # not a cut (old generation), but a 429 all the same
    now, _ = saturated(control, now, now + 8)
    assert learned.rates == []
    # Demand below the rate for 30 s: no span held while rate-bound.
    idle = started(start=50, maximum=50, on_learned=learned)
    now = T0
    for _ in range(300):
        idle.ready_at(now)
        idle.take(now)
        now += 0.1
    assert learned.rates == []


def test_a_start_uses_0_8_of_the_learned_rate_and_a_lower_limit_replaces_it() -> None:
    learned = Learned()
    control = started(start=10, maximum=1000, learned=200, on_learned=learned)
    assert control.rate == 160
    assert control.ceiling == 200
    now, _ = saturated(control, T0, T0 + 3)
    assert control.rate == pytest.approx(200, rel=0.02)  # it held 200 before: approached all the way
    # The limit is lower now: 429s while accepting ~100/s make the learned 200 stale.
    for i in range(100):
        control.throttled(-1, now - 0.99 + i * 0.01)
    assert cut_at(control, now + 0.001)
    ceiling = control.ceiling
    assert ceiling is not None and ceiling < 200
    saturated(control, now, now + 11)
    assert learned.rates and learned.rates[-1] < 200  # the next held span replaced it, though lower
    assert control.learned == pytest.approx(learned.rates[-1], rel=0.02)


def test_start_without_a_usable_learned_rate() -> None:
    for value in (None, 0.0, -5.0, float("nan"), float("inf")):
        control = started(start=10, learned=value)
        assert (control.rate, control.ceiling, control.learned) == (10, None, None)


def test_bad_bounds() -> None:
    with pytest.raises(ValueError, match="start_per_s"):
        AdaptiveRate(start_per_s=0, max_per_s=10)
    with pytest.raises(ValueError, match="max_per_s"):
        AdaptiveRate(start_per_s=20, max_per_s=10)
    with pytest.raises(ValueError, match="start_per_s"):
        AutoRate(start_per_s=20, max_per_s=10)


# -- against a sliding-window server (simulated time) -----------------------------------------------------------------


@dataclass
class Outcome:
    accepted: list[float]
    rejected: int
    sent: int
    learned: float | None


def against_window(control: AdaptiveRate, limit: int, accepted_target: int, latency_s: float = 0.01) -> Outcome:
    """Saturated demand against a server allowing `limit` requests per sliding second (the emulator's gate): 429s
    come back after `latency_s` and count against the pacer like the transport's."""
    window: collections.deque[float] = collections.deque()
    answers: list[tuple[float, int]] = []  # (time, generation) of 429s on their way back
    accepted: list[float] = []
    rejected = sent = 0
    now = T0
    while len(accepted) < accepted_target:
        ready = control.ready_at(now)
        if ready > now:
            control.waited(now, ready)
        later = max(ready, now)
        while answers and answers[0][0] <= later:
            at, generation = heapq.heappop(answers)
            control.throttled(generation, at)
        now = later
        if control.ready_at(now) > now:
            continue
        generation = control.take(now)
        sent += 1
        arrival = now + latency_s / 2
        while window and window[0] <= arrival - 1.0:
            window.popleft()
        if len(window) >= limit:
            rejected += 1
            heapq.heappush(answers, (now + latency_s, generation))
        else:
            window.append(arrival)
            accepted.append(now)
    return Outcome(accepted, rejected, sent, control.learned)


@pytest.mark.parametrize("limit", [50, 150, 400])
def test_converges_below_an_untold_limit_with_few_429s(limit: int) -> None:
    outcome = against_window(started(start=10, maximum=1000), limit, max(3000, 25 * limit))
    stamps = outcome.accepted
    assert rate_over(stamps, T0 + 10, stamps[-1]) >= 0.9 * limit
    assert outcome.rejected <= 0.01 * outcome.sent
    assert outcome.learned is not None and 0.9 * limit <= outcome.learned <= limit
    # A second run from what the first learned starts at >= 0.75 of the limit, without a 429 to find it.
    second = against_window(started(start=10, maximum=1000, learned=outcome.learned), limit, limit * 2)
    assert rate_over(second.accepted, T0, T0 + 0.5) >= 0.75 * limit
    assert second.rejected == 0


# -- the pacer, its memory and its gauge ------------------------------------------------------------------------------


class Memory:
    def __init__(self, learned: float | None = None, *, fail: bool = False) -> None:
        self.learned = learned
        self.fail = fail
        self.asked: list[tuple[str, str]] = []
        self.kept: list[tuple[str, str, float]] = []

    async def learned_rate(self, endpoint: str, project_id: str) -> float | None:
        self.asked.append((endpoint, project_id))
        await asyncio.sleep(0)
        if self.fail:
            raise RuntimeError("state unavailable")
        return self.learned

    def on_learned(self, endpoint: str, project_id: str, rate_per_s: float) -> None:
        self.kept.append((endpoint, project_id, rate_per_s))


class RateGauge:
    def __init__(self) -> None:
        self.rates: list[tuple[str, str, float]] = []

    def on_response(self, operation: str, status: int, duration_s: float) -> None:
        pass

    def on_retry(self, operation: str, attempt: int, error: BaseException, retry_in_s: float) -> None:
        pass

    def on_throttled(self, operation: str, status: int, retry_in_s: float) -> None:
        pass

    def on_auth_ok(self) -> None:
        pass

    def on_rate_limit(self, endpoint: str, project_id: str, rate_per_s: float) -> None:
        self.rates.append((endpoint, project_id, rate_per_s))


async def test_the_pacer_starts_from_memory_once_at_0_8_of_it() -> None:
    clock = FakeClock()
    memory = Memory(learned=100)
    gauge = RateGauge()
    pacer = AdaptivePacer(
        AutoRate(10, 200, memory), "https://ges", "p1", observer=gauge, time_fn=clock.time, sleep_fn=clock.sleep
    )
    assert pacer.throttled(0) is False  # nothing sent yet

    async def worker(n: int) -> None:
        for _ in range(n):
            await pacer.acquire()

    await asyncio.gather(*(worker(50) for _ in range(8)))  # 400 requests, about 4 s
    assert memory.asked == [("https://ges", "p1")]  # loaded once, before the first request left
    assert gauge.rates[0] == ("https://ges", "p1", 80.0)  # 0.8 of the learned rate
    assert gauge.rates[-1][2] == pytest.approx(100, rel=0.02)
    generation = await pacer.acquire()
    assert pacer.throttled(generation) is True
    assert gauge.rates[-1][2] == pytest.approx(pacer.rate)


async def test_the_pacer_hands_back_what_it_learns() -> None:
    clock = FakeClock()
    memory = Memory(learned=None)
    pacer = AdaptivePacer(AutoRate(10, 50, memory), "https://ges", "p1", time_fn=clock.time, sleep_fn=clock.sleep)

    async def worker(n: int) -> None:
        for _ in range(n):
            await pacer.acquire()

    await asyncio.gather(*(worker(100) for _ in range(8)))  # 800 requests: ~3 s to reach 50/s, then 13 s at it
    assert memory.kept and memory.kept[-1][:2] == ("https://ges", "p1")
    assert memory.kept[-1][2] == pytest.approx(50, rel=0.03)


async def test_a_failing_memory_means_a_slow_start_not_a_failed_run() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(AutoRate(10, 200, Memory(fail=True)), "e", "p", time_fn=clock.time, sleep_fn=clock.sleep)
    await pacer.acquire()
    assert pacer.rate == 10
    assert pacer.control.ceiling is None


def test_pacing_builds_adaptive_pacers_for_auto_and_reports_fixed_rates() -> None:
    gauge = RateGauge()
    auto = Pacing(4, 200.0, auto=AutoRate(10, 200), observer=gauge)
    assert isinstance(auto.pacer("e", "p"), AdaptivePacer)
    assert auto.pacer("e", "p") is auto.pacer("e", "p")
    assert "auto" in repr(auto)
    fixed = Pacing(4, 25.0, observer=gauge)
    assert isinstance(fixed.pacer("e", "q"), RatePacer)
    assert gauge.rates == [("e", "q", 25.0)]
    Pacing(4, 0.0, observer=gauge).pacer("e", "r")
    assert gauge.rates[-1] == ("e", "r", 0.0)  # no limit


async def test_a_fixed_pacer_reports_its_halving_and_recovery() -> None:
    clock = FakeClock()
    rates: list[float] = []
    pacer = RatePacer(100, time_fn=clock.time, sleep_fn=clock.sleep, recovery_s=2.0, on_rate=rates.append)
    generation = await pacer.acquire()
    assert pacer.throttled(generation)
    assert rates[:2] == [100, 50]
    for _ in range(400):
        await pacer.acquire()
    assert rates[-1] == pytest.approx(pacer.rate, rel=0.011)
    assert rates[-1] > 50
