"""Chaos run: one `ges-retention run` (a real subprocess) against the emulator while about 20% of the requests fail
(500, 503, connection reset, hang past the request timeout, bursts of 429) and the IAM token expires mid-run.

At the end, checked against the emulator's own record of what it deleted:
- every planned deletion is done, found already gone, or reported failed (`backup_delete_failed`), and the summary's
  counts add up: planned == deleted + already_deleted + failed + not_started;
- no backup outside the plan was deleted: zero kept backups deleted (pinned, overlapping, failed, running ones
  included), and the ids with path tricks were refused, never sent.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from datetime import UTC, datetime

import pytest
from reliability_helpers import (
    IAM_PASSWORD,
    base_env,
    expected_plan,
    issued_tokens,
    record,
    run_cli,
    wait_for,
    write_file,
)

from ges_retention.emulator.app import running_emulator
from ges_retention.emulator.config import DEFAULT_IAM_DOMAIN, DEFAULT_IAM_USER, EmulatorConfig, FaultRates, IamUser
from ges_retention.emulator.store import DAY_MS, Store

PROJECT = "0c4a05e1a2b3c4d5"
# Ids the client must refuse (they cannot be one literal path segment): planned for deletion, never sent.
TRICKY_IDS = ("chaos/../evil", "chaos%2F..%2Fevil", "chaos?x=1#y")
DELETE_FAULTS = FaultRates(error_500=0.05, error_503=0.05, drop=0.04, hang=0.03)  # + bursts of 429: ~20%
LIST_FAULTS = FaultRates(error_500=0.03, error_503=0.03, drop=0.02, hang=0.02)
IAM_FAULTS = FaultRates(error_500=0.05, error_503=0.05, drop=0.05, hang=0.05)
THROTTLED_RATE = 40  # the emulator's per-second limit during a burst of 429s

SIZES = [
    pytest.param(6, 250, 30, id="1500-backups"),
    pytest.param(20, 500, 100, id="10000-backups", marks=[pytest.mark.slow, pytest.mark.timeout(300)]),
]


def policy_text(guarded_graph: str, pinned: list[str]) -> str:
    return f"""\
version: 1
policies:
  - name: chaos
    project_id: {PROJECT}
    keep: {{last: 3, daily: 7, weekly: 4, monthly: 6, ids: {json.dumps(pinned)}}}
    safety: {{max_deletes: 100000, change_budget: unlimited}}
  - name: guard
    project_id: {PROJECT}
    select: {{graphs: {json.dumps([guarded_graph])}}}
    keep: {{last: 1}}
