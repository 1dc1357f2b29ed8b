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


@pytest.mark.parametrize("scheme", ["Bearer", "BEARER", "bearer", "bEaReR"])
def test_a_bearer_token_is_blanked_whatever_the_case_of_its_scheme(scheme: str) -> None:
    event = redact_event(None, "info", {"event": "x", "detail": f"Authorization: {scheme} abc.def.ghi"})
    assert "abc.def.ghi" not in event["detail"]


def test_a_secret_in_one_value_of_many_is_blanked_and_the_others_are_kept() -> None:
    register_secrets([SECRET])
    event = redact_event(None, "info", {"event": "x", "a": "plain", "b": f"x{SECRET}y", "c": "also plain", "n": 3})
    assert (event["a"], event["b"], event["c"], event["n"]) == ("plain", f"x{REDACTED}y", "also plain", 3)


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


# --- other libraries' lines go through the same pipeline (issue 12 #3) ----------------------------------------------


def _json_lines(text: str) -> list[dict[str, object]]:
    events = []
    for line in text.splitlines():
        event = json.loads(line)  # every line: a plain-text line here breaks every log pipeline
        assert list(event)[:3] == ["timestamp", "level", "event"], line
        events.append(event)
    return events


async def test_apscheduler_skipping_a_job_is_a_json_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    from datetime import UTC, datetime

    from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobEvent
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    configure_logging("json", "info")  # stderr, as the daemon does
    log = structlog.get_logger()
    running, release, skipped = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def job() -> None:
        running.set()
        await release.wait()

    def on_max_instances(_event: JobEvent) -> None:
        skipped.set()

    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_listener(on_max_instances, EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    try:
        log.info("daemon_started", path="policy.yaml")
        scheduler.add_job(job, "interval", hours=1, id="prod", max_instances=1, next_run_time=datetime.now(UTC))
        await asyncio.wait_for(running.wait(), timeout=10)
        # Due again while the first run holds its only instance: APScheduler skips it and says so.
        scheduler.modify_job("prod", next_run_time=datetime.now(UTC))
        scheduler.wakeup()
        await asyncio.wait_for(skipped.wait(), timeout=10)
        log.info("run_skipped", policy="prod", reason="already_running")
    finally:
        release.set()
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # let the released job finish on this loop

    captured = capsys.readouterr()
    assert captured.out == ""
    events = _json_lines(captured.err)
    skip = [e for e in events if "maximum number of running instances reached" in str(e["event"])]
    assert len(skip) == 1 and skip[0]["level"] == "warning" and skip[0]["logger"] == "apscheduler.scheduler"
    assert {"daemon_started", "run_skipped"} <= {str(e["event"]) for e in events}


def test_library_lines_follow_the_level_and_carry_the_run_context(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    configure_logging("json", "info")
    with structlog.contextvars.bound_contextvars(run_id="r1"):
        logging.getLogger("aiohttp.access").info("GET /metrics 200")  # library info: not written at `info`
        logging.getLogger("asyncio").error("Task exception was never retrieved %s", SECRET)
    register_secrets([SECRET])
    logging.getLogger("aiohttp.client").warning("secret in a message: %s", SECRET)

    events = _json_lines(capsys.readouterr().err)
    assert [(e["level"], e["logger"]) for e in events] == [("error", "asyncio"), ("warning", "aiohttp.client")]
    assert events[0]["run_id"] == "r1"
    assert SECRET not in json.dumps(events[1])


def test_library_lines_in_console_format_and_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    configure_logging("console", "debug")
    logging.getLogger("aiohttp.access").info("GET /metrics 200")
    err = capsys.readouterr().err
    assert "GET /metrics 200" in err and "aiohttp.access" in err and not err.lstrip().startswith("{")


def test_a_json_line_starts_with_timestamp_level_event() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    structlog.get_logger().info("backup_deleted", backup_id="b1", attempts=1)
    assert list(json.loads(stream.getvalue()))[:4] == ["timestamp", "level", "event", "backup_id"]
