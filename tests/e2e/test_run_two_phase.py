"""Two-phase deletion end to end against the emulator, with a SQLite state: with `confirm_after: 2s` the first run
deletes nothing and records pending rows; a run 2 s later deletes them; a backup kept in between is cancelled, and
one that vanished is `gone`. Time goes through one clock (the runner's and the store's), never a real sleep."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from e2e_helpers import POLICY, PROJECT

from ges_retention.emulator.app import RunningEmulator
from ges_retention.emulator.config import DEFAULT_AK, DEFAULT_SK
from ges_retention.policy_loading import parse_policy_text
from ges_retention.report import iso_utc
from ges_retention.service import Service
from ges_retention.settings import Settings
from ges_retention.state import Scope, open_store, resolve_state_location
from support.logs import capture_events

TWO_PHASE = POLICY.replace("change_budget: unlimited", "change_budget: unlimited, confirm_after: 2s")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _settings(emulator: RunningEmulator, state: Path) -> Settings:
    return Settings(
        _env_file=None,
        endpoint=emulator.url,
        ak=DEFAULT_AK,
        sk=DEFAULT_SK,
        rate_limit=0,
        state=str(state),  # (a SecretStr field: pydantic takes the text)
    )


async def test_pending_then_due_then_deleted_and_a_kept_one_cancelled(
    emulator: RunningEmulator, now: datetime, tmp_path: Path
) -> None:
    clock = Clock(now)
    state = tmp_path / "state.db"
    store = await open_store(resolve_state_location(str(state)), mode="create", clock=clock)
    assert store is not None
    policy_file = parse_policy_text(TWO_PHASE)
    prod = [p for p in policy_file.policies if p.name == "prod"]
    settings = _settings(emulator, state)
    before = {b["id"] for b in emulator.store.backups(PROJECT)}
    try:
        async with Service(settings, store=store, clock=clock) as runner:
            with capture_events() as logs:
                first = await runner.run(policy_file, prod)
            (result,) = first.policies
            pending = result.ids["pending"]
            assert first.exit_code() == 0 and result.outcome == "ok"
            assert len(pending) == result.planned > 3 and result.deleted == 0
            assert {b["id"] for b in emulator.store.backups(PROJECT)} == before, "nothing deleted by the first run"
            events = logs.named("deletion_pending")
            assert len(events) == len(pending)
            assert {e["due_at"] for e in events} == {iso_utc(now + timedelta(seconds=2))}
            scope = Scope("prod", emulator.url, PROJECT)
            rows = {r.backup.backup_id: r for r in await store.active_deletions(scope)}
            assert set(rows) == set(pending) and {r.state for r in rows.values()} == {"pending"}

            clock.now = now + timedelta(seconds=1)  # not yet due: still nothing deleted, no clock restarted
            with capture_events() as logs:
                early = await runner.run(policy_file, prod)
            assert early.policies[0].deleted == 0 and sorted(early.policies[0].ids["pending"]) == sorted(pending)
            assert {e["due_at"] for e in logs.named("deletion_pending")} == {iso_utc(now + timedelta(seconds=2))}

            kept, vanished = pending[0], pending[1]
            await store.put_hold(kept, "restore test on Monday")
            emulator.store.discard_backup(PROJECT, vanished)

            clock.now = now + timedelta(seconds=2)
            with capture_events() as logs:
                second = await runner.run(policy_file, prod)
            (result,) = second.policies
            assert second.exit_code() == 0, second.to_json()
            assert sorted(result.ids["deleted"]) == sorted(set(pending) - {kept, vanished})
            cancelled = {e["backup_id"]: e for e in logs.named("deletion_cancelled")}
            assert cancelled[kept]["reasons"][0] == "held: restore test on Monday"
            assert cancelled[vanished]["reasons"] == ["gone"]
        assert emulator.store.backup(PROJECT, kept) is not None
        assert (await store.why(kept)).records[-1].state == "cancelled"
        assert (await store.why(vanished)).records[-1].state == "gone"
        assert await store.active_deletions(Scope("prod", emulator.url, PROJECT)) == []
    finally:
        await store.close()


async def test_a_dry_run_reports_due_times_and_writes_no_pending_row(
    emulator: RunningEmulator, now: datetime, tmp_path: Path
) -> None:
    clock = Clock(now)
    state = tmp_path / "state.db"
    store = await open_store(resolve_state_location(str(state)), mode="create", clock=clock)
    assert store is not None
    policy_file = parse_policy_text(TWO_PHASE)
    try:
        async with Service(_settings(emulator, state), store=store, clock=clock) as runner:
            summary = await runner.run(policy_file, policy_file.policies, dry_run=True)
        assert all(p.ids["pending"] == [] and p.waiting for p in summary.policies)
        assert await store.active_deletions(Scope("prod", emulator.url, PROJECT)) == []
    finally:
        await store.close()
