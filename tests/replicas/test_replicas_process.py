"""Several `ges-retention daemon` processes on one PostgreSQL state (issue 15's "done means").

Real processes, real signals (SIGUSR1, SIGTERM, SIGSTOP/SIGCONT), a real PostgreSQL started by the tests and
restarted by one of them, the emulator in this process (its hold gate keeps a run mid-way; its per-client stats count
each daemon's DELETEs). Leases last `TTL_S` (3 s). Every wait is on log events with a bounded timeout; the measured
takeover times are printed (`-s`), never asserted.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from replicas_helpers import (
    POLICIES,
    TTL_S,
    Replica,
    add_old_backups,
    balanced,
    expected_ids,
    policy_text,
    start_replica,
    wait_until,
)

from ges_retention.emulator.app import RunningEmulator
from subprocess_env import emulator_env
from support.emulators import PROJECT
from support.postgres import PgServer
from support.processes import run_cli

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text())
    return path


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    """Started replicas are stopped at the end whatever happened (a stopped one is continued first)."""
    started: list[Replica] = []
    yield started
    for replica in started:
        if replica.process.proc.returncode is None:
            os.kill(replica.process.proc.pid, signal.SIGCONT)
            await replica.process.stop(signal.SIGTERM)


def remaining(emulator: RunningEmulator) -> set[str]:
    return {b["id"] for b in emulator.store.backups(PROJECT)}


def deletes(emulator: RunningEmulator, replica: Replica) -> int:
    assert replica.holder is not None
    return emulator.stats.client_count(replica.holder, "delete_backup")


async def run_all(replica: Replica) -> None:
    """`POST /v1/runs` until it starts a run, and that run's end (a run just taken over may still be going)."""
    try:
        await _run_all(replica)
    except TimeoutError:
        raise AssertionError(f"{replica.name} never ran: {replica.process.lines[-12:]}") from None


async def _run_all(replica: Replica) -> None:
    async with asyncio.timeout(90):
        await replica.idle()
        status, body = await replica.post("/v1/runs")
        assert status == 202, body
        await replica.process.wait_event("run_finished", run_id=body["run_id"], timeout_s=90)


def run_policies(replica: Replica, trigger: str) -> list[str]:
    return [p for e in replica.runs() if e["trigger"] == trigger for p in e["policies"]]


