"""The daemon's link to the journal: opened at start, retried while unreachable, one daemon per SQLite file.

At start, a misconfigured state (bad path or URL, permissions, password, newer schema) or a state locked by another
daemon raises (exit 2, naming the location or the first daemon). An unreachable one (PostgreSQL down) is not
misconfiguration: the daemon starts anyway, logs `state_unavailable`, answers 503 on `/readyz` and `POST /v1/...`,
runs nothing, and keeps retrying with backoff until it connects. Once connected, the store is handed to the
`Service` (whose runs journal through it) and the daemon runs as usual.

`StoreChangeDigests` keeps each `run_on_change` policy's last digest in the journal, so a restart does not re-run
an unchanged policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

import structlog

from ges_retention.run_records import ChangeKey
from ges_retention.service import Service, open_state
from ges_retention.state import DaemonLock, Scope, StateUnavailable, Store
from ges_retention.task_crashes import log_task_crash

__all__ = ["BACKOFF_MAX_S", "StateLink", "StoreChangeDigests"]

log = structlog.get_logger("ges_retention.daemon")

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0


class StateLink:
    """The daemon's store (through `service.store`), its daemon lock, and the retry loop while it is unreachable."""

    __slots__ = ("_connected", "_lock", "_open", "_retry", "_sleep", "error", "on_connected", "service")

    def __init__(
        self,
        service: Service,
        *,
        open_store: Callable[[], Awaitable[Store | None]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.service = service
        self._open = open_store or (lambda: open_state(service.settings, "create", holder=service.lease_holder))
        self._sleep = sleep
        self._lock: DaemonLock | None = None
        self._retry: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.on_connected: Callable[[Store], Awaitable[None]] | None = None
        """Told once the store is connected (the daemon attaches its leases on PostgreSQL)."""
        self.error: str | None = None
        """Why the state is not connected (None once it is)."""

    @property
    def store(self) -> Store | None:
        return self.service.store

    @property
    def connected(self) -> bool:
        return self.service.store is not None

    async def start(self) -> None:
        """Connect now, or start retrying in the background when unreachable; misconfiguration raises (exit 2)."""
        try:
            await self._connect()
        except StateUnavailable as exc:  # (`open_state` logged it)
            self.error = str(exc)
            self._retry = asyncio.get_running_loop().create_task(self._keep_trying(), name="state-retry")
            self._retry.add_done_callback(log_task_crash)

    async def _connect(self) -> None:
        store = await self._open()
        assert store is not None  # `create` mode always gives a store
        try:
            self._lock = await store.acquire_daemon_lock()  # DaemonLockHeld: exit 2 naming the first daemon
        except BaseException:
            await store.close()
            raise
        self.service.store = store
        self.error = None
        self._connected.set()
        if self.on_connected is not None:
            try:
                await self.on_connected(store)
            except Exception as exc:  # connected all the same: retrying would open a second store beside this one
                log.exception("run_crashed", error=repr(exc), operation="state_connected")

    async def wait_connected(self) -> None:
        """Until the state is connected (bound it with a timeout)."""
        await self._connected.wait()

    async def _keep_trying(self) -> None:
        delay_s = BACKOFF_FIRST_S
        while True:
            await self._sleep(delay_s * random.uniform(0.8, 1.2))
            try:
                await self._connect()
            except StateUnavailable as exc:
                self.error = str(exc)
                delay_s = min(BACKOFF_MAX_S, delay_s * 2)
            except Exception as exc:  # misconfigured after all (a password changed): keep the daemon serving
                self.error = str(exc)
                log.error("state_unavailable", error=self.error)
                delay_s = BACKOFF_MAX_S
            else:
                log.info("state_connected", location=self.service.store.info.location if self.service.store else "")
                return

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
        store = self.service.store
        if self._lock is not None:
            with contextlib.suppress(Exception):
                await self._lock.release()
            self._lock = None
        if store is not None:
            self.service.store = None
            with contextlib.suppress(Exception):
                await store.close()


class StoreChangeDigests:
    """`ChangeDigests` kept in the journal: each policy's last `run_on_change` digest survives restarts."""

    __slots__ = ("link",)

    def __init__(self, link: StateLink) -> None:
        self.link = link

    async def last(self, key: ChangeKey) -> str | None:
        store = self.link.store
        if store is None:
            raise StateUnavailable(self.link.error or "the state is not connected", location="")
        return await store.get_change_digest(Scope(*key))

    async def record(self, key: ChangeKey, digest: str, run_id: str) -> None:
        store = self.link.store
        if store is None:
            raise StateUnavailable(self.link.error or "the state is not connected", location="")
        await store.put_change_digest(Scope(*key), digest, run_id=run_id)