"""


@pytest.mark.parametrize(("graphs", "per_graph", "burst_429s"), SIZES)
async def test_chaos_run_deletes_only_the_plan_and_reports_every_failure(
    graphs: int, per_graph: int, burst_429s: int
) -> None:
    label = f"chaos {graphs * per_graph + len(TRICKY_IDS)} backups"
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    store = Store()
    # Daily backups at a fixed time of day per graph, some manual, failed or running: the plan depends on the
    # backups' own times only (no `within`, no `failed.delete_after`), so it is the same whenever the run plans.
    seeded = store.seed(PROJECT, graphs=graphs, backups_per_graph=per_graph, now_ms=now_ms, seed=7)
    for i, tricky in enumerate(TRICKY_IDS):
        old = now_ms - (per_graph + 40 + i) * DAY_MS
        store.add_backup(PROJECT, {"id": tricky, "graph_id": seeded.graph_ids[1], "start_timestamp": old})
    records = store.backups(PROJECT)
    # Pin five backups that the rules alone would delete; guard graph 0 with an overlapping policy.
    unpinned, _, backups = expected_plan(records, policy_text(seeded.graph_ids[0], []), now)
    pinned = sorted(b.id for b in backups if b.graph_id == seeded.graph_ids[2] and b.id in unpinned)[:5]
    policy = policy_text(seeded.graph_ids[0], pinned)
    delete, keep, _ = expected_plan(records, policy, now)
    guarded = {b.id for b in backups if b.graph_id == seeded.graph_ids[0]}
    assert len(pinned) == 5 and guarded <= keep and set(pinned) <= keep and set(TRICKY_IDS) <= delete
    assert len(delete) > 0.7 * len(records)
    write_file("policy.yaml", policy)

    config = EmulatorConfig(
        project_ids=[PROJECT],
        access_keys=[],
        tokens={},
        iam_users=[IamUser(DEFAULT_IAM_DOMAIN, DEFAULT_IAM_USER, IAM_PASSWORD)],
        token_lifetime_s=3.0,
        hang_s=1.0,
        seed=11,
        faults={"delete_backup": DELETE_FAULTS, "list_backups": LIST_FAULTS, "iam_token": IAM_FAULTS},
    )
    skew = [0.0]  # the emulator's wall clock runs ahead by this: a jump expires every token it issued

    async with running_emulator(store=store, config=config, clock=lambda: time.time() + skew[0]) as emulator:
        stats = emulator.stats
        injected: list[str] = []

        def throttled() -> int:
            return stats.count("delete_backup", 429)

        def deleted_share(share: float) -> bool:
            return len(stats.deleted_ids) >= share * len(delete)

        def throttled_since(before: int) -> bool:
            return throttled() >= before + burst_429s

        async def chaos() -> None:
            """Mid-run events, each at a share of the planned deletions done: bursts of 429s, token expiry."""
            steps = [(0.25, "429"), (0.33, "expire"), (0.55, "429"), (0.66, "expire"), (0.85, "429")]
            for share, action in steps:
                await wait_for(functools.partial(deleted_share, share), 120)
                if action == "expire":
                    skew[0] += 3600.0
                else:
                    before = throttled()
                    config.rate_limit_per_s = THROTTLED_RATE
                    try:
                        await wait_for(functools.partial(throttled_since, before), 30)
                    finally:
                        config.rate_limit_per_s = 0
                injected.append(action)

        env = base_env(
            GES_RETENTION_ENDPOINT=emulator.url,
            GES_RETENTION_IAM_ENDPOINT=emulator.url,
            GES_RETENTION_IAM_USER=DEFAULT_IAM_USER,
            GES_RETENTION_IAM_PASSWORD=IAM_PASSWORD,
            GES_RETENTION_IAM_DOMAIN=DEFAULT_IAM_DOMAIN,
            GES_RETENTION_RATE_LIMIT="0",
            GES_RETENTION_CONCURRENCY="16",
            GES_RETENTION_MAX_ATTEMPTS="5",
            GES_RETENTION_BACKOFF_MAX_S="0.05",
            GES_RETENTION_REQUEST_TIMEOUT_S="0.5",
            GES_RETENTION_PAGE_SIZE="500",
        )
        controller = asyncio.create_task(chaos())
        started = time.monotonic()
        result = await run_cli(
            ["run", "policy.yaml", "--format", "json"],
            env,
            timeout_s=240,
            extra_secrets=lambda: issued_tokens(emulator),
        )
        duration = time.monotonic() - started
        controller.cancel()
        await asyncio.gather(controller, return_exceptions=True)
        # Hung requests answer after `hang_s`, deletion included: let them land before looking at the store.
        await wait_for(lambda: stats.in_flight == 0, 10)
        current = {r["id"] for r in store.backups(PROJECT)}
        stats_json = stats.to_json()

    summary = json.loads(result.stdout)
    assert result.code == 1, result.stderr[-3000:]  # the tricky ids failed: some deletions failed
    assert injected == ["429", "expire", "429", "expire", "429"], "the chaos happened mid-run"

    deleted_on_server = list(stats.deleted_ids)
    gone = set(deleted_on_server)
    planned = {e["backup_id"] for e in result.events("backup_expired")}
    reported_deleted = {e["backup_id"] for e in result.events("backup_deleted")}
    already = {e["backup_id"] for e in result.events("backup_already_deleted")}
    failures = result.events("backup_delete_failed")
    failed = {e["backup_id"] for e in failures}

    # The worst failure: a backup that should have been kept was deleted. Zero.
    kept_deleted = keep & gone
    record(f"{label}: kept backups deleted", len(kept_deleted))
    assert not kept_deleted
    assert len(deleted_on_server) == len(gone), "no backup deleted twice"
    assert gone <= delete, "nothing outside the plan was deleted"
    assert not gone & set(TRICKY_IDS) and set(TRICKY_IDS) <= failed, "path tricks refused, reported, never sent"

    # The run planned exactly the planner's plan, and accounted for every planned deletion.
    assert planned == delete
    assert result.events("listing_failed") == []
    assert summary["planned"] == len(delete)
    assert summary["not_started"] == 0
    assert summary["planned"] == summary["deleted"] + summary["already_deleted"] + summary["failed"]
    assert (summary["deleted"], summary["already_deleted"], summary["failed"]) == (
        len(reported_deleted),
        len(already),
        len(failures),
    )
    assert reported_deleted | already | failed == delete
    assert not (reported_deleted & already or reported_deleted & failed or already & failed)
    assert reported_deleted <= gone and already <= gone, "what the run says it deleted is gone"
    # The second worst failure, silently not deleting: everything not reported failed is gone.
    assert delete - failed <= gone
    assert current == keep | (failed - gone)
    for event in failures:
        assert {"status", "error_code", "error", "attempts", "run_id", "policy"} <= event.keys()
    finished = result.events("run_finished")
    assert len(finished) == 1 and finished[0]["outcome"] == "partial"

    # The faults really happened, the token really expired and was renewed mid-run.
    faults = stats_json["faults"]
    expired = sum(stats.count(op, 401) for op in ("delete_backup", "list_backups"))
    logins = stats.count("iam_token", 201)
    throttled_total = stats.count("delete_backup", 429) + stats.count("list_backups", 429)
    assert sum(faults.get("delete_backup", {}).values()) > 0.1 * len(delete)
    assert expired >= 2 and logins >= 3, (expired, logins)
    assert throttled_total >= 3 * burst_429s
    assert result.events("request_throttled")

    ges_requests = sum(stats.count(op) for op in ("delete_backup", "list_backups"))
    injected_total = sum(sum(kinds.values()) for kinds in faults.values()) + throttled_total + expired
    record(f"{label}: planned deletions", len(delete))
    record(f"{label}: deleted", len(gone))
    record(f"{label}: already deleted (a hung attempt had done it)", len(already))
    record(f"{label}: reported failed", len(failures))
    record(f"{label}: kept", len(keep))
    record(f"{label}: requests (GES)", ges_requests)
    record(f"{label}: faults injected (all kinds, incl. 429 and expired-token 401)", injected_total)
    for operation, kinds in faults.items():
        for kind, count in kinds.items():
            record(f"{label}: faults injected: {operation} {kind}", count)
    record(f"{label}: faults injected: 429", throttled_total)
    record(f"{label}: faults injected: 401 expired token", expired)
    record(f"{label}: IAM logins", logins)
    record(f"{label}: run duration ms", int(duration * 1000))
