"""Settled reloads in-process: a half-written file is never acted on, renames and symlink swaps load, an unreadable
file is a warning, and no exception stops the watcher. The settle period goes through the harness's seam: a test
decides what the file holds between the two reads of a settle."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import pytest
from inprocess_harness import PROJECT, policy_text, running_harness, wait_for_event

from ges_retention import policy_watch
from ges_retention.policy_loading import PolicyFile, parse_policy_text
from support.logs import capture_events

# staging runs on change, and comes first, so that a prefix of the file cut before its `select` is valid on its own:
# a staging policy selecting every graph (prod's too) and keeping 1 per graph, and no prod policy at all.
FULL = f"""\
version: 1
policies:
  - name: staging
    project_id: {PROJECT}
    run_on_change: true
    keep: {{last: 1}}
    select: {{graphs: ["staging-*"]}}
    safety: {{max_deletes: 1000, change_budget: unlimited}}
  - name: prod
    project_id: {PROJECT}
    schedule: "30 2 * * *"
    select: {{graphs: ["prod-*"]}}
    keep: {{last: 3, daily: 7}}
    safety: {{max_deletes: 1000, change_budget: unlimited}}
"""
PREFIX = FULL[: FULL.index("    select:")]


def test_the_prefix_alone_is_a_valid_and_dangerous_file() -> None:
    (staging,) = parse_policy_text(PREFIX).policies
    assert staging.select.graphs == ["*"] and staging.keep.last == 1


async def test_a_file_completed_within_the_settle_period_is_loaded_whole_and_only_whole(tmp_path: Path) -> None:
    async with running_harness(tmp_path) as h:
        prod_before = len(h.graph_backups("prod-"))
        # The writer finishes the file while the daemon waits between its two reads.
        h.settle_hooks.append(lambda: h.path.write_text(FULL))
        with capture_events() as logs:
            h.path.write_text(PREFIX)
            await wait_for_event(logs, "run_finished")
        await h.settle()
        assert [e["event"] for e in logs].count("policy_loaded") == 1
        assert h.daemon.policy_file is not None
        assert h.daemon.policy_file.digest == hashlib.sha256(FULL.encode()).hexdigest()
        assert len(h.graph_backups("prod-")) == prod_before, "the prefix would have deleted prod backups"
        deleted = h.emulator.stats.deleted_ids
        assert deleted and all(backup_id.startswith("staging-") for backup_id in deleted)


async def test_the_transient_empty_file_of_truncate_then_write_is_no_reload_error(tmp_path: Path) -> None:
    async with running_harness(tmp_path) as h:
        h.settle_hooks.append(lambda: h.path.write_text(policy_text(prod_schedule="0 5 * * *")))
        with capture_events() as logs:
            h.path.write_text("")
            await wait_for_event(logs, "policy_loaded")
        assert not [e for e in logs if e["event"] == "policy_rejected"]
        assert h.metrics.reload_errors._value.get() == 0
        assert "hour='5'" in str(h.daemon.scheduler.get_job("prod").trigger)


async def test_a_file_that_keeps_changing_is_not_loaded_until_it_stops(tmp_path: Path) -> None:
    async with running_harness(tmp_path) as h:
        versions = [policy_text(prod_schedule=f"0 {hour} * * *") for hour in (5, 6, 7)]
        h.settle_hooks.extend(functools.partial(h.path.write_text, text) for text in versions[1:])
        with capture_events() as logs:
            h.path.write_text(versions[0])
            await wait_for_event(logs, "policy_loaded")
        assert [e["event"] for e in logs].count("policy_loaded") == 1
        assert "hour='7'" in str(h.daemon.scheduler.get_job("prod").trigger)


async def test_an_atomic_rename_loads(tmp_path: Path) -> None:
    async with running_harness(tmp_path) as h:
        staged = tmp_path / "policy.yaml.tmp"
        staged.write_text(policy_text(prod_schedule="0 5 * * *"))
        with capture_events() as logs:
            os.replace(staged, h.path)
            await wait_for_event(logs, "policy_loaded")
        assert "hour='5'" in str(h.daemon.scheduler.get_job("prod").trigger)


async def test_a_kubernetes_configmap_symlink_swap_loads(tmp_path: Path) -> None:
    # What the kubelet does: files live in a timestamped directory, `..data` points at it, the visible name points
    # through `..data`; an update writes a new directory and renames a new `..data` link over the old one.
    mount = tmp_path / "config"
    (mount / "..2026_12_01").mkdir(parents=True)
    (mount / "..2026_12_01" / "policy.yaml").write_text(policy_text())
    (mount / "..data").symlink_to("..2026_12_01")
    (mount / "policy.yaml").symlink_to("..data/policy.yaml")
    async with running_harness(tmp_path, path=mount / "policy.yaml") as h:
        (mount / "..2026_12_02").mkdir()
        (mount / "..2026_12_02" / "policy.yaml").write_text(policy_text(prod_schedule="0 5 * * *"))
        (mount / "..data_tmp").symlink_to("..2026_12_02")
        with capture_events() as logs:
            os.replace(mount / "..data_tmp", mount / "..data")
            await wait_for_event(logs, "policy_loaded")
        assert "hour='5'" in str(h.daemon.scheduler.get_job("prod").trigger)


async def test_a_deleted_file_is_a_warning_and_the_old_policies_stay(tmp_path: Path) -> None:
    async with running_harness(tmp_path) as h:
        old = h.daemon.policy_file
        with capture_events() as logs:
            h.path.unlink()
            await wait_for_event(logs, "policy_file_unreadable")
        warning = next(e for e in logs if e["event"] == "policy_file_unreadable")
        assert warning["log_level"] == "warning" and "cannot read the file" in warning["error"]
        assert h.daemon.policy_file is old
        assert h.metrics.reload_errors._value.get() == 0
        with capture_events() as logs:
            h.path.write_text(policy_text(prod_schedule="0 5 * * *"))
            await wait_for_event(logs, "policy_loaded")
        assert "hour='5'" in str(h.daemon.scheduler.get_job("prod").trigger)


async def test_an_unexpected_error_in_validation_is_rejected_and_watching_goes_on(tmp_path: Path) -> None:
    def parse(data: bytes, *, source: str) -> PolicyFile:
        if b"# explode" in data:  # what `timezone: Europe` did in round 1
            raise IsADirectoryError(21, "Is a directory")
        return parse_policy_text(data, source=source)

    async with running_harness(tmp_path, parse=parse) as h:
        old = h.daemon.policy_file
        with capture_events() as logs:
            h.path.write_text(policy_text() + "# explode\n")
            await wait_for_event(logs, "policy_rejected")
        rejected = next(e for e in logs if e["event"] == "policy_rejected")
        assert "unexpected IsADirectoryError" in rejected["error"]
        assert h.daemon.policy_file is old
        assert h.metrics.reload_errors._value.get() == 1
        with capture_events() as logs:
            h.path.write_text(policy_text(prod_schedule="0 5 * * *"))
            await wait_for_event(logs, "policy_loaded")
        assert "hour='5'" in str(h.daemon.scheduler.get_job("prod").trigger)


async def test_an_unexpected_error_in_the_watcher_itself_is_logged_and_watching_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_harness(tmp_path) as h:
        real_read = policy_watch.read_file
        failures = [RuntimeError("disk on fire")]

        def read_file(path: Path) -> policy_watch.FileRead:
            if failures:
                raise failures.pop()
            return real_read(path)

        monkeypatch.setattr(policy_watch, "read_file", read_file)
        with capture_events() as logs:
            await wait_for_event(logs, "policy_rejected")
            h.path.write_text(policy_text(prod_schedule="0 5 * * *"))
            await wait_for_event(logs, "policy_loaded")
        rejected = next(e for e in logs if e["event"] == "policy_rejected")
        assert "unexpected RuntimeError: disk on fire" in rejected["error"]
        assert "hour='5'" in str(h.daemon.scheduler.get_job("prod").trigger)


async def test_a_forced_reload_of_an_unchanged_file_loads_it_and_runs_nothing(tmp_path: Path) -> None:
    async with running_harness(tmp_path, policy_text(extra="    run_on_change: true\n")) as h:
        await h.settle()
        requests = h.emulator.stats.to_json()["total_requests"]
        assert requests > 0  # staging ran once at start: no digest was recorded yet
        with capture_events() as logs:
            h.daemon.watcher.request_reload()  # SIGHUP
            await wait_for_event(logs, "policy_loaded")
        assert not h.daemon.tasks
        assert h.emulator.stats.to_json()["total_requests"] == requests
