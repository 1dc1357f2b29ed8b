"""`ges-retention simulate` on the command line: the contract's JSON, the table, the picture, exit codes 0 and 2."""

from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ges_retention.cli import main

REPO = Path(__file__).resolve().parents[2]
GFS = REPO / "config" / "gfs.example.yaml"
POLICY = """\
version: 1
defaults: {timezone: Europe/Berlin}
policies:
  - name: gfs
    project_id: p1
    select: {graphs: ["warehouse"]}
    keep: {daily: 7, weekly: 4, monthly: 12}
  - name: tight
    project_id: p1
    keep: {last: 1}
    safety: {max_deletes: 2}
  - name: manual-only
    project_id: p1
    select: {backup_methods: [manual]}
    keep: {last: 1}
"""
KEYS = [
    "policy",
    "start",
    "days",
    "steady_state",
    "peak",
    "oldest_restore_point_days",
    "age_bands",
    "longest_gap_hours",
    "safety_stops",
    "quota_exceeded_on",
    "daily",
]


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["simulate", *argv])
    except SystemExit as exc:  # argparse's own errors (exit 2, one line: see cli._Parser)
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_has_exactly_the_contract_keys(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, str(policy_file), "--policy", "gfs", "--start", "2027-01-01", "--days", "120", "--format", "json",
        "--outage", "2027-02-01..2027-02-15", "--quota", "20",
    )  # fmt: skip
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert list(document) == KEYS
    assert document["policy"] == "gfs" and document["days"] == 120
    assert document["start"] == "2027-01-01T00:00:00+01:00"
    assert list(document["age_bands"]) == ["1d", "1w", "1mo", "1y", "older"]
    assert list(document["longest_gap_hours"]) == ["90d", "1y"]
    assert len(document["daily"]) == 120 and list(document["daily"][0]) == ["date", "kept", "deleted"]
    assert document["daily"][0] == {"date": "2027-01-01", "kept": 1, "deleted": 0}
    assert document["steady_state"] == max(d["kept"] for d in document["daily"][-30:])
    assert document["peak"] == max(d["kept"] for d in document["daily"])
    assert sum(document["age_bands"].values()) == document["daily"][-1]["kept"]
    assert document["safety_stops"] == 0 and document["quota_exceeded_on"] is None  # 7 + 4 + 12 < 20
    assert document["longest_gap_hours"]["90d"] >= 14 * 24  # the outage's hole is still among the weeklies


def test_the_table_has_the_figures_and_a_row_per_week(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(policy_file), "--policy", "gfs", "--start", "2027-01-01", "--days", "100",
                        "--outage", "2027-02-01..2027-02-15")  # fmt: skip
    assert code == 0
    for label in ("steady state", "peak", "oldest restore", "by age", "longest gap", "safety stops", "quota"):
        assert re.search(rf"^{label} +\S", out, flags=re.MULTILINE), label
    weeks = [line for line in out.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]
    assert len(weeks) == 15 and weeks[0].startswith("2027-01-01")
    assert sum("outage" in line for line in weeks) == 3
    short = _run(capsys, str(policy_file), "--policy", "gfs", "--start", "2027-01-01", "--days", "10")[1]
    assert "DATE" in short and len([line for line in short.splitlines() if line.startswith("2027-01-")]) == 10


def test_safety_stops_are_counted_and_still_exit_0(
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, str(policy_file), "--policy", "tight", "--days", "10", "--start", "2027-01-01",
                        "--backups", "0 */6 * * *", "--format", "json")  # fmt: skip
    document = json.loads(out)
    # four a day, one kept: the second run plans 4 deletions (> 2): every run from then on is a safety stop
    assert code == 0 and document["safety_stops"] == 9
    code, out, _ = _run(capsys, str(policy_file), "--policy", "tight", "--days", "10", "--start", "2027-01-01",
                        "--backups", "0 */6 * * *")  # fmt: skip
    assert code == 0 and re.search(r"^safety stops +9$", out, flags=re.MULTILINE)
    assert sum(line.endswith("  1 safety stop") for line in out.splitlines()) == 9


def test_same_seed_and_start_give_byte_identical_output(
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(policy_file), "--policy", "gfs", "--start", "2027-01-01", "--failure-rate", "0.2", "--seed", "5",
            "--backups", "0 2 * * *@auto", "--backups", "@weekly@manual", "--format", "json"]  # fmt: skip
    outs = []
    for name in ("a.svg", "b.svg"):
        code, out, _ = _run(capsys, *argv, "--svg", str(tmp_path / name))
        assert code == 0
        outs.append(out)
    assert outs[0] == outs[1]
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    other_seed = _run(capsys, *argv[:-2], "--seed", "6", "--format", "json")[1]
    assert other_seed != outs[0]


