"""`ges-retention daemon` as a real process: real signals, real listener, real file edits, exit codes.

"Runs nothing" is proved by the emulator's own counts (its control API), not by the daemon's word.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
from daemon_helpers import POLICY, PROJECT, DaemonProcess, start_daemon

from ges_retention.emulator.app import RunningEmulator


def count(emulator: RunningEmulator, prefix: str) -> int:
    return sum(1 for b in emulator.store.backups(PROJECT) if b["graph_name"].startswith(prefix))


async def emulator_stats(emulator: RunningEmulator) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{emulator.url}/_emulator/stats") as r:
        stats: dict[str, Any] = await r.json()
        return stats


async def edit(daemon: DaemonProcess, policy: Path, text: str) -> None:
    """Write the file and wait until the daemon loaded it."""
    loaded = len(daemon.named("policy_loaded"))
    policy.write_text(text)  # noqa: ASYNC240 - a small file; the write is the event under test
    await daemon.wait_event("policy_loaded", count=loaded + 1)


def reordered(text: str) -> str:
    head, rest = text.split("  - name: prod\n")
    prod, staging = rest.split("  - name: staging\n")
    return head + "  - name: staging\n" + staging + "  - name: prod\n" + prod


async def test_daemon_signals_and_clean_shutdown(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    daemon = await start_daemon(policy, emulator)
    try:
        await daemon.wait_event("daemon_started")
        never = daemon.named("policy_never_runs")
        assert [(e["policy"], e["level"]) for e in never] == [("staging", "warning")]
        prod_before = count(emulator, "prod-")

        daemon.proc.send_signal(signal.SIGHUP)
        await daemon.wait_event("policy_loaded", count=2)  # a reload runs nothing

        daemon.proc.send_signal(signal.SIGUSR1)
        await daemon.wait_event("run_finished")
        started = daemon.named("run_started")[0]
        assert started["trigger"] == "signal" and started["policies"] == ["prod", "staging"]
        assert count(emulator, "prod-") < prod_before
        assert count(emulator, "staging-") == 2

        listening = daemon.named("http_listening")[0]["url"]
        async with aiohttp.ClientSession() as session, session.get(f"{listening}/healthz") as r:
            assert r.status == 200
    finally:
        code = await daemon.stop(signal.SIGTERM)
    assert code == 0
    assert len(daemon.named("run_started")) == 1
    assert daemon.named("shutdown_requested") and daemon.named("daemon_stopped")
    assert not any("Traceback" in line for line in daemon.lines)


async def test_sigterm_mid_run_drains_and_exits_0(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    daemon = await start_daemon(policy, emulator, GES_RETENTION_CONCURRENCY="2")
    stop_signal: signal.Signals | None = signal.SIGTERM
    try:
        await daemon.wait_event("daemon_started")
        # The run is held mid-way at an explicit gate: three deletions go through, the next ones wait in flight.
        holds = emulator.holds
        await holds.hold("delete_backup")
        await holds.release("delete_backup", 3)
        daemon.proc.send_signal(signal.SIGUSR1)
        await daemon.wait_event("backup_deleted", count=3)
        async with asyncio.timeout(20):
            await holds.wait_until_waiting("delete_backup", 1)
        daemon.proc.send_signal(signal.SIGTERM)
        stop_signal = None  # sent once: a second SIGTERM is not what this test is about
        await daemon.wait_event("shutdown_requested")
    finally:
        await emulator.holds.unhold("delete_backup")  # the deletions in flight finish; no new one starts
        code = await daemon.stop(stop_signal)
    assert code == 0
    assert len(daemon.named("backup_deleted")) >= 4, "the deletion held in flight at SIGTERM finished too"
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


async def test_a_busy_port_is_exit_2_with_one_line_and_no_run(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("    keep: {last: 2}", "    keep: {last: 2}\n    run_on_change: true"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        daemon = await start_daemon(policy, emulator, GES_RETENTION_HTTP=f"127.0.0.1:{port}")
        code = await daemon.stop(None)
    assert code == 2
    errors = [line for line in daemon.lines if "error" in line.lower()]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0] and "GES_RETENTION_HTTP" in errors[0]
    assert not daemon.named("run_started")
    assert (await emulator_stats(emulator))["total_requests"] == 0


async def test_edits_that_ask_for_no_run_run_nothing(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    daemon = await start_daemon(policy, emulator)
    try:
        await daemon.wait_event("daemon_started")
        await edit(daemon, policy, "# reviewed by ops\n" + POLICY)  # a comment
        await edit(daemon, policy, reordered(POLICY))  # a reordering
        await edit(daemon, policy, POLICY.replace("last: 3, daily: 7", "last: 4, daily: 7"))  # another policy
        await edit(daemon, policy, POLICY.replace("keep: {last: 2}", "keep: {last: 1}"))  # an unscheduled one
        # Commenting out a schedule to pause a policy (round 1 ran it at once).
        await edit(daemon, policy, POLICY.replace('    schedule: "30 2 * * *"', '    # schedule: "30 2 * * *"'))
    finally:
        code = await daemon.stop(signal.SIGTERM)
    assert code == 0
    assert not daemon.named("run_started")
    stats = await emulator_stats(emulator)
    assert (stats["total_requests"], stats["deleted_count"]) == (0, 0)
    assert {e["policy"] for e in daemon.named("policy_never_runs")} == {"prod", "staging"}


PAUSED = (
    POLICY.replace("  - name: prod\n", "  - name: prod\n    enabled: false\n    run_on_change: true\n")
    + "    run_on_change: true\n"  # staging
)


async def test_a_paused_policy_is_never_run(emulator: RunningEmulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(PAUSED)
    prod_before = count(emulator, "prod-")
    daemon = await start_daemon(policy, emulator)
    try:
        await daemon.wait_event("run_finished")  # staging: run_on_change, no digest recorded yet
        daemon.proc.send_signal(signal.SIGUSR1)
        await daemon.wait_event("run_finished", count=2)
        assert [e["policies"] for e in daemon.named("run_started")] == [["staging"], ["staging"]]
        assert {"policy": "prod", "reason": "paused"}.items() <= daemon.named("run_skipped")[0].items()

        url = daemon.named("http_listening")[0]["url"]
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/v1/runs?policy=prod") as r:
                assert r.status == 409
                assert await r.json() == {"error": "policy prod is paused", "reason": "paused"}
            async with session.post(f"{url}/v1/runs") as r:
                assert r.status == 202
                assert {"policy": "prod", "reason": "paused"} in (await r.json())["skipped"]
            await daemon.wait_event("run_finished", count=3)
            async with session.get(f"{url}/v1/policies") as r:
                prod = next(p for p in (await r.json())["policies"] if p["name"] == "prod")
        assert (prod["enabled"], prod["next_run"], prod["last_run"]) == (False, None, None)
        # A new definition of a paused run_on_change policy: still nothing.
        await edit(daemon, policy, PAUSED.replace("last: 3, daily: 7", "last: 1"))
    finally:
        code = await daemon.stop(signal.SIGTERM)
    assert code == 0
    assert all("prod" not in e["policies"] for e in daemon.named("run_started"))
    assert count(emulator, "prod-") == prod_before
    stats = await emulator_stats(emulator)
    assert stats["deleted_count"] > 0 and not [i for i in stats["deleted_ids"] if i.startswith("prod-")]


async def test_run_on_change_runs_at_first_start_and_once_per_change_of_its_own_definition(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    text = POLICY + "    run_on_change: true\n"  # staging
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    daemon = await start_daemon(policy, emulator)
    try:
        await daemon.wait_event("run_finished")
        deleted_at_start = (await emulator_stats(emulator))["deleted_count"]
        assert deleted_at_start > 0
        await edit(daemon, policy, "# a comment\n" + text)
        await edit(daemon, policy, text.replace("last: 3, daily: 7", "last: 4, daily: 7"))  # prod's edit
        assert len(daemon.named("run_started")) == 1
        assert (await emulator_stats(emulator))["deleted_count"] == deleted_at_start
        await edit(daemon, policy, text.replace("keep: {last: 2}", "keep: {last: 1}"))
        await daemon.wait_event("run_finished", count=2)
        assert (await emulator_stats(emulator))["deleted_count"] > deleted_at_start
    finally:
        code = await daemon.stop(signal.SIGTERM)
    assert code == 0
    started = daemon.named("run_started")
    assert [(e["trigger"], e["policies"]) for e in started] == [("file", ["staging"])] * 2


async def test_a_crashing_validation_does_not_stop_reloads_or_a_clean_exit(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    daemon = await start_daemon(policy, emulator)
    try:
        await daemon.wait_event("daemon_started")
        # A zone directory crashed validation in round 1 and silently killed the watcher.
        policy.write_text(POLICY.replace("  - name: staging\n", "  - name: staging\n    timezone: Europe\n"))
        await daemon.wait_event("policy_rejected")
        await edit(daemon, policy, POLICY.replace("keep: {last: 2}", "keep: {last: 2}\n    dry_run: true"))
    finally:
        code = await daemon.stop(signal.SIGTERM)
    assert code == 0
    assert daemon.named("daemon_stopped")
    assert "Europe" in daemon.named("policy_rejected")[0]["error"]
