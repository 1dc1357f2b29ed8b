"""The `plan` command over an export: the same listing rules as a run (graph names resolved, conflicts refused)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ges_retention.backup import Backup
from ges_retention.commands import plan_command
from ges_retention.exit_codes import ExitCode
from ges_retention.policy_loading import parse_policy_text

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = parse_policy_text(
    """\
version: 1
policies:
  - name: all-but-staging
    project_id: 0a1b2c3d4e5f
    select: {exclude_graphs: ["staging-*"]}
    keep: {last: 1}
    safety: {min_keep: 0}
"""
)


def export(*names: str) -> list[Backup]:
    start = int(NOW.timestamp() * 1000)
    return [Backup(f"b{i}", "g1", "success", start - (i + 1) * 86_400_000, graph_name=n) for i, n in enumerate(names)]


def test_an_unnamed_record_of_an_excluded_graph_is_not_planned(capsys: pytest.CaptureFixture[str]) -> None:
    code = plan_command(POLICY, POLICY.policies, NOW, settings=None, export=export("staging-a", "", ""), fmt="json")
    assert code == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["policies"][0]["decisions"] == []


def test_an_export_naming_one_graph_twice_is_not_planned(capsys: pytest.CaptureFixture[str]) -> None:
    code = plan_command(POLICY, POLICY.policies, NOW, settings=None, export=export("prod-a", "staging-a"), fmt="table")
    assert code == ExitCode.FAILED
    assert "NOT PLANNED: graph 'g1' is listed under two names, 'prod-a' and 'staging-a'" in capsys.readouterr().out
