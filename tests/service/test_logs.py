"""Log configuration and redaction: JSON lines on the given stream, secrets never written."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from ges_retention.logs import REDACTED, configure_logging, redact_event, register_secrets

SECRET = "hunter2-very-secret"


def test_json_lines_with_timestamp_level_event_and_context() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    with structlog.contextvars.bound_contextvars(run_id="r1", policy="p"):
        structlog.get_logger().info("run_started", policies=["p"], dry_run=False, trigger="cli")
    structlog.get_logger().debug("backup_kept", reasons=["last 1/1"])  # below the level: not written
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "run_started"
    assert event["level"] == "info"
    assert event["run_id"] == "r1" and event["policy"] == "p"
    assert event["timestamp"].endswith("Z")


def test_console_format_is_one_line_per_event() -> None:
    stream = io.StringIO()
    configure_logging("console", "debug", stream=stream)
    structlog.get_logger().warning("request_throttled", status=429, retry_in_s=1.5)
    out = stream.getvalue()
    assert "request_throttled" in out and "status=429" in out


@pytest.mark.parametrize(
    "key", ["token", "sk", "password", "iam_password", "Authorization", "x_auth_token", "http_token"]
)
def test_secret_keys_are_blanked(key: str) -> None:
    event = redact_event(None, "info", {"event": "x", key: SECRET})
    assert event[key] == REDACTED


@pytest.mark.parametrize("key", ["error_code", "request_id", "backup_id", "run_id", "event"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert redact_event(None, "info", {key: "GES.7024"})[key] == "GES.7024"


def test_registered_secret_is_blanked_anywhere() -> None:
    register_secrets([SECRET])
    event = redact_event(
        None, "error", {"event": "backup_delete_failed", "error": f"boom {SECRET} boom", "nested": {"a": [SECRET]}}
    )
    assert SECRET not in json.dumps(event)
    assert event["error"] == f"boom {REDACTED} boom"


def test_signatures_and_bearer_tokens_are_blanked() -> None:
    value = "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=0123abcdef and Bearer abc.def"
    event = redact_event(None, "info", {"event": "x", "detail": value})
    assert "0123abcdef" not in event["detail"] and "abc.def" not in event["detail"]


def test_exception_text_is_redacted_in_the_written_line() -> None:
    register_secrets([SECRET])
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    try:
        raise RuntimeError(f"leaked {SECRET}")
    except RuntimeError:
        structlog.get_logger().exception("run_crashed")
    assert SECRET not in stream.getvalue()
    assert "run_crashed" in stream.getvalue()