async def test_each_policy_runs_once_per_trigger_and_sigterm_hands_the_leases_over(
    emulator: RunningEmulator, pg_url: str, policy: Path, replicas: list[Replica]
) -> None:
    a = await start_replica("a", policy, emulator, pg_url)
    replicas.append(a)
    b = await start_replica("b", policy, emulator, pg_url)
    replicas.append(b)
    joined = await wait_until([a, b], lambda: balanced([a, b]), 2 * TTL_S + 10, "the leases spread")
    print(f"\nb joined and got its share in {joined:.2f} s (TTL {TTL_S:g} s)")
    assert len(a.held()) == len(b.held()) == len(POLICIES) // 2

    for replica in (a, b):  # SIGUSR1 to both: every policy once, by its holder
        replica.process.proc.send_signal(signal.SIGUSR1)
    for replica in (a, b):
        await replica.process.wait_event("run_finished", timeout_s=60)
    assert sorted(run_policies(a, "signal") + run_policies(b, "signal")) == POLICIES
    assert set(run_policies(a, "signal")) == a.held() and set(run_policies(b, "signal")) == b.held()
    skipped = {e["policy"]: e for e in a.process.named("run_skipped", trigger="signal")}
    assert set(skipped) == b.held() and {e["reason"] for e in skipped.values()} == {"lease_held"}
    assert {e.get("holder") for e in skipped.values()} <= {b.holder, None}  # as of a's last lease round
    assert remaining(emulator) == expected_ids()
    assert deletes(emulator, a) > 0 and deletes(emulator, b) > 0
    assert deletes(emulator, a) + deletes(emulator, b) == len(emulator.stats.deleted_ids)
    assert len(set(emulator.stats.deleted_ids)) == len(emulator.stats.deleted_ids)

    theirs = sorted(b.held())[0]
    status, body = await a.post(f"/v1/runs?policy={theirs}")
    assert (status, body["reason"], body["holder"]) == (409, "lease_held", b.holder)
    views = {v["name"]: v["lease_holder"] for v in (await a.get("/v1/policies"))["policies"]}
    assert views == {p: (a.holder if p in a.held() else b.holder) for p in POLICIES}

    for replica in (a, b):  # POST /v1/runs (all) to both: again every policy once
        await replica.idle()
        status, body = await replica.post("/v1/runs")
        assert status == 202, body
    for replica in (a, b):
        await replica.process.wait_event("run_finished", count=2, timeout_s=60)
    assert sorted(run_policies(a, "http") + run_policies(b, "http")) == POLICIES

    # A one-shot `run` beside the daemons waits for the leases they keep, then exits 1 naming a holder.
    env = emulator_env(emulator.url, GES_RETENTION_STATE=pg_url, GES_RETENTION_STATE_LOCK_TIMEOUT_S="0.5")
    oneshot = await run_cli(["run", str(policy)], env)
    assert oneshot.code == 1, oneshot.stderr
    assert any(r.holder is not None and r.holder in oneshot.stderr for r in (a, b)), oneshot.stderr

    # SIGTERM b while it runs one policy: its idle leases move at once, the running one once its in-flight DELETEs
    # end, and a resumes that run (trigger `takeover`).
    busy = sorted(b.held())[0]
    add_old_backups(emulator, busy, 4)
    holds = emulator.holds
    await holds.hold("delete_backup")
    await b.idle()
    status, body = await b.post(f"/v1/runs?policy={busy}")
    assert status == 202, body
    async with asyncio.timeout(30):
        await holds.wait_until_waiting("delete_backup", 2)
    b.process.proc.send_signal(signal.SIGTERM)
    idle = set(POLICIES) - {busy}
    moved = await wait_until([a, b], lambda: a.held() == idle, 15, "b's idle leases move to a")
    print(f"SIGTERM mid-run: the idle leases moved in {moved:.2f} s")
    assert busy in b.held()  # still running: its requests are in flight
    await holds.unhold("delete_backup")

    def resumed() -> bool:
        return any(e["trigger"] == "takeover" and e["policies"] == [busy] for e in a.runs())

    took = await wait_until([a], resumed, 15, "a resumes b's running policy")
    print(f"SIGTERM mid-run: the running policy resumed on the other daemon {took:.2f} s after its requests ended")
    (takeover,) = [e for e in a.runs() if e["trigger"] == "takeover"]
    await a.process.wait_event("run_finished", run_id=takeover["run_id"], timeout_s=60)
    assert await b.process.stop(None) == 0
    assert b.process.named("policy_finished", policy=busy)[-1]["outcome"] == "interrupted"
    assert a.held() == set(POLICIES)
    assert remaining(emulator) == expected_ids()
    assert Counter(emulator.stats.deleted_ids).most_common(1)[0][1] == 1


