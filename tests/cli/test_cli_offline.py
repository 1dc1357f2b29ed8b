"""The offline commands: validate, plan --from-file, schema; exit codes and streams as the contract says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ges_retention.cli import main, policy_schema

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "config").glob("*.example.yaml"))

POLICY = """\
version: 1
policies:
  - name: prod
    project_id: abc123
    select: {graphs: ["prod-*"]}
    keep: {last: 1, daily: 2}
  - name: other
    project_id: abc123
    select: {graphs: ["other"]}
    keep: {last: 1}
"""


def _backup(bid: str, ts: str, *, graph: str = "prod-a", status: str = "success") -> dict[str, object]:
    from datetime import datetime

    ms = int(datetime.fromisoformat(ts + "+00:00").timestamp() * 1000)
    return {
        "id": bid,
        "name": f"{graph}-{bid}",
        "graph_id": f"id-{graph}",
        "graph_name": graph,
        "backup_method": "auto",
        "status": status,
        "start_timestamp": ms,
        "future_field": {"ignored": True},
    }


BACKUPS = [
    _backup("b1", "2026-11-25T02:00:00"),
    _backup("b2", "2026-11-24T02:00:00"),
    _backup("b3", "2026-11-24T01:00:00"),
    _backup("b4", "2026-11-20T02:00:00"),
    _backup("o1", "2026-11-20T02:00:00", graph="other"),
]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    export = tmp_path / "backups.json"
    export.write_text(json.dumps(BACKUPS))
    return policy, export


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(example)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out and all(": project " in line for line in out)


def test_validate_invalid_is_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npolicies:\n  - name: a\n    project_id: abc\n    keep: {daily: -1}\n")
    assert main(["validate", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1
    assert "bad.yaml" in err[0] and "policies[0].keep.daily" in err[0] and "line 5" in err[0]


def test_plan_json_document(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    policy, export = files
    code = main(["plan", str(policy), "--from-file", str(export), "--now", "2026-11-26T00:00:00", "--format", "json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["generated_at"] == "2026-11-26T00:00:00Z"
    prod = doc["policies"][0]
    assert (prod["name"], prod["project_id"], prod["safety_stop"]) == ("prod", "abc123", False)
    actions = {d["backup_id"]: (d["action"], d["reasons"]) for d in prod["decisions"]}
    assert actions == {
        "b1": ("keep", ["last 1/1", "daily 1/2 (2026-11-25)"]),
        "b2": ("keep", ["daily 2/2 (2026-11-24)"]),
        "b3": ("delete", ["expired"]),
        "b4": ("delete", ["expired"]),
    }
    assert [d["backup_id"] for d in prod["decisions"]] == ["b1", "b2", "b3", "b4"]
    assert prod["decisions"][0]["start_time"] == "2026-11-25T02:00:00Z"
    assert list(prod["decisions"][0]) == [
        "backup_id",
        "backup_name",
        "graph_id",
        "graph_name",
        "backup_method",
        "status",
        "start_time",
        "size_mb",
        "orphan",
        "action",
        "reasons",
    ]
    # An export has no graph listing: whether a backup is an orphan is not known.
    assert {d["orphan"] for d in prod["decisions"]} == {None}


def test_plan_json_is_byte_identical_in_any_input_order(files: tuple[Path, Path], tmp_path: Path) -> None:
    policy, export = files
    shuffled = tmp_path / "shuffled.json"
    shuffled.write_text(json.dumps({"backup_count": len(BACKUPS), "backup_list": list(reversed(BACKUPS))}))
    args = ["--now", "2026-11-26T00:00:00Z", "--format", "json"]
    outputs = []
    for source in (export, shuffled):
        result = subprocess.run(
            [sys.executable, "-m", "ges_retention", "plan", str(policy), "--from-file", str(source), *args],
            capture_output=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]


def test_plan_policy_filter_and_overlap_over_the_whole_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY.replace('graphs: ["other"]', 'graphs: ["*"]'))
    export = tmp_path / "b.json"
    export.write_text(json.dumps(BACKUPS))
    assert (
        main(
            [
                "plan",
                str(policy),
                "--policy",
                "prod",
                "--from-file",
                str(export),
                "--now",
                "2026-11-26",
                "--format",
                "json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in doc["policies"]] == ["prod"]
    b3 = next(d for d in doc["policies"][0]["decisions"] if d["backup_id"] == "b3")
    assert b3["action"] == "keep" and b3["reasons"] == ["overlap: other, prod"]


@pytest.mark.parametrize("override", [None, "http://127.0.0.1:9"])
def test_plan_from_file_resolves_overlap_per_endpoint_and_project(
    override: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `other` selects everything too, but at another endpoint: the same project id there is other backups, so a run
    # would not see an overlap, and neither does `plan`. GES_RETENTION_ENDPOINT sends both to one endpoint: overlap.
    text = POLICY.replace('{graphs: ["other"]}', '{graphs: ["*"]}\n    endpoint: https://ges.other.example.com')
    policy = tmp_path / "p.yaml"
    policy.write_text(text)
    export = tmp_path / "b.json"
    export.write_text(json.dumps(BACKUPS))
    if override is not None:
        monkeypatch.setenv("GES_RETENTION_ENDPOINT", override)
    args = ["plan", str(policy), "--from-file", str(export), "--now", "2026-11-26", "--format", "json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    b3 = next(d for d in doc["policies"][0]["decisions"] if d["backup_id"] == "b3")
    if override is None:
        assert (b3["action"], b3["reasons"]) == ("delete", ["expired"])
    else:
        assert (b3["action"], b3["reasons"]) == ("keep", ["overlap: other, prod"])


def test_plan_safety_stop_is_exit_3(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, export = files
    strict = tmp_path / "strict.yaml"
    strict.write_text(POLICY.replace("keep: {last: 1, daily: 2}", "keep: {last: 1}\n    safety: {max_deletes: 1}"))
    assert main(["plan", str(strict), "--from-file", str(export), "--now", "2026-11-26"]) == 3
    assert "SAFETY STOP" in capsys.readouterr().out


def test_plan_table_is_readable(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    policy, export = files
    assert main(["plan", str(policy), "--from-file", str(export), "--now", "2026-11-26"]) == 0
    out = capsys.readouterr().out
    assert "policy prod (project abc123)" in out
    assert "DELETE" in out and "keep" in out and "daily 1/2 (2026-11-25)" in out


def test_plan_shows_a_paused_policy_as_paused(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Contract: `plan` still shows a paused policy, with `"enabled": false` (and the table says PAUSED)."""
    policy, export = files
    policy.write_text(POLICY.replace("  - name: other\n", "  - name: other\n    enabled: false\n"))
    args = ["plan", str(policy), "--from-file", str(export), "--now", "2026-11-26"]
    assert main([*args, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(p["name"], p["enabled"]) for p in doc["policies"]] == [("prod", True), ("other", False)]
    other = doc["policies"][1]
    assert [(d["backup_id"], d["action"]) for d in other["decisions"]] == [("o1", "keep")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "policy prod (project abc123)\n" in out
    assert "policy other (project abc123, PAUSED: enabled: false)\n" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"nothing": 1}', "expected a JSON array"),
        ('[{"id": "x"}]', "record 0"),
        ('[{"id": "x", "graph_id": "g", "status": "success", "start_timestamp": "soon"}]', "start_timestamp"),
        (json.dumps([BACKUPS[0], BACKUPS[0]]), "duplicate backup id"),
    ],
)
def test_plan_bad_export_is_exit_2(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    policy, _ = files
    export = tmp_path / "bad.json"
    export.write_text(content)
    assert main(["plan", str(policy), "--from-file", str(export)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unknown_policy_name_is_exit_2(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    policy, export = files
    assert main(["plan", str(policy), "--policy", "nope", "--from-file", str(export)]) == 2
    assert "no policy named 'nope'" in capsys.readouterr().err


def test_bad_now_is_exit_2(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    policy, export = files
    assert main(["plan", str(policy), "--from-file", str(export), "--now", "yesterday"]) == 2
    assert "--now" in capsys.readouterr().err


def test_commands_that_call_the_api_need_credentials(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    policy, _ = files
    for argv in (["run", str(policy)], ["plan", str(policy)], ["daemon", str(policy)]):
        assert main(argv) == 2
        assert "no credentials" in capsys.readouterr().err


def test_schema_is_current_and_valid_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    committed = json.loads((REPO / "config" / "policy.schema.json").read_text())
    assert printed == committed == policy_schema(), "run `make schema` and commit config/policy.schema.json"
    assert printed["properties"]["version"] == {"const": 1, "title": "Version", "type": "integer"}


def test_bad_file_in_a_subprocess_has_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npolicies: [\n")
    result = subprocess.run(
        [sys.executable, "-m", "ges_retention", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    # The default log format is json: the final error line is a JSON event like every other stderr line.
    [line] = result.stderr.splitlines()
    event = json.loads(line)
    assert list(event)[:3] == ["timestamp", "level", "event"]
    assert (event["level"], event["event"], event["exit_code"]) == ("error", "command_failed", 2)
    assert "bad.yaml" in event["error"]


@pytest.mark.parametrize("argv", [["--debug", "validate"], ["validate", "--debug"]])
def test_debug_adds_the_traceback_before_or_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    missing = str(tmp_path / "missing.yaml")
    assert main([*argv, missing, "--log-format", "console"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("ges-retention: error: ")
    assert main([*argv, missing]) == 2
    [line] = capsys.readouterr().err.splitlines()  # json: the traceback is a key of the one line
    assert "Traceback" in json.loads(line)["exception"]
    assert main(["validate", missing]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "now", ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59", "9999-12-31T23:00:00-05:00", "0001-01-01"]
)
def test_now_at_the_edge_of_time_is_exit_2_with_a_clear_line(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], now: str
) -> None:
    policy, export = files
    assert main(["plan", str(policy), "--from-file", str(export), "--now", now]) == 2
    [line] = capsys.readouterr().err.splitlines()
    error = json.loads(line)["error"]
    assert error.startswith("--now") and "out of range" in error
    assert "unexpected" not in error and "Overflow" not in error


def _body(records: list[dict[str, object]] | None, count: int) -> str:
    return json.dumps({"backup_count": count, "backup_list": records})


def test_plan_refuses_an_export_with_fewer_ids_than_its_backup_count(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A one-page export of a larger listing: `run` would refuse this listing, so `plan` does too (exit 1).
    policy, _ = files
    export = tmp_path / "page1.json"
    export.write_text(_body(BACKUPS[:3], 250))
    assert main(["plan", str(policy), "--from-file", str(export), "--now", "2026-11-26"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "3 unique backup ids, fewer than its backup_count 250" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"backup_count": 0},
        {"backup_count": 0, "backup_list": None},
        {"backup_count": 0, "backup_list": []},
        {"backup_count": len(BACKUPS), "backup_list": BACKUPS},
        {"backup_count": 2, "backup_list": BACKUPS},  # more than counted: nothing is missing
    ],
)
def test_plan_accepts_complete_exports_including_an_empty_project(
    files: tuple[Path, Path], tmp_path: Path, body: dict[str, object]
) -> None:
    policy, _ = files
    export = tmp_path / "export.json"
    export.write_text(json.dumps(body))
    assert main(["plan", str(policy), "--from-file", str(export), "--now", "2026-11-26", "--format", "json"]) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"backup_count": 3}, "'backup_list' is missing"),
        ({"backup_count": 3, "backup_list": None}, "'backup_list' is missing"),
        ({"backup_count": -1, "backup_list": []}, "'backup_count' must be a whole number"),
        ({"backup_count": "2", "backup_list": []}, "'backup_count' must be a whole number"),
        ({"backup_count": True, "backup_list": []}, "'backup_count' must be a whole number"),
    ],
)
def test_plan_refuses_a_malformed_body_with_exit_2(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], body: object, message: str
) -> None:
    policy, _ = files
    export = tmp_path / "export.json"
    export.write_text(json.dumps(body))
    assert main(["plan", str(policy), "--from-file", str(export)]) == 2
    assert message in capsys.readouterr().err


def test_every_input_error_derives_from_the_one_base() -> None:
    from ges_retention.backup import InvalidBackupRecord
    from ges_retention.cron import CronError
    from ges_retention.durations import DurationError
    from ges_retention.errors import GesRetentionError, UsageError
    from ges_retention.inputs import IncompleteExport
    from ges_retention.policy_loading import PolicyError
    from ges_retention.settings import SettingsError

    for error in (PolicyError, SettingsError, UsageError, CronError, DurationError, InvalidBackupRecord):
        assert issubclass(error, GesRetentionError) and error.exit_code == 2, error
    assert IncompleteExport.exit_code == 1
