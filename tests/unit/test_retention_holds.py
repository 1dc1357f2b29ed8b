"""Holds as input to the pure planner: `plan(backups, policy, now, holds)` keeps a held backup, says why, and lets it
take part in the bucket rules like a pin; an ended hold is ignored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from factories import NO_FLOOR, at, b, outcome, pol
from hypothesis import given
from test_retention_properties import NOW, SETTINGS, backup_lists, policies

from ges_retention.retention import plan, plan_file
from ges_retention.retention_overlap import find_overlaps

NOW_1 = at("2026-11-27T12:00")


@dataclass(frozen=True)
class H:
    reason: str
    until: datetime | None = None


def test_a_held_backup_is_kept_with_its_reason_and_its_deletion_reason_goes() -> None:
    backups = [b("a", "2026-11-27T01:00"), b("b", "2026-11-26T01:00"), b("c", "2026-11-25T01:00")]
    policy = pol("keep: {last: 1}", NO_FLOOR)
    result = plan(backups, policy, NOW_1, {"c": H("legal case 42")})
    assert outcome(result) == {"a": "keep: last 1/1", "b": "delete: expired", "c": "keep: held: legal case 42"}
    assert result.held == ("c",)


def test_a_hold_matches_the_backup_id_in_any_case() -> None:
    """A hold typed in another case than GES lists the id still protects the backup (the safe side: it keeps more)."""
    backups = [b("a", "2026-11-27T01:00"), b("Ab-9F", "2026-11-26T01:00"), b("c3", "2026-11-25T01:00")]
    policy = pol("keep: {last: 1}", NO_FLOOR)
    result = plan(backups, policy, NOW_1, {"aB-9f": H("typed by hand"), "C3": H("upper case")})
    assert outcome(result) == {
        "a": "keep: last 1/1",
        "Ab-9F": "keep: held: typed by hand",
        "c3": "keep: held: upper case",
    }
    assert result.held == ("Ab-9F", "c3")


def test_a_hold_that_ends_says_until_when_in_utc() -> None:
    until = at("2026-12-01T10:00:00+01:00")
    result = plan([b("a", "2026-11-26T01:00")], pol("keep: {names: [nothing]}", NO_FLOOR), NOW_1, {"a": H("x", until)})
    assert outcome(result) == {"a": "keep: held: x until 2026-12-01T09:00:00Z"}


def test_an_ended_hold_is_ignored() -> None:
    ended = H("was needed", NOW_1 - timedelta(seconds=1))
    ends_now = H("ends now", NOW_1)
    backups = [b("a", "2026-11-27T01:00"), b("b", "2026-11-26T01:00"), b("c", "2026-11-25T01:00")]
    result = plan(backups, pol("keep: {last: 1}", NO_FLOOR), NOW_1, {"b": ended, "c": ends_now})
    assert outcome(result) == {"a": "keep: last 1/1", "b": "delete: expired", "c": "delete: expired"}
    assert result.held == ()


def test_the_hold_reason_comes_right_after_the_pins_and_before_the_rules() -> None:
    backups = [b("a", "2026-11-27T01:00", name="a-golden"), b("b", "2026-11-26T01:00")]
    policy = pol("keep: {daily: 7, names: ['*-golden'], ids: [a]}", NO_FLOOR)
    result = plan(backups, policy, NOW_1, {"a": H("audit"), "b": H("audit")})
    assert outcome(result)["a"] == "keep: pinned id; pinned name; held: audit; daily 1/7 (2026-11-27)"
    assert outcome(result)["b"] == "keep: held: audit; daily 2/7 (2026-11-26)"


def test_a_held_backup_takes_part_in_the_bucket_rules_like_a_pin() -> None:
    # `a` is the newest of its day: held or not, it spends the daily slot of 2026-11-27, so `a2` is not kept.
    backups = [b("a", "2026-11-27T02:00"), b("a2", "2026-11-27T01:00"), b("z", "2026-11-26T01:00")]
    policy = pol("keep: {daily: 1}", NO_FLOOR)
    unheld = outcome(plan(backups, policy, NOW_1))
    held = outcome(plan(backups, policy, NOW_1, {"a": H("x")}))
    assert unheld == {"a": "keep: daily 1/1 (2026-11-27)", "a2": "delete: expired", "z": "delete: expired"}
    assert held == {**unheld, "a": "keep: held: x; daily 1/1 (2026-11-27)"}


def test_holds_keep_failed_running_and_future_backups_too_after_their_status() -> None:
    backups = [
        b("f", "2026-11-20T01:00", status="failed"),
        b("ok", "2026-11-26T01:00"),
        b("run", "2026-11-27T11:59", status="backing_up"),
        b("fut", "2026-11-28T01:00"),
    ]
    policy = pol("keep: {last: 1}", "failed: {delete_after: 1d}", NO_FLOOR)
    assert outcome(plan(backups, policy, NOW_1))["f"] == "delete: failed"
    held = outcome(plan(backups, policy, NOW_1, {k: H("h") for k in ("f", "run", "fut")}))
    assert held["f"] == "keep: held: h"
    assert held["run"] == "keep: backing_up; held: h"
    assert held["fut"] == "keep: future; held: h"


def test_a_hold_counts_out_of_the_safety_stop() -> None:
    backups = [b(f"b{i}", f"2026-11-{10 + i:02d}T01:00") for i in range(5)]
    policy = pol("keep: {last: 1}", "safety: {min_keep: 0, max_deletes: 3}")
    assert plan(backups, policy, NOW_1).safety_stop
    held = plan(backups, policy, NOW_1, {"b0": H("x")})
    assert not held.safety_stop and len(held.planned) == 3


def test_plan_file_passes_the_holds_to_every_policy_and_overlap_follows_the_hold() -> None:
    backups = [b("a", "2026-11-27T01:00"), b("b", "2026-11-26T01:00")]
    p1 = pol("keep: {last: 1}", NO_FLOOR, name="one")
    p2 = pol("keep: {last: 1}", NO_FLOOR, name="two", project="other")
    (result,) = plan_file([p1, p2], [p1], lambda _project: backups, NOW_1, {"b": H("x")})
    assert outcome(result)["b"] == "keep: held: x"
    both = [p1, pol("keep: {last: 1}", NO_FLOOR, name="two")]
    overlapping = plan(backups, p1, NOW_1, {"b": H("x")}, overlaps=find_overlaps(backups, both))
    assert outcome(overlapping)["b"] == "keep: held: x; overlap: one, two"


@SETTINGS
@given(policies(), backup_lists(), backup_lists())
def test_a_hold_never_lets_a_backup_be_deleted_and_changes_nothing_else(policy, backups, others) -> None:
    held_ids = {x.id for x in others if int(x.id[1:]) % 2 == 0}  # ids drawn from the same b0..b39 namespace
    holds = {bid: H("keep me", None if int(bid[1:]) % 4 else NOW + timedelta(days=1)) for bid in held_ids}
    free = plan(backups, policy, NOW)
    held = plan(backups, policy, NOW, holds)
    for decision in held.decisions:
        if decision.backup.id in held_ids:
            assert decision.action == "keep"
            assert any(r.startswith("held: keep me") for r in decision.reasons)
    free_by_id = {d.backup.id: d for d in free.decisions}
    for decision in held.decisions:
        if decision.backup.id not in held_ids:  # a hold changes only the held backups' decisions
            assert decision == free_by_id[decision.backup.id]
    assert set(held.held) == held_ids & {d.backup.id for d in held.decisions}
