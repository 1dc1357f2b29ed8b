"""`validate` (every problem, `--format json`, next fire times, warnings) and the global log flags (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ges_retention.cli import main

THREE_PROBLEMS = """\
version: 1
policies:
  - name: a
    project_id: abc
    keep: {daily: -1}
    anchor: oldest
  - name: b
    project_id: abc
    keep: {last: 1}
    timezone: Europe
"""

GOOD = """\
version: 1
policies:
  - name: nightly
    project_id: abc
    schedule: "30 2 * * *"
    timezone: Europe/Berlin
    keep: {last: 1, daily: 7, monthly: 12}
  - name: by-hand
    project_id: abc
    keep: {last: 3}
  - name: paused
    project_id: abc
    enabled: false
    schedule: "@hourly"
    keep: {last: 3}
"""


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return str(path)


def _json_lines(text: str) -> list[dict[str, object]]:
    events = [json.loads(line) for line in text.splitlines()]
    assert all(list(e)[:3] == ["timestamp", "level", "event"] for e in events)
    return events


def test_validate_prints_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, THREE_PROBLEMS)
    assert main(["validate", path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [str(e["error"]) for e in _json_lines(captured.err)]
    assert [e.removeprefix(f"{path}: ").split(":")[0] for e in errors] == [
        "policies[0].keep.daily, line 5",
        "policies[0].anchor, line 6",
        "policies[1].timezone, line 10",
    ]
    assert not any("more problem" in e for e in errors)


def test_validate_prints_every_problem_in_console_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, THREE_PROBLEMS)
    assert main(["--log-format", "console", "validate", path]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all(line.startswith(f"ges-retention: error: {path}: policies[") for line in lines)


def test_validate_json_document_of_an_invalid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, THREE_PROBLEMS)
    assert main(["validate", path, "--format", "json"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert (document["file"], document["valid"], document["policies"]) == (path, False, [])
    assert [(p["key_path"], p["line"]) for p in document["problems"]] == [
        ("policies[0].keep.daily", 5),
        ("policies[0].anchor", 6),
        ("policies[1].timezone", 10),
    ]


def test_validate_json_document_of_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, GOOD)
    assert main(["validate", path, "--format", "json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert (document["valid"], document["problems"]) == (True, [])
    nightly, by_hand, paused = document["policies"]
    assert (nightly["name"], nightly["schedule"], nightly["timezone"]) == ("nightly", "30 2 * * *", "Europe/Berlin")
    # The next fire time, in the policy's timezone: 02:30 local, at +01:00 or +02:00.
    assert nightly["next_run"][10:19] == "T02:30:00" and nightly["next_run"][19:] in ("+01:00", "+02:00")
    assert by_hand["next_run"] is None and paused["next_run"] is None and paused["enabled"] is False
    assert [(w["event"], w["policy"], w["key_path"]) for w in document["warnings"]] == [
        ("policy_never_runs", "by-hand", "policies[1]")
    ]


def test_validate_text_shows_the_next_fire_time_and_warns_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, GOOD)
    assert main(["validate", path]) == 0
    captured = capsys.readouterr()
    nightly, by_hand, paused = captured.out.splitlines()
    assert "schedule '30 2 * * *' (Europe/Berlin), next " in nightly and " 02:30 CE" in nightly
    assert "on demand only" in by_hand and "paused (enabled: false)" in paused
    [warning] = _json_lines(captured.err)
    assert (warning["level"], warning["event"], warning["policy"]) == ("warning", "policy_never_runs", "by-hand")
    assert warning["path"] == path and warning["line"] == 8


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "error", "validate", "{path}"],
        ["validate", "{path}", "--log-level", "error"],
        ["validate", "--log-level=error", "{path}"],
    ],
)
def test_log_level_flag_before_or_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    path = _write(tmp_path, GOOD)
    assert main([word.format(path=path) for word in argv]) == 0
    assert capsys.readouterr().err == ""  # the policy_never_runs warning is below `error`


def test_log_flags_override_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, GOOD)
    monkeypatch.setenv("GES_RETENTION_LOG_FORMAT", "console")
    monkeypatch.setenv("GES_RETENTION_LOG_LEVEL", "error")
    assert main(["validate", path]) == 0
    assert capsys.readouterr().err == ""
    assert main(["validate", path, "--log-level", "warning"]) == 0
    err = capsys.readouterr().err
    assert "policy_never_runs" in err and not err.startswith("{")
    assert main(["--log-format", "json", "validate", path, "--log-level", "info"]) == 0
    assert _json_lines(capsys.readouterr().err)[0]["event"] == "policy_never_runs"


def test_a_usage_error_is_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 2
    [event] = _json_lines(capsys.readouterr().err)
    assert event["event"] == "command_failed" and "the following arguments are required" in str(event["error"])
    assert main(["--log-format", "console", "validate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ges-retention validate") and "ges-retention: error: " in err
    assert main(["validate", "--log-format", "xml", "x.yaml"]) == 2
    assert "invalid choice: 'xml'" in str(_json_lines(capsys.readouterr().err)[0]["error"])


def test_an_invalid_log_setting_is_exit_2_for_commands_that_read_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GES_RETENTION_LOG_FORMAT", "xml")
    assert main(["run", _write(tmp_path, GOOD)]) == 2
    [event] = _json_lines(capsys.readouterr().err)
    assert "GES_RETENTION_LOG_FORMAT" in str(event["error"])


@pytest.mark.parametrize("rule", ["last", "hourly", "daily", "weekly", "monthly", "yearly"])
def test_validate_names_every_keep_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str], rule: str) -> None:
    from ges_retention.retention_buckets import BUCKETS

    assert rule == "last" or rule in BUCKETS
    path = _write(tmp_path, f"version: 1\npolicies:\n  - {{name: a, project_id: abc, keep: {{{rule}: 2}}}}\n")
    assert main(["validate", path, "--log-level", "error"]) == 0
    assert f"keep {rule} 2;" in capsys.readouterr().out


def test_the_demo_follows_the_log_flags(tmp_path: Path) -> None:
    import subprocess
    import sys

    from subprocess_env import clean_env

    result = subprocess.run(
        [sys.executable, "-m", "ges_retention", "demo", "--log-format", "json", "--log-level", "info"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    events = _json_lines(result.stderr)  # the demo's own default is console lines at warning
    assert "run_finished" in {e["event"] for e in events}