async def test_a_stopped_holder_is_taken_over_and_sends_nothing_once_it_resumes(
    emulator: RunningEmulator, pg_url: str, policy: Path, replicas: list[Replica]
) -> None:
    a = await start_replica("a", policy, emulator, pg_url)
    replicas.append(a)
    await wait_until([a], lambda: a.held() == set(POLICIES), 2 * TTL_S + 10, "a alone holds everything")
    b = await start_replica("b", policy, emulator, pg_url)
    replicas.append(b)
    await wait_until([a, b], lambda: balanced([a, b]), 2 * TTL_S + 10, "the leases spread")
    mine = sorted(a.held())[0]

    holds = emulator.holds
    await holds.hold("delete_backup")
    status, _ = await a.post(f"/v1/runs?policy={mine}")
    assert status == 202
    async with asyncio.timeout(30):
        await holds.wait_until_waiting("delete_backup", 2)  # a is mid-run: two DELETEs in flight
    os.kill(a.process.proc.pid, signal.SIGSTOP)
    stopped_at = asyncio.get_running_loop().time()
    await holds.unhold("delete_backup")  # its in-flight requests are answered; a reads them once continued

    def taken_over() -> bool:
        return any(e["trigger"] == "takeover" and e["policies"] == [mine] for e in b.runs())

    took = await wait_until([b], taken_over, TTL_S + 5 + 10, "b takes the policy over")
    print(f"\nholder stopped mid-run: taken over in {took:.2f} s (TTL {TTL_S:g} s)")
    (takeover,) = [e for e in b.runs() if e["trigger"] == "takeover"]
    finished = await b.process.wait_event("run_finished", run_id=takeover["run_id"], timeout_s=60)
    print(
        f"stopped holder's run completed by the new holder {asyncio.get_running_loop().time() - stopped_at:.2f} s "
        "after the stop"
    )
    assert finished["outcome"] == "ok", finished

    before = deletes(emulator, a)
    os.kill(a.process.proc.pid, signal.SIGCONT)
    lost = await a.process.wait_event("lease_lost", policy=mine, timeout_s=30)
    assert lost["level"] == "error"
    ended = await a.process.wait_event("policy_finished", policy=mine, timeout_s=30)
    assert ended["outcome"] == "interrupted"
    await a.process.wait_event("run_finished", timeout_s=30)
    assert deletes(emulator, a) == before, "the old holder sent a DELETE after it lost the lease"

    # The rest runs on both (leases spread again first), and the result is a single clean daemon's.
    await wait_until([a, b], lambda: balanced([a, b]), 2 * TTL_S + 10, "the leases spread again")
    runs = {r.name: len(r.process.named("run_finished")) for r in (a, b)}
    for replica in (a, b):
        assert (await replica.post("/v1/runs"))[0] == 202
    for replica in (a, b):
        await replica.process.wait_event("run_finished", count=runs[replica.name] + 1, timeout_s=60)
    assert remaining(emulator) == expected_ids()
    assert Counter(emulator.stats.deleted_ids).most_common(1)[0][1] == 1


async def test_postgres_restarted_mid_run_deletes_nothing_twice_and_the_leases_come_back(
    emulator: RunningEmulator, pg_server: PgServer, pg_url: str, policy: Path, replicas: list[Replica]
) -> None:
    a = await start_replica("a", policy, emulator, pg_url)
    replicas.append(a)
    b = await start_replica("b", policy, emulator, pg_url)
    replicas.append(b)
    await wait_until([a, b], lambda: balanced([a, b]), 2 * TTL_S + 10, "the leases spread")

    holds = emulator.holds
    await holds.hold("delete_backup")
    for replica in (a, b):
        replica.process.proc.send_signal(signal.SIGUSR1)
    async with asyncio.timeout(30):
        await holds.wait_until_waiting("delete_backup", 2)
    await asyncio.to_thread(pg_server.restart)
    await holds.unhold("delete_backup")
    for replica in (a, b):
        await replica.process.wait_event("run_finished", timeout_s=60)
        assert replica.process.proc.returncode is None, "a daemon died"

    def quiet() -> bool:  # the leases spread again, and no run (a takeover of an expired lease, say) is going
        return balanced([a, b]) and all(
            len(r.process.named("run_started")) == len(r.process.named("run_finished")) for r in (a, b)
        )

    await wait_until([a, b], quiet, 2 * TTL_S + 30, "the leases come back and the runs end")
    for replica in (a, b):  # what the interrupted runs left is done by the next ones
        await run_all(replica)
    assert remaining(emulator) == expected_ids()
    assert Counter(emulator.stats.deleted_ids).most_common(1)[0][1] == 1
    answers = emulator.stats.counts.get("delete_backup", {})
    assert set(answers) == {"200"}, f"a DELETE of a backup already deleted: {answers}"
    for replica in (a, b):
        assert await replica.process.stop(signal.SIGTERM) == 0
    # With no daemon left, a one-shot `run` takes the leases itself, runs every policy and gives them back.
    add_old_backups(emulator, "p3", 2)
    oneshot = await run_cli(["run", str(policy)], emulator_env(emulator.url, GES_RETENTION_STATE=pg_url))
    assert oneshot.code == 0, oneshot.stderr
    assert remaining(emulator) == expected_ids()
    # No crash: both served to the end and stopped cleanly. (asyncpg itself warns, with its traceback, about the
    # pool connections the restart cut; that is a library's warning, not a crash.)
    crashes = [e for r in (a, b) for e in r.process.events if e["event"] in ("run_crashed", "lease_manager_failed")]
    assert not crashes, crashes[:3]
