"""The spreading rule (`lease_spread.spread`): balance, joining within two rounds, leaving, busy and starving policies.

`simulate` plays rounds the way the lease managers do: each daemon in turn reads the table, gives back, then takes
what is still free (a take of a policy someone else got first fails, as on the database).
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ges_retention.lease_spread import spread, targets

POLICIES = [f"p{i}" for i in range(6)]


def play_round(daemons: list[str], holders: dict[str, str], policies: list[str], order: list[str]) -> None:
    for me in order:
        moves = spread(me, daemons, dict(holders), policies)
        for policy in moves.give_back:
            assert holders.pop(policy) == me
        for policy in moves.take:
            holders.setdefault(policy, me)


def counts(daemons: list[str], holders: dict[str, str]) -> dict[str, int]:
    return {d: sum(1 for h in holders.values() if h == d) for d in daemons}


def balanced(daemons: list[str], holders: dict[str, str], policies: list[str]) -> bool:
    held = counts(daemons, holders).values()
    return set(holders) == set(policies) and max(held) - min(held) <= 1


def test_two_daemons_and_six_policies_hold_three_each_from_an_empty_table() -> None:
    daemons = ["a", "b"]
    holders: dict[str, str] = {}
    play_round(daemons, holders, POLICIES, daemons)
    assert counts(daemons, holders) == {"a": 3, "b": 3}
    assert spread("a", daemons, holders, POLICIES).take == ()  # balanced: nothing moves
    assert spread("b", daemons, holders, POLICIES).give_back == ()


def test_a_joining_daemon_gets_its_share_within_two_rounds_and_only_by_give_backs() -> None:
    holders = dict.fromkeys(POLICIES, "a")
    daemons = ["a", "b"]
    moves = spread("a", daemons, holders, POLICIES)
    assert len(moves.give_back) == 3 and moves.target == 3
    play_round(daemons, holders, POLICIES, ["b", "a"])  # b first: nothing is free yet
    play_round(daemons, holders, POLICIES, ["b", "a"])
    assert counts(daemons, holders) == {"a": 3, "b": 3}


def test_a_leaving_daemons_policies_go_to_the_others() -> None:
    holders = {"p0": "a", "p1": "a", "p2": "b", "p3": "b", "p4": "c", "p5": "c"}
    del holders["p4"], holders["p5"]  # c released at shutdown, and left the daemon table
    daemons = ["a", "b"]
    play_round(daemons, holders, POLICIES, daemons)
    assert counts(daemons, holders) == {"a": 3, "b": 3}


def test_a_running_policy_is_never_given_back() -> None:
    holders = dict.fromkeys(POLICIES, "a")
    moves = spread("a", ["a", "b"], holders, POLICIES, busy={"p0", "p1", "p2", "p3", "p4"})
    assert moves.give_back == ("p5",)


def test_a_policy_held_by_a_one_shot_run_is_not_spread() -> None:
    holders = {"p0": "cli-host:9:ff"}
    moves = spread("a", ["a", "b"], holders, POLICIES)
    assert moves.target == 3 and "p0" not in moves.take  # five spreadable: a gets 3 (ties by name), b 2
    assert targets(["a", "b"], {}, 5) == {"a": 3, "b": 2}


def test_a_starving_policy_is_taken_beyond_the_target() -> None:
    holders = {"p0": "a", "p1": "a", "p2": "a"}
    moves = spread("a", ["a", "b"], holders, POLICIES, starving={"p4"})
    assert moves.take == ("p4",) and moves.target == 3


def test_targets_add_up_and_the_larger_ones_go_to_who_holds_most() -> None:
    assert targets(["a", "b", "c", "d"], {"c": 6}, 6) == {"c": 2, "a": 2, "b": 1, "d": 1}
    assert targets([], {}, 3) == {}


@settings(max_examples=500, deadline=None)
@given(
    policy_count=st.integers(min_value=0, max_value=12),
    daemon_count=st.integers(min_value=1, max_value=5),
    start=st.lists(st.integers(min_value=-1, max_value=4), max_size=12),
    joiner_first=st.booleans(),
)
# Found by hypothesis: when targets were ranked by the count held, a daemon taking its share mid-round overtook another
# and the later daemons computed other targets, leaving a policy free after two rounds.
@example(policy_count=5, daemon_count=3, start=[0, 0, 0, 0, 0], joiner_first=True)
@example(policy_count=5, daemon_count=3, start=[1, 1, 1, 1, 1], joiner_first=False)
def test_any_table_is_balanced_after_two_rounds(
    policy_count: int, daemon_count: int, start: list[int], joiner_first: bool
) -> None:
    policies = [f"p{i}" for i in range(policy_count)]
    daemons = [f"d{i}" for i in range(daemon_count)]
    holders = {
        policy: daemons[owner % daemon_count] for policy, owner in zip(policies, start, strict=False) if owner >= 0
    }
    order = list(reversed(daemons)) if joiner_first else daemons
    play_round(daemons, holders, policies, order)
    play_round(daemons, holders, policies, order)
    if policies:
        assert balanced(daemons, holders, policies)
    for me in daemons:  # and stays put
        moves = spread(me, daemons, holders, policies)
        assert moves.take == () and moves.give_back == ()
