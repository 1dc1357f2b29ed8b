"""The change gate, the pure part: extra deletions against the baseline's plan, the budget, the gate digest; and
`gates.apply_gates`, which fills a policy's result with its gate and two-phase clocks."""

from __future__ import annotations

from datetime import timedelta

from factories import at, b, policy_file

from ges_retention.change_gate import GateContext, GateDecision, change_gate, gate_context, peers_of
from ges_retention.gates import PolicyMemory, apply_gates
from ges_retention.listing_trust import trusted_backups
from ges_retention.policy import Policy
from ges_retention.policy_definition import definition_document
from ges_retention.project_scope import ProjectScope
from ges_retention.retention import plan, plan_file
from ges_retention.runner_planning import plan_listings
from ges_retention.state.gate_digest import definition_digest, gate_digest
from ges_retention.state.records import Baseline

NOW = at("2026-11-27T12:00")
# 40 days of daily backups in each of 3 graphs.
BACKUPS = [
    b(f"{g}-{d:02d}", (NOW - timedelta(days=d, hours=10)).strftime("%Y-%m-%dT%H:%M"), graph=g)
    for g in ("g1", "g2", "g3")
    for d in range(40)
]


def _file(daily: int = 30, *, budget: str = "10", other: str = "", ack: str = "") -> list[Policy]:
    text = f"""
        version: 1
        policies:
          - name: nightly
            project_id: proj1
            keep: {{daily: {daily}}}
            safety: {{max_deletes: 1000, change_budget: {budget}{", ack: " + ack if ack else ""}}}
        {other}
    """
    return list(policy_file(text).policies)


def _baseline(policy: Policy, peers: list[Policy], digest: str = "b" * 64) -> Baseline:
    context = gate_context(policy, peers)
    return Baseline(context.definition, context.overlap, digest, "run0", NOW - timedelta(days=1))


def _gate(policies: list[Policy], baseline: Baseline | None, holds: dict[str, _Hold] | None = None) -> GateDecision:
    policy = policies[0]
    peers = peers_of(policy, policies, lambda _p: "https://ges")
    new_plan = plan_file(policies, [policy], lambda _p: BACKUPS, NOW, holds)[0]
    return change_gate(policy, peers, new_plan, BACKUPS, NOW, holds, baseline)


def test_without_a_baseline_every_planned_deletion_is_extra() -> None:
    gate = _gate(_file(daily=30), None)
    assert len(gate.extra) == 3 * 10 and gate.budget == 10 and gate.changed
    assert gate.held and not gate.has_baseline
    assert gate.sample_ids == sorted(gate.extra)[:20]


def test_an_unlimited_budget_never_holds_and_zero_deletions_never_hold() -> None:
    assert not _gate(_file(daily=30, budget="unlimited"), None).held
    assert not _gate(_file(daily=40, budget="0"), None).held


def test_the_same_definition_and_context_is_not_a_change() -> None:
    policies = _file(daily=30)
    gate = _gate(policies, _baseline(policies[0], []))
    assert not gate.changed and gate.extra == () and not gate.held


def test_tightening_daily_30_to_3_is_held_with_the_extra_deletions() -> None:
    before = _file(daily=30)
    gate = _gate(_file(daily=3), _baseline(before[0], []))
    assert gate.changed and gate.held
    assert len(gate.extra) == 3 * 27  # the baseline deleted days 30..39 already; days 3..29 are extra
    assert all(int(bid.split("-")[1]) in range(3, 30) for bid in gate.extra)


def test_loosening_is_not_extra() -> None:
    gate = _gate(_file(daily=35), _baseline(_file(daily=30)[0], []))
    assert gate.changed and gate.extra == () and not gate.held


def test_the_smaller_of_the_old_and_new_budgets_applies() -> None:
    old = _file(daily=30, budget="5")[0]
    gate = _gate(_file(daily=28, budget="unlimited"), _baseline(old, []))
    assert gate.budget == 5 and len(gate.extra) == 6 and gate.held
    assert _gate(_file(daily=28, budget="6"), _baseline(_file(daily=30, budget="50")[0], [])).budget == 6


def test_holds_are_planned_under_both_definitions() -> None:
    before = _file(daily=30)[0]
    gate = _gate(_file(daily=29), _baseline(before, []), holds={"g1-29": _Hold()})
    assert gate.extra == ("g2-29", "g3-29")


