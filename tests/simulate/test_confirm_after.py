"""`safety.confirm_after`: in the policy model; `run` refuses it on a state that keeps nothing (`:memory:`); the daemon
and `plan` take it (`plan` shows each deletion's clock)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ges_retention.cli import main
from ges_retention.daemon import Daemon
from ges_retention.metrics import Metrics
from ges_retention.policy_loading import PolicyError, parse_policy_text
from ges_retention.policy_watch import FileRead
from ges_retention.settings import Settings
from ges_retention.two_phase import refuse_without_durable_state

POLICY = """\
version: 1
defaults:
  region: cn-north-4
  safety: {confirm_after: 2d, min_keep: 2}
policies:
  - name: careful
    project_id: p1
    keep: {last: 1}
  - name: plain
    project_id: p1
    select: {graphs: ["other"]}
    keep: {last: 1}
    safety: {confirm_after: 0}
"""


def test_confirm_after_merges_from_the_defaults_key_by_key() -> None:
    careful, plain = parse_policy_text(POLICY).policies
    assert str(careful.safety.confirm_after) == "2d" and careful.safety.min_keep == 2
    assert plain.safety.confirm_after is None and plain.safety.min_keep == 2  # 0 = off, min_keep still merged
    assert careful.model_dump(mode="json")["safety"]["confirm_after"] == "2d"
    assert plain.model_dump(mode="json")["safety"]["confirm_after"] == 0


@pytest.mark.parametrize("value", ["null", "-1d", "true", "2x", "[]"])
def test_a_bad_confirm_after_is_rejected_at_load(value: str) -> None:
    text = "version: 1\npolicies:\n  - name: a\n    project_id: p1\n    keep: {last: 1}\n    safety:\n"
    with pytest.raises(PolicyError, match=r"policies\[0\]\.safety\.confirm_after, line 7"):
        parse_policy_text(text + f"      confirm_after: {value}\n")


def test_refusal_names_each_selected_policy_asking_for_two_phase_deletion() -> None:
    policy_file = parse_policy_text(POLICY, source="policy.yaml")
    with pytest.raises(PolicyError) as caught:
        refuse_without_durable_state(policy_file, policy_file.policies, state_display=":memory:")
    message = str(caught.value)
    assert message.startswith("policy.yaml: policies[0].safety.confirm_after: policy 'careful'")
    assert "two-phase deletion" in message and "durable state" in message and ":memory:" in message
    refuse_without_durable_state(policy_file, [policy_file.policies[1]], state_display=":memory:")  # `plain` is fine


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def test_run_on_a_memory_state_refuses_it_with_exit_2_and_one_line(
    policy_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GES_RETENTION_TOKEN", "t" * 40)
    monkeypatch.setenv("GES_RETENTION_ENDPOINT", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("GES_RETENTION_MAX_ATTEMPTS", "1")  # were it reached, fail fast (exit 1, not 2)
    monkeypatch.setenv("GES_RETENTION_STATE", ":memory:")
    for argv in (["run", str(policy_path)], ["run", str(policy_path), "--policy", "careful", "--dry-run"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "confirm_after" in lines[-1] and "durable state" in lines[-1]


def test_the_daemon_takes_it_at_a_reload(policy_path: Path) -> None:
    settings = Settings(_env_file=None, token="t" * 40, endpoint="http://127.0.0.1:9")
    daemon = Daemon(policy_path, settings, runner=None, metrics=Metrics())  # type: ignore[arg-type]
    read = FileRead(policy_path.read_bytes())
    assert daemon.parse(read).names() == ["careful", "plain"]


def test_plan_shows_each_deletion_pending_with_its_due_time(
    policy_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "b.json"
    records = [
        {"id": f"b{i}", "graph_id": "g", "graph_name": "prod", "status": "success",
         "start_timestamp": 1_790_000_000_000 + i * 86_400_000}
        for i in range(4)
    ]  # fmt: skip
    export.write_text(json.dumps(records))
    argv = ["plan", str(policy_path), "--policy", "careful", "--from-file", str(export), "--format", "json"]
    assert main([*argv, "--now", "2026-10-01T00:00:00Z"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["state"] is None  # no state: no pending clocks, so nothing is due yet
    decisions = document["policies"][0]["decisions"]
    assert [d["action"] for d in decisions] == ["keep", "keep", "delete", "delete"]
    assert [(d["due"], d["due_at"], d["pending_since"]) for d in decisions[2:]] == [
        (False, "2026-10-03T00:00:00Z", None)
    ] * 2
