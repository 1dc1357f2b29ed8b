"""Spreading policies over live daemons: which leases this daemon should take and which it should give back. Pure.

With P policies free to spread (those not held by a process that is not a live daemon, such as a one-shot `run`) and D
live daemons, every daemon's target is P // D or P // D + 1, and the targets add up to P. The larger targets go to the
daemons that already hold more than P // D (then by name), so a balanced table moves nothing, a joining daemon takes
only what the others give back, and the targets stay the same while daemons take up to them. Every daemon computes the
same targets from the same table, gives back what it holds beyond its own (never a policy it is running) and takes free
policies up to it, in an order of its own (rendezvous hashing), so that daemons taking at once rarely reach for the same
policy. A policy left free for long (`starving`: say, the daemon meant to take it has a policy file without it) is taken
by whoever sees it, target or not: a policy nobody runs is the worse failure, and the next rounds balance the excess
away.

The lease manager calls this every TTL/3: a joining daemon gets its share within two rounds (one for the others to
give back, one to take), and a leaving daemon's releases are taken in the next round of the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Moves", "preference", "spread", "targets"]


@dataclass(frozen=True, slots=True)
class Moves:
    take: tuple[str, ...]
    give_back: tuple[str, ...]
    target: int


def preference(daemon: str, policy: str) -> bytes:
    """Rendezvous score: the higher, the more `daemon` wants `policy` (and the later it gives it back)."""
    return hashlib.sha256(f"{daemon}\0{policy}".encode()).digest()


def targets(daemons: Collection[str], held: Mapping[str, int], spreadable: int) -> dict[str, int]:
    """How many policies each live daemon should hold: floor or ceil of spreadable / D, adding up to spreadable."""
    if not daemons:
        return {}
    base, extra = divmod(spreadable, len(daemons))
    # Rank by "holds more than the floor", then by name, never by the count itself: a daemon taking up to its target
    # during a round must not overtake another and change the targets the others compute later in the same round.
    order = sorted(daemons, key=lambda daemon: (held.get(daemon, 0) <= base, daemon))
    return {daemon: base + (1 if rank < extra else 0) for rank, daemon in enumerate(order)}


def spread(
    me: str,
    daemons: Collection[str],
    holders: Mapping[str, str],
    policies: Sequence[str],
    *,
    busy: Collection[str] = (),
    starving: Collection[str] = (),
) -> Moves:
    """`daemons`: live daemons (this one is counted even if its heartbeat is not in yet); `holders`: live lease
    holders by policy; `policies`: the policy file's names; `busy`: policies this daemon is running (never given
    back); `starving`: free policies to take whatever the target."""
    live = set(daemons) | {me}
    names = list(dict.fromkeys(policies))
    occupied = {p for p in names if p in holders and holders[p] not in live}  # held by a one-shot run, say
    held: dict[str, int] = {}
    for policy in names:
        holder = holders.get(policy)
        if holder in live:
            held[holder] = held.get(holder, 0) + 1
    target = targets(live, held, len(names) - len(occupied))[me]
    mine = [p for p in names if holders.get(p) == me]
    give_back: list[str] = []
    if len(mine) > target:
        candidates = sorted((p for p in mine if p not in busy), key=lambda p: preference(me, p))
        give_back = candidates[: len(mine) - target]
    free = sorted((p for p in names if p not in holders), key=lambda p: preference(me, p), reverse=True)
    room = max(0, target - len(mine))
    take = free[:room] + [p for p in free[room:] if p in starving]
    return Moves(take=tuple(take), give_back=tuple(give_back), target=target)
