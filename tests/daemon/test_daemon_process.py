"""`ges-retention daemon` as a real process: real signals, real listener, exit codes."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
from daemon_helpers import POLICY, PROJECT, start_daemon

from ges_retention.emulator.app import RunningEmulator


def count(emulator: RunningEmulator, prefix: str) -> int:
    return sum(1 for b in emulator.store.backups(PROJECT) if b["graph_name"].startswith(prefix))


async def test_daemon_signals_and_clean_shutdown(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    daemon = await start_daemon(policy, emulator)
    try:
        await daemon.wait_event("daemon_started")
        # The on-demand policy ran at start.
        finished = await daemon.wait_event("run_finished")
        assert finished["outcome"] == "ok"
        assert count(emulator, "staging-") == 2
        prod_before = count(emulator, "prod-")

        daemon.proc.send_signal(signal.SIGHUP)
        await daemon.wait_event("policy_loaded", count=2)
        await daemon.wait_event("run_finished", count=2)  # reload runs the on-demand policies again
        assert daemon.named("run_started")[1]["trigger"] == "file"

        daemon.proc.send_signal(signal.SIGUSR1)
        await daemon.wait_event("run_finished", count=3)
        started = daemon.named("run_started")[2]
        assert started["trigger"] == "signal" and started["policies"] == ["prod", "staging"]
        assert count(emulator, "prod-") < prod_before

        listening = daemon.named("http_listening")[0]["url"]
        async with aiohttp.ClientSession() as session, session.get(f"{listening}/healthz") as r:
            assert r.status == 200
    finally:
        code = await daemon.stop(signal.SIGTERM)
    assert code == 0
    assert daemon.named("shutdown_requested") and daemon.named("daemon_stopped")
    assert not any("Traceback" in line for line in daemon.lines)


async def test_sigterm_mid_run_drains_and_exits_0(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    daemon = await start_daemon(policy, emulator, GES_RETENTION_CONCURRENCY="2")
    try:
        await daemon.wait_event("run_finished")
        emulator.config.latency_ms = 40
        daemon.proc.send_signal(signal.SIGUSR1)
        await daemon.wait_event("backup_deleted", count=len(daemon.named("backup_deleted")) + 3)
    finally:
        code = await daemon.stop(signal.SIGTERM)
    assert code == 0
    last = daemon.named("run_finished")[-1]
    assert last["outcome"] == "interrupted"
    logged = {e["backup_id"] for e in daemon.named("backup_deleted")}
    assert logged == set(emulator.stats.deleted_ids), "every started deletion finished and was logged"
    assert daemon.named("daemon_stopped")


async def test_invalid_file_at_start_is_exit_2(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("last: 2", "last: -2"))
    daemon = await start_daemon(policy, emulator)
    code = await daemon.stop(None)
    assert code == 2
    assert any("policies[1].keep.last" in line for line in daemon.lines)
    assert emulator.stats.to_json()["total_requests"] == 0