OTHER = """
          - name: weekly-g1
            project_id: proj1
            select: {graphs: [g1-name]}
            keep: {last: 1}
"""


def test_removing_an_overlapping_policy_changes_the_others_baseline() -> None:
    with_peer = _file(daily=30, other=OTHER)
    baseline = _baseline(with_peer[0], [with_peer[1]])
    assert not _gate(with_peer, baseline).changed
    alone = _file(daily=30)
    gate = _gate(alone, baseline)
    # Under the baseline the peer selected g1: its backups were kept (overlap); now the 10 oldest of g1 go.
    assert gate.changed and gate.extra == tuple(f"g1-{d}" for d in range(30, 40)) and not gate.held
    assert gate.digest != _gate(with_peer, baseline).digest


def test_the_gate_digest_is_the_definition_in_its_context_against_the_baseline() -> None:
    policies = _file(daily=30, other=OTHER)
    peer_digest = definition_digest(definition_document(policies[1]))
    assert _gate(policies, None).digest == gate_digest(definition_document(policies[0]), [peer_digest], None)
    baseline = _baseline(policies[0], [policies[1]], digest="c" * 64)
    assert _gate(policies, baseline).digest == gate_digest(definition_document(policies[0]), [peer_digest], "c" * 64)
    # A peer on another endpoint is not in the context.
    assert peers_of(policies[0], policies, lambda p: p.name) == []


def test_the_ack_is_not_part_of_the_gate_digest() -> None:
    assert _gate(_file(daily=30), None).digest == _gate(_file(daily=30, ack="a" * 64), None).digest


def test_a_baseline_this_version_cannot_read_keeps_everything() -> None:
    unreadable = Baseline({"keep": {"daily": "many"}}, [], "d" * 64, "run0", NOW)
    gate = _gate(_file(daily=30), unreadable)
    assert gate.changed and gate.has_baseline and len(gate.extra) == 30


def test_a_context_round_trips_through_json_values() -> None:
    policies = _file(daily=30, other=OTHER)
    context = gate_context(policies[0], [policies[1]])
    assert isinstance(context, GateContext)
    assert Policy.model_validate({**context.definition, "name": "nightly"}) == policies[0]


def test_apply_gates_fills_two_phase_and_the_gate_and_takes_a_matching_ack_from_the_file() -> None:
    text = """
        version: 1
        policies:
          - name: nightly
            project_id: proj1
            keep: {daily: 3}
            safety: {confirm_after: 1d, max_deletes: 1000}
    """
    loaded = policy_file(text)
    listings = {ProjectScope("", "proj1"): trusted_backups(BACKUPS)}
    results = plan_listings(loaded, loaded.policies, listings, NOW, dry_run=False)
    memory = {"nightly": PolicyMemory({"g1-10": NOW - timedelta(days=2)})}
    ignored = apply_gates(loaded, results, lambda p: listings[p].backups, NOW, memory=memory)
    (result,) = results
    assert ignored == []
    assert result.gate is not None and result.gate.held and result.change_held
    assert [d.backup.id for d in result.due] == ["g1-10"]
    assert len(result.waiting) == 3 * 37 - 1

    digest = result.gate.digest
    acked_file = policy_file(text.replace("max_deletes: 1000", f"max_deletes: 1000, ack: {digest}"))
    acked = plan_listings(acked_file, acked_file.policies, listings, NOW, dry_run=False)
    assert apply_gates(acked_file, acked, lambda p: listings[p].backups, NOW) == []
    assert acked[0].acked_by == "file" and not acked[0].change_held

    stale_file = policy_file(text.replace("max_deletes: 1000", f"max_deletes: 1000, ack: {'e' * 64}"))
    stale = plan_listings(stale_file, stale_file.policies, listings, NOW, dry_run=False)
    (warning,) = apply_gates(stale_file, stale, lambda p: listings[p].backups, NOW)
    assert (warning.policy, warning.written, warning.digest) == ("nightly", "e" * 64, digest)
    assert stale[0].change_held


class _Hold:
    reason = "kept for a test"
    until = None


def test_plan_result_of_the_gate_uses_the_plan_not_a_replan() -> None:
    policies = _file(daily=30)
    new_plan = plan(BACKUPS, policies[0], NOW)
    gate = change_gate(policies[0], [], new_plan, BACKUPS, NOW, None, None)
    assert set(gate.extra) == {d.backup.id for d in new_plan.planned}
