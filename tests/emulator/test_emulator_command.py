"""`python -m ges_retention.emulator` (what `ges-retention emulator` runs): the start line, serving, clean exits."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from ges_retention.emulator.command import add_arguments, build_config, is_loopback, refusal
from ges_retention.emulator.config import DEFAULT_AK, DEFAULT_PROJECT_ID, DEFAULT_SK, DEFAULT_TOKEN, FaultRates

START_KEYS = ["event", "url", "project_id", "ak", "sk", "token"]


def _start(*flags: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ges_retention.emulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded by pytest-timeout should the emulator never start
    if not line:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"the emulator did not start: {err}")
    return proc, json.loads(line)


def _get(url: str, token: str) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"X-Auth-Token": token})
    with urllib.request.urlopen(request, timeout=10) as resp:
        result: dict[str, object] = json.load(resp)
        return result


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_start_line_then_serves_until_a_signal(signum: signal.Signals) -> None:
    proc, started = _start("--seed-graphs", "2", "--seed-backups", "4", "--seed", "5")
    try:
        assert list(started) == START_KEYS
        assert started["event"] == "emulator_started"
        assert started["url"].startswith("http://127.0.0.1:")
        assert (started["project_id"], started["ak"], started["sk"], started["token"]) == (
            DEFAULT_PROJECT_ID,
            DEFAULT_AK,
            DEFAULT_SK,
            DEFAULT_TOKEN,
        )
        body = _get(f"{started['url']}/v2/{started['project_id']}/graphs/backups", started["token"])
        assert body["backup_count"] == 8
    finally:
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert out == ""  # nothing on stdout but the start line
    assert all(json.loads(line)["event"].startswith("emulator_") for line in err.splitlines())


def test_flags_choose_the_credentials() -> None:
    project = "abc123"
    proc, started = _start("--project-id", project, "--ak", "AK1", "--sk", "SK1", "--token", "T1", "--seed-graphs", "0")
    try:
        assert (started["project_id"], started["ak"], started["sk"], started["token"]) == (project, "AK1", "SK1", "T1")
        assert _get(f"{started['url']}/v2/{project}/graphs", "T1") == {"graph_count": 0, "graphs": []}
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_a_port_in_use_is_a_clear_error() -> None:
    first, started = _start("--seed-graphs", "0")
    try:
        port = started["url"].rsplit(":", 1)[1]
        second = subprocess.run(
            [sys.executable, "-m", "ges_retention.emulator", "--port", port, "--seed-graphs", "0"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert second.stdout == ""
        assert json.loads(second.stderr.splitlines()[-1])["event"] == "emulator_failed"
    finally:
        first.terminate()
        first.communicate(timeout=15)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_defaults_and_help() -> None:
    args = _parse()
    assert (args.host, args.port, args.seed, args.rate_limit, args.fault_rate) == ("127.0.0.1", 8000, 0, 0, 0.0)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = parser.format_help()
    for flag in (
        "--host",
        "--port",
        "--seed-graphs",
        "--seed-backups",
        "--latency-ms",
        "--rate-limit",
        "--fault-rate",
        "--seed",
        "--project-id",
        "--ak",
        "--sk",
        "--token",
        "--allow-remote",
    ):
        assert flag in text
    assert DEFAULT_AK in text and DEFAULT_SK in text and DEFAULT_TOKEN in text and "8000" in text


def test_fault_rate_is_spread_over_500_503_and_drop() -> None:
    config = build_config(_parse("--fault-rate", "0.3", "--rate-limit", "20", "--latency-ms", "5"))
    share = FaultRates(error_500=0.1, error_503=0.1, drop=0.1)
    assert set(config.faults) == {
        "list_graphs",
        "list_backups",
        "list_graph_backups",
        "delete_backup",
        "create_backup",
        "delete_graph",
        "list_quotas",
    }
    for rates in config.faults.values():
        assert rates.error_500 == pytest.approx(share.error_500)
        assert (rates.error_503, rates.drop, rates.hang) == (rates.error_500, rates.error_500, 0.0)
    assert (config.rate_limit_per_s, config.latency_ms) == (20, 5.0)


@pytest.mark.parametrize(
    "argv",
    [["--port", "70000"], ["--fault-rate", "1.5"], ["--latency-ms", "-1"], ["--project-id", "a-b"], ["--ak", ""]],
)
def test_bad_flags_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parse(*argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--host", "0.0.0.0"], "--allow-remote"),
        (["--host", "192.0.2.10"], "--allow-remote"),
        (["--host", "emulator.example.test"], "--allow-remote"),
        (["--seed-graphs", "100000"], "at most 10000 graphs"),
        (["--seed-graphs", "1000", "--seed-backups", "100000"], "at most 1000000 backups"),
        (["--seed-backups", "9999999999999"], "per graph"),
    ],
)
def test_refused_flags_exit_2_with_one_line_before_anything_starts(flags: list[str], reason: str) -> None:
    # No hang on huge seed sizes, nothing listening beyond loopback: the refusal comes before seeding or binding.
    done = subprocess.run(
        [sys.executable, "-m", "ges_retention.emulator", "--port", "0", *flags],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ges-retention emulator: error: ")
    assert reason in lines[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts_need_no_allow_remote(host: str) -> None:
    assert is_loopback(host)
    assert refusal(_parse("--host", host)) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.test", ""])
def test_allow_remote_lets_any_host_listen(host: str) -> None:
    assert not is_loopback(host)
    assert refusal(_parse("--host", host)) is not None
    assert refusal(_parse("--host", host, "--allow-remote")) is None
