"""`ges-retention daemon` as a process: the service and the daemon wired together, the signals, the exit code.

SIGTERM/SIGINT: no new runs or deletions, in-flight deletions finish within the grace period, `daemon_stopped`,
exit 0. SIGHUP: reload the policy file now. SIGUSR1: run every enabled policy not running (`run_all_now`). A crash in
the SIGUSR1 handler is logged (`run_crashed`) and the daemon goes on.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from ges_retention.daemon import Daemon
from ges_retention.daemon_state import StateLink
from ges_retention.exit_codes import ExitCode
from ges_retention.metrics import Metrics
from ges_retention.replicas import shared_state
from ges_retention.service import Service
from ges_retention.settings import Settings

__all__ = ["run_daemon"]

log = structlog.get_logger("ges_retention.daemon")


def run_daemon(path: Path, settings: Settings) -> int:
    """`ges-retention daemon`: exit 0 on a clean shutdown, 2 if the file is invalid at start or the port is busy."""
    return asyncio.run(_daemon_main(path, settings))


def signal_handlers(daemon: Daemon, stop: asyncio.Event) -> dict[int, Callable[[], Any]]:
    """What each signal does to a running daemon (`stop` is set on SIGTERM/SIGINT)."""

    def on_stop(signum: int) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()
        daemon.request_stop()

    def on_usr1() -> None:
        try:
            daemon.run_all_now("signal")
        except Exception as exc:
            log.exception("run_crashed", error=repr(exc), trigger="signal")

    return {
        signal.SIGTERM: lambda: on_stop(signal.SIGTERM),
        signal.SIGINT: lambda: on_stop(signal.SIGINT),
        signal.SIGHUP: daemon.watcher.request_reload,
        signal.SIGUSR1: on_usr1,
    }


async def _daemon_main(path: Path, settings: Settings) -> int:
    metrics = Metrics()
    loop = asyncio.get_running_loop()
    service = Service(settings, metrics=metrics)  # the daemon opens the state itself: it may retry (`StateLink`)
    async with service as runner:
        daemon = Daemon(
            path,
            settings,
            runner,
            metrics=metrics,
            authenticated=service.readiness.authenticated,
            state=StateLink(service),
            shared_state=shared_state(settings),
        )
        stop = asyncio.Event()
        handlers = signal_handlers(daemon, stop)
        for signum, handler in handlers.items():
            loop.add_signal_handler(signum, handler)
        try:
            try:
                started = await daemon.start()
            except BaseException:  # invalid at start (exit 2): give back what it took (the state, its lock)
                await daemon.stop()
                raise
            if started:
                await stop.wait()
            await daemon.stop()
        finally:
            for signum in handlers:
                loop.remove_signal_handler(signum)
        log.info("daemon_stopped", path=str(path))
    return ExitCode.OK
