"""`run_on_change`: run a policy when the daemon loads a definition of it whose digest differs from the digest of its
last such run (kept in the journal: a restart does not re-run an unchanged policy). A change that arrives while the
policy runs queues exactly one more run (the daemon re-checks when the run ends).

The last digest of a key is read from the journal once, then known here: every later decision is immediate, so a
change seen while the policy runs is queued at once. The daemon (`ChangeHost`) starts runs; this only decides.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol

import structlog

from ges_retention.policy import Policy
from ges_retention.policy_definition import definition_digest
from ges_retention.run_records import ChangeDigests, ChangeKey
from ges_retention.summary import Trigger, new_run_id

__all__ = ["ChangeHost", "ChangeRuns"]

log = structlog.get_logger("ges_retention.daemon")


class ChangeHost(Protocol):
    running: set[str]
    queued: set[str]

    def policy(self, name: str) -> Policy | None: ...

    def state_ready(self) -> bool: ...

    def stopping_now(self) -> bool: ...

    def change_key(self, policy: Policy) -> ChangeKey: ...

    def start_run_now(self, names: list[str], trigger: Trigger, run_id: str) -> None: ...

    def run_here(self, name: str) -> bool: ...

    def spawn(self, work: Coroutine[Any, Any, None]) -> None: ...


class ChangeRuns:
    __slots__ = ("_known", "digests", "host")

    def __init__(self, host: ChangeHost, digests: ChangeDigests) -> None:
        self.host = host
        self.digests = digests
        self._known: dict[ChangeKey, str | None] = {}  # what `digests` said or was told, by key

    def check(self, policy: Policy) -> None:
        """Run `policy` if it is `run_on_change` and its definition changed (queue it if it runs). Never raises."""
        if not (policy.enabled and policy.run_on_change) or self.host.stopping_now():
            return
        key = self.host.change_key(policy)
        if key in self._known:
            self._decide(policy, key)
        else:
            self.host.spawn(self._read_then_decide(policy, key))

    async def _read_then_decide(self, policy: Policy, key: ChangeKey) -> None:
        try:
            if not self.host.state_ready():
                log.info("run_skipped", policy=policy.name, reason="state_unavailable", trigger="file")
                return
            last = await self.digests.last(key)
            self._known.setdefault(key, last)
            if self.host.policy(policy.name) is policy and not self.host.stopping_now():  # else a newer load decides
                self._decide(policy, key)
        except Exception as exc:
            log.exception("run_crashed", policies=[policy.name], error=repr(exc), trigger="file")

    def _decide(self, policy: Policy, key: ChangeKey) -> None:
        digest = definition_digest(policy)
        if self._known.get(key) == digest:
            return
        if policy.name in self.host.running:
            self.host.queued.add(policy.name)
            log.info("run_queued", policy=policy.name, reason="its definition changed while it runs")
            return
        if not self.host.state_ready():
            log.info("run_skipped", policy=policy.name, reason="state_unavailable", trigger="file")
            return
        if not self.host.run_here(policy.name):
            # Several replicas: the lease's holder runs the change (`run_skipped` `lease_held` said). Nothing is
            # recorded here, and the digest is read again should this daemon take the lease later: the journal
            # then says whether the holder ran this definition.
            self._known.pop(key, None)
            return
        run_id = new_run_id()
        self._known[key] = digest
        self.host.start_run_now([policy.name], "file", run_id)
        self.host.spawn(self._record(key, digest, run_id))

    async def _record(self, key: ChangeKey, digest: str, run_id: str) -> None:
        try:
            await self.digests.record(key, digest, run_id)
        except Exception as exc:  # the run goes on; after a restart the policy runs once more (safe: it re-plans)
            log.error("state_unavailable", error=str(exc), operation="put_change_digest", policy=key[0])