def test_the_picture_is_svg_with_one_mark_per_kept_backup(
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    svg = tmp_path / "f.svg"
    code, out, _ = _run(capsys, str(policy_file), "--policy", "gfs", "--start", "2027-01-01", "--format", "json",
                        "--svg", str(svg), "--outage", "2027-03-01..2027-03-15")  # fmt: skip
    assert code == 0
    daily = {d["date"]: d["kept"] for d in json.loads(out)["daily"]}
    root = ET.fromstring(svg.read_text())
    ns = "{http://www.w3.org/2000/svg}"
    rows = [g for g in root.iter(f"{ns}g") if g.get("class") == "row"]
    assert 100 <= len(rows) <= 120
    for row in rows:
        marks = [c for c in row.iter(f"{ns}circle") if c.get("class") in ("k", "p")]
        assert len(marks) == daily[row.get("data-date", "")]
    texts = " ".join("".join(t.itertext()) for t in root.iter(f"{ns}text"))
    for words in ("steady state", "oldest restore point", "Legend", "outage", "log scale", "simulated day"):
        assert words in texts
    assert any(r.get("class") == "out" for r in root.iter(f"{ns}rect"))  # the outage shows


def test_from_file_adds_a_real_export(policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "backups.json"
    records = [
        {"id": f"r{i}", "graph_id": "g-real", "graph_name": "warehouse", "status": "success",
         "start_timestamp": 1_790_000_000_000 + i * 86_400_000, "backup_method": "auto"}
        for i in range(30)
    ]  # fmt: skip
    export.write_text(json.dumps({"backup_count": 30, "backup_list": records}))
    argv = [str(policy_file), "--policy", "gfs", "--start", "2027-01-01", "--days", "5", "--format", "json"]
    code, out, _ = _run(capsys, *argv, "--from-file", str(export))
    assert code == 0
    with_export = json.loads(out)
    without = json.loads(_run(capsys, *argv)[1])
    assert with_export["daily"][0]["kept"] > without["daily"][0]["kept"]
    assert with_export["daily"][0]["deleted"] > 0
    export.write_text(json.dumps({"backup_count": 31, "backup_list": records}))
    code, out, err = _run(capsys, *argv, "--from-file", str(export))
    assert code == 2 and out == "" and "incomplete export" in err and len(err.strip().splitlines()) == 1


BAD = [
    (["--policy", "nope"], "no policy named 'nope'"),
    (["--policy", "gfs", "--backups", "0 25 * * *"], "hour 25"),
    (["--policy", "gfs", "--backups", "0 2 * *"], "expected 5 fields"),
    (["--policy", "gfs", "--backups", "0 2 * * *@Auto"], "lowercase word"),
    (["--policy", "gfs", "--outage", "2027-03-15..2027-03-01"], "the end must be after the start"),
    (["--policy", "gfs", "--outage", "2027-03-15"], "START..END"),
    (["--policy", "gfs", "--outage", "2027-03-01..soon"], "not an ISO 8601"),
    (["--policy", "gfs", "--days", "0"], "--days"),
    (["--policy", "gfs", "--days", "-3"], "--days"),
    (["--policy", "gfs", "--days", "many"], "--days"),
    (["--policy", "gfs", "--failure-rate", "1.5"], "--failure-rate"),
    (["--policy", "gfs", "--failure-rate", "-0.1"], "--failure-rate"),
    (["--policy", "gfs", "--failure-rate", "nan"], "--failure-rate"),
    (["--policy", "gfs", "--quota", "-1"], "--quota"),
    (["--policy", "gfs", "--start", "tomorrow"], "--start"),
    (["--policy", "gfs", "--from-file", "/nonexistent/backups.json"], "cannot read"),
    (["--policy", "gfs", "--svg", "/nonexistent/dir/f.svg"], "--svg"),
    (["--policy", "manual-only"], "selects none of the simulated backups"),
    (["--policy", "gfs", "--backups", "* * * * *"], "at most 200000"),
    ([], "--policy"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_exit_2_with_one_clear_line(
    argv: list[str], message: str, policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, str(policy_file), "--start", "2027-01-01", *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_an_unknown_policy_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, str(tmp_path / "missing.yaml"), "--policy", "x")
    assert code == 2 and out == "" and "cannot read" in err


def test_it_writes_nothing_but_the_svg(policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in Path.cwd().iterdir())
    assert _run(capsys, str(policy_file), "--policy", "gfs", "--days", "30", "--svg", "out.svg")[0] == 0
    assert sorted(p.name for p in Path.cwd().iterdir()) == sorted([*before, "out.svg"])


def test_the_readme_picture_is_what_the_readme_command_draws(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (REPO / "README.md").read_text()
    command = next(line[2:] for line in readme.splitlines() if line.startswith("$ ges-retention simulate "))
    words = shlex.split(command)[2:]
    committed = words[words.index("--svg") + 1]
    assert f"]({committed})" in readme  # the README shows the picture
    words[words.index("--svg") + 1] = str(tmp_path / "drawn.svg")
    words = [str(REPO / w) if w.startswith("config/") else w for w in words]
    assert _run(capsys, *words)[0] == 0
    assert (tmp_path / "drawn.svg").read_bytes() == (REPO / committed).read_bytes()


@pytest.mark.parametrize(("orphans", "code"), [("include", 0), ("exclude", 0), ("only", 2)])
def test_the_simulated_graph_is_no_orphan(
    orphans: str, code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "orphans.yaml"
    path.write_text(
        f"version: 1\npolicies:\n  - name: o\n    project_id: p1\n    select: {{orphans: {orphans}}}\n"
        "    keep: {last: 3}\n"
    )
    argv = ["--policy", "o", "--days", "20", "--start", "2027-01-01", "--format", "json"]
    result, out, err = _run(capsys, str(path), *argv)
    assert result == code, err
    if code == 0:
        assert json.loads(out)["steady_state"] == 3  # the policy managed the simulated graph's backups
    else:
        assert "orphans only" in err and out == ""
