"""`hold`, `release`, `holds`: what they write to the state, what they print, and every exit code of the contract."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ges_retention.cli import main
from ges_retention.holds_command import hold_command
from ges_retention.state import Hold, StateLocation, open_store, resolve_state_location
from support.journal import seed_journal


def _holds(location: StateLocation) -> list[Hold]:
    async def read() -> list[Hold]:
        store = await open_store(location, mode="existing")
        assert store is not None
        try:
            return await store.list_holds()
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StateLocation:
    """A seeded state (see `support.journal`), named by GES_RETENTION_STATE."""
    location = resolve_state_location(str(tmp_path / "state" / "state.db"))
    asyncio.run(seed_journal(location))
    monkeypatch.setenv("GES_RETENTION_STATE", str(location.path))
    return location


def test_hold_of_an_id_the_state_has_no_record_of_is_placed_and_says_so(
    state: StateLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hold", "not-listed-yet", "--reason", "restore drill on Friday"]) == 0
    out = capsys.readouterr().out
    assert "held not-listed-yet until released: restore drill on Friday" in out
    assert "no record of not-listed-yet" in out
    assert f"state: {state.display}" in out  # the location it wrote to
    held = {h.backup_id: h for h in _holds(state)}
    assert held["not-listed-yet"].reason == "restore drill on Friday"
    assert held["not-listed-yet"].until is None
    assert held["not-listed-yet"].placed_by.startswith("cli:")


def test_hold_of_a_backup_the_journal_knows_has_no_note(
    state: StateLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hold", "b-pend", "--reason", "keep for the audit"]) == 0
    out = capsys.readouterr().out
    assert "no record" not in out and "held b-pend" in out
    assert "b-pend" in {h.backup_id for h in _holds(state)}


def test_hold_replacing_a_hold_says_what_it_replaced(state: StateLocation, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hold", "b-held", "--reason", "case 43 now", "--for", "30d"]) == 0
    out = capsys.readouterr().out
    assert "it replaces the hold until released: legal: case 42" in out
    [hold] = [h for h in _holds(state) if h.backup_id == "b-held"]
    assert hold.reason == "case 43 now" and hold.until is not None


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("for_", "until", "end"),
    [
        ("30d", None, datetime(2026, 12, 31, 12, 0, tzinfo=UTC)),
        ("1mo", None, datetime(2027, 1, 1, 12, 0, tzinfo=UTC)),  # calendar months, as in the policy file
        ("36h", None, datetime(2026, 12, 3, 0, 0, tzinfo=UTC)),
        (None, "2027-01-15T08:30:00", datetime(2027, 1, 15, 8, 30, tzinfo=UTC)),  # no offset = UTC
        (None, "2027-01-15T08:30:00+02:00", datetime(2027, 1, 15, 6, 30, tzinfo=UTC)),
        (None, None, None),  # until released
    ],
)
def test_hold_ends_after_for_or_at_until(
    state: StateLocation, capsys: pytest.CaptureFixture[str], for_: str | None, until: str | None, end: datetime | None
) -> None:
    assert hold_command(state, "b-x", "r", for_=for_, until=until, now=NOW) == 0
    [hold] = [h for h in _holds(state) if h.backup_id == "b-x"]
    assert hold.until == end
    assert hold.placed_at == NOW
    shown = "until released" if end is None else f"until {end:%Y-%m-%dT%H:%M:%SZ}"
    assert f"held b-x {shown}: r" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["hold", "b/1", "--reason", "r"], "malformed"),
        (["hold", "..", "--reason", "r"], "malformed"),
        (["hold", "x" * 129, "--reason", "r"], "malformed"),
        (["hold", "b-1", "--reason", ""], "needs a reason"),
        (["hold", "b-1", "--reason", "x" * 201], "at most 200"),
        (["hold", "b-1", "--reason", "two\nlines"], "printable"),
        (["hold", "b-1"], "--reason"),
        (["hold", "b-1", "--reason", "r", "--for", "3 days"], "invalid duration"),
        (["hold", "b-1", "--reason", "r", "--for", "99999y"], "beyond the year 9999"),
        (["hold", "b-1", "--reason", "r", "--until", "next friday"], "ISO 8601"),
        (["hold", "b-1", "--reason", "r", "--until", "2020-01-01"], "not in the future"),
        (["hold", "b-1", "--reason", "r", "--for", "1d", "--until", "2099-01-01"], "not allowed with"),
        (["release", "a b"], "malformed"),
        (["holds", "--format", "yaml"], "invalid choice"),
    ],
)
def test_bad_input_is_exit_2_with_one_line_and_writes_nothing(
    state: StateLocation, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    before = _holds(state)
    assert main(["--log-format", "console", *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert _holds(state) == before


def test_release_removes_a_hold_and_release_of_what_is_not_held_is_exit_1(
    state: StateLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["release", "b-held"]) == 0
    out = capsys.readouterr().out
    assert "released b-held (was held until released: legal: case 42)" in out
    assert f"state: {state.display}" in out
    assert _holds(state) == []
    assert main(["--log-format", "console", "release", "b-held"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "b-held is not held" in captured.err
    assert main(["release", "never-held"]) == 1


def test_release_of_an_ended_hold_is_exit_1(state: StateLocation, capsys: pytest.CaptureFixture[str]) -> None:
    past = datetime.now(UTC) - timedelta(days=10)
    assert hold_command(state, "b-old", "ended", for_="1d", until=None, now=past) == 0
    assert main(["release", "b-old"]) == 1
    assert "b-old" not in {h.backup_id for h in _holds(state)}  # removed all the same


def test_holds_lists_holds_in_force_as_a_table_and_as_json(
    state: StateLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    past = datetime.now(UTC) - timedelta(days=10)
    hold_command(state, "b-ended", "ended long ago", for_="1d", until=None, now=past)
    hold_command(state, "b-until", "quarter close", for_=None, until="2999-01-01T00:00:00Z", now=datetime.now(UTC))
    capsys.readouterr()
    assert main(["holds"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["BACKUP_ID", "UNTIL", "PLACED", "BY", "REASON"]
    assert [line.split()[0] for line in table[1:]] == ["b-held", "b-until"]  # the ended hold is not in force
    assert "2999-01-01T00:00:00Z" in table[2] and "until released" in table[1]

    assert main(["holds", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [h["backup_id"] for h in document["holds"]] == ["b-held", "b-until"]
    first = document["holds"][0]
    assert first == {
        "backup_id": "b-held",
        "reason": "legal: case 42",
        "until": None,
        "placed_at": "2026-03-03T02:00:00Z",
        "placed_by": "cli:test@host",
        "in_force": True,
    }


def test_holds_with_none_in_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    location = resolve_state_location(str(tmp_path / "empty.db"))

    async def create() -> None:
        store = await open_store(location, mode="create")
        assert store is not None
        await store.close()

    asyncio.run(create())
    monkeypatch.setenv("GES_RETENTION_STATE", str(location.path))
    assert main(["holds"]) == 0
    assert capsys.readouterr().out == "no holds in force\n"
    assert main(["holds", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"holds": []}


@pytest.mark.parametrize("arguments", [["hold", "b-1", "--reason", "r"], ["release", "b-1"]])
def test_hold_and_release_refuse_memory_state(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    monkeypatch.setenv("GES_RETENTION_STATE", ":memory:")
    assert main(["--log-format", "console", *arguments]) == 2
    err = capsys.readouterr().err
    assert f"`{arguments[0]}` needs a durable state" in err and ":memory:" in err


COMMANDS = [
    ["hold", "b-1", "--reason", "r"],
    ["release", "b-1"],
    ["holds"],
    ["why", "b-1"],
    ["history"],
]


@pytest.mark.parametrize("arguments", COMMANDS, ids=lambda a: a[0])
def test_a_missing_state_is_exit_2_naming_the_location_and_is_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    path = tmp_path / "nowhere" / "state.db"
    monkeypatch.setenv("GES_RETENTION_STATE", str(path))
    assert main(["--log-format", "console", *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"no state at {path}" in captured.err
    assert not path.exists() and not path.parent.exists()


@pytest.mark.parametrize("arguments", COMMANDS, ids=lambda a: a[0])
def test_the_default_location_is_named_when_the_setting_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert main(["--log-format", "console", *arguments]) == 2
    assert str(tmp_path / "xdg" / "ges-retention" / "state.db") in capsys.readouterr().err


@pytest.mark.parametrize("arguments", COMMANDS, ids=lambda a: a[0])
def test_a_state_from_a_newer_program_is_exit_2_and_left_untouched(
    state: StateLocation, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    assert state.path is not None
    with sqlite3.connect(state.path) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', '2099-01-01')")
    conn.close()
    before = state.path.read_bytes()
    assert main(["--log-format", "console", *arguments]) == 2
    err = capsys.readouterr().err
    assert "schema version 99, newer than this program" in err and str(state.path) in err
    assert state.path.read_bytes() == before


@pytest.mark.parametrize("arguments", COMMANDS, ids=lambda a: a[0])
def test_a_state_from_an_older_program_is_exit_2_and_not_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    location = resolve_state_location(str(tmp_path / "old.db"))

    async def create_old() -> None:
        store = await open_store(location, mode="create", target_version=1)
        assert store is not None
        await store.close()

    asyncio.run(create_old())
    monkeypatch.setenv("GES_RETENTION_STATE", str(location.path))
    assert main(["--log-format", "console", *arguments]) == 2
    assert "older than" in capsys.readouterr().err
    with sqlite3.connect(str(location.path)) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == 1
    conn.close()


def test_a_bad_state_setting_is_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GES_RETENTION_STATE", "mysql://db.example/state")
    assert main(["--log-format", "console", "holds"]) == 2
    assert "unsupported state URL scheme" in capsys.readouterr().err


def test_the_state_setting_is_read_like_every_setting_from_a_dot_env_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = resolve_state_location(str(tmp_path / "from-dotenv.db"))
    asyncio.run(seed_journal(location))
    Path(".env").write_text(f"GES_RETENTION_STATE={location.path}\n")  # the test's own working directory
    assert main(["hold", "b-env", "--reason", "r"]) == 0
    assert f"state: {location.path}" in capsys.readouterr().out
    assert "b-env" in {h.backup_id for h in _holds(location)}
