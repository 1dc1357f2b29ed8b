"""Properties of the forecast over generated policies and scenarios (modest example counts: a shared machine)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simulate_helpers import policy, replay, scenario

from ges_retention.simulate import Scenario, simulate
from ges_retention.simulate_command import forecast_document
from ges_retention.svg import render_svg

SVG = "{http://www.w3.org/2000/svg}"
TIMEZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Australia/Lord_Howe"]
CADENCES = ["0 2 * * *", "0 */6 * * *", "30 1 * * 1", "45 23 * * *", "0 2,14 * * 1-5"]
SCHEDULES = [None, "0 */12 * * *", "15 3 * * 1", "30 2 * * *"]
RULES = ["last", "hourly", "daily", "weekly", "monthly", "yearly"]
PROFILE = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw: st.DrawFn, *, count_rules_only: bool) -> Scenario:
    counts = {rule: draw(st.integers(0, 4)) for rule in RULES}
    if not any(counts.values()):
        counts[draw(st.sampled_from(RULES))] = 1
    keep = ", ".join(f"{rule}: {n}" for rule, n in counts.items() if n)
    pins = draw(st.lists(st.integers(1, 40), max_size=2, unique=True))
    if pins:
        keep += ", ids: [" + ", ".join(f'"sim-{n:06d}"' for n in pins) + "]"
    lines = [f"keep: {{{keep}}}"]
    safety = [f"min_keep: {draw(st.integers(0, 3))}", "max_deletes: 100000"]
    schedule = draw(st.sampled_from(SCHEDULES))
    if schedule:
        lines.append(f'schedule: "{schedule}"')
    if not count_rules_only:
        if draw(st.booleans()):
            lines[0] = lines[0][:-1] + f", within: {draw(st.sampled_from(['1d', '36h', '1w']))}}}"
        if draw(st.booleans()):
            lines.append(f"failed: {{delete_after: {draw(st.sampled_from(['1d', '3d']))}}}")
        if draw(st.booleans()):
            safety.append(f"confirm_after: {draw(st.sampled_from(['12h', '2d']))}")
        safety[0] = f"min_keep: {draw(st.integers(1, 3))}"
    lines.append(f"safety: {{{', '.join(safety)}}}")
    tz = draw(st.sampled_from(TIMEZONES))
    start = date(2027, 1, 1) + timedelta(days=draw(st.integers(0, 365)))
    days = draw(st.integers(8, 50))  # a weekly schedule runs at least once
    outages = []
    if draw(st.booleans()):
        first = start + timedelta(days=draw(st.integers(0, days)))
        outages.append((first.isoformat(), (first + timedelta(days=draw(st.integers(1, 30)))).isoformat()))
    return scenario(
        policy("\n".join(lines), tz=tz),
        start.isoformat(),
        days,
        backups=draw(st.lists(st.sampled_from(CADENCES), min_size=1, max_size=2, unique=True)),
        outages=outages,
        failure_rate=draw(st.sampled_from([0.0, 0.1, 0.5])),
        seed=draw(st.integers(0, 2**32)),
    )


@PROFILE
@given(scenarios(count_rules_only=True))
def test_count_rules_keep_at_most_their_counts_plus_pins_plus_min_keep(sc: Scenario) -> None:
    keep = sc.policy.keep
    bound = sum(int(getattr(keep, rule)) for rule in RULES) + len(keep.ids) + sc.policy.safety.min_keep
    forecast = simulate(sc)
    assert forecast.runs
    for run in forecast.runs:
        assert not run.safety_stop
        assert run.kept <= bound, (run.at, run.kept, bound)
    replay(sc, forecast)  # and every run deleted exactly what the planner planned


@PROFILE
@given(scenarios(count_rules_only=False))
def test_with_min_keep_an_outage_never_leaves_the_group_without_a_success(sc: Scenario) -> None:
    forecast = simulate(sc)
    first_success = min((b.start_ms for b in forecast.created if b.status == "success"), default=None)
    if first_success is None:
        return
    for run in forecast.runs:
        if run.at.timestamp() * 1000 >= first_success:
            assert run.kept >= 1, run.at
    kept = [d.kept for d in forecast.days]
    first_day = next(i for i, n in enumerate(kept) if n)
    assert all(kept[first_day:]), kept


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(count_rules_only=False))
def test_the_same_seed_and_start_give_byte_identical_json_and_svg(sc: Scenario) -> None:
    import json

    first, second = simulate(sc), simulate(sc)
    assert json.dumps(forecast_document(first)) == json.dumps(forecast_document(second))
    assert render_svg(first, caption="c") == render_svg(second, caption="c")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(count_rules_only=False))
def test_the_svg_parses_and_has_one_mark_per_kept_backup_per_sampled_row(sc: Scenario) -> None:
    forecast = simulate(sc)
    root = ET.fromstring(render_svg(forecast, caption="a <caption> & more"))
    rows = [g for g in root.iter(f"{SVG}g") if g.get("class") == "row"]
    sampled = [d for d in forecast.days if d.marks is not None]
    assert [r.get("data-date") for r in rows] == [d.date.isoformat() for d in sampled]
    for row, day in zip(rows, sampled, strict=True):
        classes = [c.get("class") for c in row.iter(f"{SVG}circle")]
        assert sum(1 for c in classes if c in ("k", "p")) == day.kept == int(row.get("data-kept", "-1"))
        assert len(classes) == len(day.marks or ())
