"""`safety.confirm_after`: in the policy model; refused by real runs (run, daemon) until the journal exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ges_retention.cli import main
from ges_retention.daemon import Daemon
from ges_retention.metrics import Metrics
from ges_retention.policy_loading import PolicyError, parse_policy_text
from ges_retention.policy_watch import FileRead
from ges_retention.settings import Settings
from ges_retention.two_phase import refuse_two_phase

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


def test_refusal_names_each_policy_asking_for_two_phase_deletion() -> None:
    policy_file = parse_policy_text(POLICY, source="policy.yaml")
    with pytest.raises(PolicyError) as caught:
        refuse_two_phase(policy_file)
    message = str(caught.value)
    assert message.startswith("policy.yaml: policies[0].safety.confirm_after: policy 'careful'")
    assert "two-phase deletion" in message and "needs the state" in message
    refuse_two_phase(policy_file, [policy_file.policies[1]])  # `plain` alone is fine


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def test_run_refuses_it_with_exit_2_and_one_line(
    policy_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GES_RETENTION_TOKEN", "t" * 40)
    monkeypatch.setenv("GES_RETENTION_ENDPOINT", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("GES_RETENTION_MAX_ATTEMPTS", "1")  # were it reached, fail fast (exit 1, not 2)
    for argv in (["run", str(policy_path)], ["run", str(policy_path), "--policy", "careful", "--dry-run"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "confirm_after" in lines[-1] and "needs the state" in lines[-1]


@pytest.mark.timeout(60)  # were the file accepted, the daemon would start and serve: fail, do not hang
def test_the_daemon_refuses_it_at_start(
    policy_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GES_RETENTION_TOKEN", "t" * 40)
    monkeypatch.setenv("GES_RETENTION_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("GES_RETENTION_HTTP", "")
    monkeypatch.setenv("GES_RETENTION_RELOAD_SETTLE_S", "0")
    assert main(["daemon", str(policy_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "needs the state" in err[-1] and "confirm_after" in err[-1]


def test_the_daemon_rejects_it_at_a_reload(policy_path: Path) -> None:
    settings = Settings(_env_file=None, token="t" * 40, endpoint="http://127.0.0.1:9")
    daemon = Daemon(policy_path, settings, runner=None, metrics=Metrics())  # type: ignore[arg-type]
    read = FileRead(policy_path.read_bytes())
    with pytest.raises(PolicyError, match="needs the state"):
        daemon.parse(read)
    with capture_logs() as logs:
        assert daemon.apply(read) is False
    rejected = [e for e in logs if e["event"] == "policy_rejected"]
    assert len(rejected) == 1 and "needs the state" in rejected[0]["error"]
    assert daemon.policy_file is None
    accepted = FileRead(policy_path.read_bytes().replace(b"confirm_after: 2d, ", b""))
    assert daemon.parse(accepted).names() == ["careful", "plain"]


def test_plan_still_shows_it_as_an_ordinary_deletion(
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
    decisions = json.loads(capsys.readouterr().out)["policies"][0]["decisions"]
    assert [d["action"] for d in decisions] == ["keep", "keep", "delete", "delete"]
