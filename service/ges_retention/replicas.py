"""The daemon's side of several replicas: which policies this daemon may run now, and its leases' life cycle.

On a PostgreSQL state a daemon runs a policy only while it holds the policy's lease, valid on the local clock
(`lease_manager.py` keeps the leases, `state/leases.py` the rows). Every trigger asks `elsewhere(name)` first: None
means run it here; otherwise the reason and the holder for `run_skipped` (`lease_held`), or `state_unavailable`
while the state is not connected yet (a PostgreSQL state, so nothing may run before the leases are known). On any
other state there is one daemon and everything may run here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from ges_retention.lease_manager import LeaseManager
from ges_retention.metrics import Metrics
from ges_retention.settings import Settings
from ges_retention.state import PgLeases, RunLock, Taken, resolve_state_location

__all__ = ["LeaseHeld", "Replicas", "shared_state"]

log = structlog.get_logger("ges_retention.daemon")


class LeaseHeld(Exception):
    """This daemon may not run the policy now: another daemon holds its lease (`reason` `lease_held`), or the state
    is not connected (`state_unavailable`)."""

    def __init__(self, policy: str, reason: str, holder: str | None) -> None:
        super().__init__(policy)
        self.policy = policy
        self.reason = reason
        self.holder = holder


def shared_state(settings: Settings) -> bool:
    """Is `GES_RETENTION_STATE` a PostgreSQL URL (several daemons may share it)?"""
    value = settings.state_value()
    try:
        return resolve_state_location(value).kind == "postgresql"
    except Exception:  # a bad value is refused where the state is opened (exit 2), not here
        return False


class Replicas:
    __slots__ = ("_started", "manager", "shared")

    def __init__(self, *, shared: bool) -> None:
        self.shared = shared
        self.manager: LeaseManager | None = None
        self._started = False

    def attach(
        self,
        leases: PgLeases,
        *,
        policies: Callable[[], Sequence[str]],
        on_acquired: Callable[[str, Taken], None],
        metrics: Metrics | None,
    ) -> LeaseManager:
        """The state is connected and is PostgreSQL: from now on this daemon runs what its leases allow. Once: the
        same leases again keep the manager there is (a second one would run a second loop over the same rows)."""
        if self.manager is not None:
            if self.manager.leases is not leases:
                raise ValueError("this daemon's leases are already attached to another state")
            return self.manager
        self.shared = True
        self.manager = LeaseManager(leases, policies=policies, on_acquired=on_acquired, metrics=metrics)
        return self.manager

    def elsewhere(self, name: str) -> tuple[str, str | None] | None:
        """Why this daemon may not run a policy now, and who may; None when it may."""
        if self.manager is None:
            return ("state_unavailable", None) if self.shared else None
        if self.manager.holds(name):
            return None
        return "lease_held", self.manager.holder_of(name)

    def skipped(self, name: str, trigger: str) -> bool:
        """`elsewhere`, said as `run_skipped`: True when the trigger must not run the policy here."""
        found = self.elsewhere(name)
        if found is not None:
            log.info("run_skipped", policy=name, reason=found[0], holder=found[1], trigger=trigger)
        return found is not None

    def may_delete(self, name: str) -> bool:
        """Asked before each DELETE: the lease still valid here (several replicas), always on a local state."""
        if self.manager is None:
            return not self.shared
        return self.manager.may_delete(name)

    def holder_of(self, name: str) -> str | None:
        return self.manager.holder_of(name) if self.manager is not None else None

    async def refresh(self) -> None:
        """A fresh view of who holds what (before an HTTP answer names holders)."""
        if self.manager is not None:
            await self.manager.refresh()

    def unavailable(self) -> bool:
        """The state's leases cannot be kept now, or the PostgreSQL state is not connected yet (`/readyz` 503)."""
        if self.manager is None:
            return self.shared
        return self.manager.available is False

    async def lock_runs(self, names: Sequence[str], run_id: str) -> tuple[list[str], list[RunLock]]:
        if self.manager is None:
            return list(names), []
        return await self.manager.lock_runs(names, run_id)

    async def unlock_runs(self, locks: Sequence[RunLock]) -> None:
        if self.manager is not None and locks:
            await self.manager.unlock_runs(locks)

    async def start(self) -> None:
        """The first round (before the first load decides what runs), then the loop; once, however often asked."""
        if self.manager is not None and not self._started:
            self._started = True
            await self.manager.tick()
            self.manager.start()

    async def begin_shutdown(self) -> None:
        if self.manager is not None:
            await self.manager.begin_shutdown()

    async def close(self) -> None:
        if self.manager is not None:
            await self.manager.close()
