"""The cheap log pipeline (issue 17): the JSON format's one-step chain writes what the processor chain writes, a key's
secrecy is decided once but applied to every line, `log_context` binds and restores like `bound_contextvars`, and
`backup_kept` lines are built only at debug. Secrets still never reach a line."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest
import structlog
from structlog.testing import capture_logs

from ges_retention import logs
from ges_retention.backup import Backup
from ges_retention.events import Deletion, LoggingEvents
from ges_retention.logs import REDACTED, configure_logging, log_context, register_secrets
from ges_retention.policy_loading import parse_policy_text
from ges_retention.retention import plan
from ges_retention.summary import PolicyResult

SECRET = "s3cr3t-fast-path-value"
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_holds_what_the_processor_chain_gives() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    with structlog.contextvars.bound_contextvars(run_id="r1", policy="p", backup_name="b-1"):
        structlog.get_logger().info("backup_deleted", attempts=2, duration_ms=12.5, policy="own")
    [line] = stream.getvalue().splitlines()
    event = json.loads(line)
    # The same event through the separate processors (the standard logging's chain) and the JSON renderer.
    chained: Any = {"event": "backup_deleted", "attempts": 2, "duration_ms": 12.5, "policy": "own"}
    with structlog.contextvars.bound_contextvars(run_id="r1", policy="p", backup_name="b-1"):
        for processor in [*logs._shared_processors(), logs._first_keys_first]:
            chained = processor(None, "info", chained)
    expected = json.loads(json.dumps(chained, default=str))
    assert list(event)[:3] == ["timestamp", "level", "event"]
    assert {k: v for k, v in event.items() if k != "timestamp"} == {
        k: v for k, v in expected.items() if k != "timestamp"
    }
    assert event["policy"] == "own"  # the event's own key wins over the context's
    assert ISO_Z.fullmatch(event["timestamp"])
    written = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - written).total_seconds()) < 60
    assert line.startswith('{"timestamp": ')  # the renderer's separators, as before


def test_levels_are_named_as_structlog_names_them() -> None:
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    log = structlog.get_logger()
    log.debug("a")
    log.warning("b")
    try:
        raise ValueError(f"with {SECRET} inside")
    except ValueError:
        register_secrets([SECRET])
        log.exception("c")
    events = lines_of(stream)
    assert [(e["event"], e["level"]) for e in events] == [("a", "debug"), ("b", "warning"), ("c", "error")]
    assert "ValueError" in events[2]["exception"]
    assert SECRET not in stream.getvalue()


def test_the_timestamp_is_formatted_like_isoformat_at_every_instant(monkeypatch: pytest.MonkeyPatch) -> None:
    instants = [1_764_716_400_000_000_000, 1_764_716_400_000_001_000, 1_764_716_401_999_999_000]
    for ns in instants:
        monkeypatch.setattr(logs, "_time_ns", lambda ns=ns: ns)
        seconds, nanos = divmod(ns, 1_000_000_000)
        expected = datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000).isoformat()
        assert logs._now_iso() == expected.replace("+00:00", "Z")


@pytest.mark.parametrize("value", [SECRET, 1234, 12.5, True, ["a"], {"k": "v"}])
def test_a_secret_key_is_blanked_on_every_line_whatever_its_value(value: Any) -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    log = structlog.get_logger()
    for _ in range(3):  # decided once, applied every time
        log.info("x", password=value, iam_password=value, attempts=3)
    assert [(e["password"], e["iam_password"], e["attempts"]) for e in lines_of(stream)] == [
        (REDACTED, REDACTED, 3)
    ] * 3


def test_registered_secrets_are_blanked_in_strings_lists_and_mappings_on_the_written_line() -> None:
    register_secrets([SECRET])
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    with structlog.contextvars.bound_contextvars(backup_name=f"name-{SECRET}"):
        structlog.get_logger().info(
            "backup_expired", reasons=[f"r {SECRET}"], detail={"nested": (SECRET,)}, error=f"e {SECRET}"
        )
    assert SECRET not in stream.getvalue()
    [event] = lines_of(stream)
    assert event["backup_name"] == f"name-{REDACTED}" and event["reasons"] == [f"r {REDACTED}"]


def test_many_keys_do_not_grow_the_secrecy_memory_without_bound() -> None:
    for i in range(logs._KEYS_REMEMBERED + 10):
        assert logs._is_secret_key(f"key_{i}") is False
    assert len(logs._KEY_IS_SECRET) <= logs._KEYS_REMEMBERED
    assert logs._is_secret_key("my_token") is True


def test_many_event_shapes_do_not_grow_their_memory_without_bound_and_a_secret_key_is_still_blanked() -> None:
    for i in range(logs._SHAPES_REMEMBERED + 10):
        event = logs.redact_event(None, "info", {"event": "e", f"key_{i}": "v", "api_key": "k"})
        assert (event[f"key_{i}"], event["api_key"]) == ("v", logs.REDACTED)
    assert len(logs._SECRET_KEYS_OF_SHAPE) <= logs._SHAPES_REMEMBERED


def test_a_list_of_words_is_kept_as_it_is_unless_one_holds_a_secret() -> None:
    register_secrets(["S3cr3tValue"])
    try:
        kept = logs.redact_event(None, "info", {"event": "e", "reasons": ["expired", "daily 2/7"]})
        leaked = ["expired", "note S3cr3tValue"]
        blanked = logs.redact_event(None, "info", {"event": "e", "reasons": leaked})
    finally:
        logs.forget_secrets(["S3cr3tValue"])
    assert kept["reasons"] == ["expired", "daily 2/7"]
    assert blanked["reasons"] == ["expired", f"note {logs.REDACTED}"]
    assert leaked == ["expired", "note S3cr3tValue"]  # the caller's list is not changed


class _Scope(NamedTuple):
    endpoint: str
    project_id: str


class _Failure(Exception):
    pass


def test_a_secret_in_a_set_bytes_an_object_or_deep_nesting_is_blanked_and_a_named_tuple_is_kept() -> None:
    secret = "S3cr3tValue"
    register_secrets([secret])
    deep: object = [secret]
    for _ in range(8):
        deep = {"inner": deep}
    try:
        event = logs.redact_event(
            None,
            "error",
            {
                "event": "e",
                "tags": {"a", secret},
                "raw": secret.encode(),
                "error": _Failure(f"refused {secret}"),
                "scope": _Scope("https://ges", f"p-{secret}"),
                "deep": deep,
            },
        )
        line = logs._encode(event)
    finally:
        logs.forget_secrets([secret])
    assert secret not in line
    assert event["scope"] == _Scope("https://ges", f"p-{logs.REDACTED}")  # rebuilt field by field, not a crash
    assert event["error"] == f"refused {logs.REDACTED}"


def test_log_context_binds_and_restores_the_context() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    log = structlog.get_logger()
    with structlog.contextvars.bound_contextvars(policy="outer"):
        with log_context(policy="inner", backup_id="b1"):
            log.info("one")
        log.info("two")
        with pytest.raises(RuntimeError), log_context(backup_id="b2"):
            log.info("three")
            raise RuntimeError("boom")
        log.info("four")
    log.info("five")
    events = lines_of(stream)
    assert [(e["event"], e.get("policy"), e.get("backup_id")) for e in events] == [
        ("one", "inner", "b1"),
        ("two", "outer", None),
        ("three", "outer", "b2"),
        ("four", "outer", None),
        ("five", None, None),
    ]


def _result() -> PolicyResult:
    policy = parse_policy_text(
        "version: 1\npolicies:\n  - name: p\n    project_id: p1\n    keep: {last: 1}\n    safety: {min_keep: 0}\n"
    ).policies[0]
    now = datetime(2026, 12, 1, tzinfo=UTC)
    day_ms = 86_400_000
    backups = [Backup(f"b{i}", "g1", "success", int(now.timestamp() * 1000) - (i + 1) * day_ms) for i in range(3)]
    return PolicyResult("p", "p1", plan=plan(backups, policy, now))


@pytest.mark.parametrize(("level", "kept_lines"), [("info", 0), ("debug", 1)])
def test_kept_backups_are_logged_at_debug_only(level: str, kept_lines: int) -> None:
    stream = io.StringIO()
    configure_logging("json", level, stream=stream)
    LoggingEvents().policy_planned(_result(), datetime(2026, 12, 1, tzinfo=UTC))
    events = [e["event"] for e in lines_of(stream)]
    assert events.count("backup_expired") == 2
    assert events.count("backup_kept") == kept_lines


def test_a_run_s_logging_events_are_captured_when_built_before_the_capture() -> None:
    events = LoggingEvents()  # a run's subscriber binds its logger when the run starts
    with capture_logs() as captured:
        events.deletion_finished(_result(), _result().plan.decisions[0], Deletion("deleted", 1, 0.25))  # type: ignore[union-attr]
    assert captured == [
        {"event": "backup_deleted", "attempts": 1, "duration_ms": 250.0, "size_mb": None, "log_level": "info"}
    ]


class _Opaque:
    def __str__(self) -> str:
        return "opaque-value"


def test_the_encoder_writes_what_json_dumps_writes() -> None:
    event = {
        "event": "x",
        "f": 1.5,
        "big": 10**20,
        "text": 'é ✓ "quoted" \n',
        "items": [1, None, True, 2.25e-7],
        "nested": {"k": (1, "2"), "o": _Opaque()},
        "inf": float("inf"),
    }
    assert logs._encode(event) == json.dumps(event, default=str)


def test_log_context_binds_a_key_never_bound_before() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    key = "speed_probe_never_bound_before"
    with log_context(**{key: "v1"}):
        structlog.get_logger().info("inside")
    structlog.get_logger().info("after")
    inside, after = lines_of(stream)
    assert inside[key] == "v1" and key not in after
    assert structlog.contextvars.get_contextvars().get(key) is None
