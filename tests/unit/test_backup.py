"""`Backup.from_api`: tolerant of new fields, strict about what retention needs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ges_retention.backup import KNOWN_STATUSES, Backup, InvalidBackupRecord

RECORD: dict[str, Any] = {
    "id": "b-001",
    "name": "nightly-2026-11-25",
    "backup_method": "auto",
    "graph_id": "g-123",
    "graph_name": "prod-graph",
    "status": "success",
    "start_timestamp": 1_795_608_000_000,  # 2026-11-25T12:00:00Z
    "start_time": "2026-11-25T12:00:00",
    "end_timestamp": 1_795_608_060_000,
    "end_time": "2026-11-25T12:01:00",
    "size": 1234,
    "duration": 60,
    "encrypted": False,
}


def record(**changes: Any) -> dict[str, Any]:
    out = dict(RECORD)
    for key, value in changes.items():
        if value is _DROP:
            out.pop(key)
        else:
            out[key] = value
    return out


_DROP = object()


def test_a_full_record_is_read_and_unknown_fields_are_ignored() -> None:
    backup = Backup.from_api({**RECORD, "brand_new_field": {"nested": [1, 2]}, "import_source": None})

    assert backup == Backup(
        id="b-001",
        graph_id="g-123",
        status="success",
        start_ms=1_795_608_000_000,
        name="nightly-2026-11-25",
        graph_name="prod-graph",
        backup_method="auto",
        size_mb=1234.0,
        encrypted=False,
    )
    assert backup.start == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert backup.orphan is None  # the API does not say: the runner finds out from the graph listing


@pytest.mark.parametrize("how", ["absent", "null"])
def test_a_size_absent_or_null_is_unknown_not_zero(how: str) -> None:
    # A backup still being made may not know its size: it is kept out of every sum, not counted as 0 MB.
    backup = Backup.from_api(record(status="backing_up", size=_DROP if how == "absent" else None))
    assert backup.size_mb is None
    assert Backup.from_api(backup.to_api()) == backup


@pytest.mark.parametrize("size", [0, 1, 2.5, 10**6])
def test_a_size_of_zero_or_more_mb_is_read(size: float) -> None:
    assert Backup.from_api(record(size=size)).size_mb == float(size)


@pytest.mark.parametrize("size", [-1, -0.5, "12", True, [1], {"mb": 1}, float("nan"), float("inf"), 10**400])
def test_a_negative_or_non_numeric_size_makes_the_record_invalid(size: object) -> None:
    with pytest.raises(InvalidBackupRecord, match="'size'") as caught:
        Backup.from_api(record(size=size))
    assert caught.value.field == "size"
    assert caught.value.backup_id == "b-001"


@pytest.mark.parametrize("encrypted", ["yes", 1, 0, []])
def test_encrypted_must_be_a_boolean(encrypted: object) -> None:
    with pytest.raises(InvalidBackupRecord, match="'encrypted'"):
        Backup.from_api(record(encrypted=encrypted))


def test_encrypted_absent_is_unknown() -> None:
    assert Backup.from_api(record(encrypted=_DROP)).encrypted is None


def test_optional_fields_may_be_missing_or_null() -> None:
    minimal = {"id": "b1", "graph_id": "g1", "status": "success", "start_timestamp": 0}
    assert Backup.from_api(minimal) == Backup("b1", "g1", "success", 0)
    nulls = Backup.from_api({**minimal, "name": None, "graph_name": None, "backup_method": None})
    assert (nulls.name, nulls.graph_name, nulls.backup_method) == ("", "", "")


def test_unknown_status_and_method_are_kept_as_they_are() -> None:
    backup = Backup.from_api(record(status="queued", backup_method="import"))
    assert backup.status == "queued"
    assert backup.status not in KNOWN_STATUSES
    assert backup.backup_method == "import"


@pytest.mark.parametrize("timestamp", [0, 253_402_300_799_999])
def test_timestamps_at_the_edges_of_the_range_are_accepted(timestamp: int) -> None:
    assert Backup.from_api(record(start_timestamp=timestamp)).start_ms == timestamp


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": _DROP}, "id"),
        ({"id": None}, "id"),
        ({"id": ""}, "id"),
        ({"id": 42}, "id"),
        ({"id": ["b-001"]}, "id"),
        ({"graph_id": _DROP}, "graph_id"),
        ({"graph_id": None}, "graph_id"),
        ({"graph_id": ""}, "graph_id"),
        ({"graph_id": 7}, "graph_id"),
        ({"status": _DROP}, "status"),
        ({"status": None}, "status"),
        ({"status": ""}, "status"),
        ({"status": True}, "status"),
        ({"start_timestamp": _DROP}, "start_timestamp"),
        ({"start_timestamp": None}, "start_timestamp"),
        ({"start_timestamp": True}, "start_timestamp"),
        ({"start_timestamp": False}, "start_timestamp"),
        ({"start_timestamp": 1_795_608_000_000.0}, "start_timestamp"),
        ({"start_timestamp": 1.5}, "start_timestamp"),
        ({"start_timestamp": -1}, "start_timestamp"),
        ({"start_timestamp": 253_402_300_800_000}, "start_timestamp"),
        ({"start_timestamp": "1795608000000"}, "start_timestamp"),
        ({"start_timestamp": "2026-11-25T12:00:00"}, "start_timestamp"),
        ({"name": 5}, "name"),
        ({"graph_name": ["x"]}, "graph_name"),
        ({"backup_method": 1}, "backup_method"),
    ],
)
def test_a_record_missing_or_mistyping_what_retention_needs_is_rejected(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidBackupRecord) as caught:
        Backup.from_api(record(**changes))

    assert caught.value.field == field
    assert field in str(caught.value)
    if field != "id":
        assert caught.value.backup_id == "b-001"


@pytest.mark.parametrize("value", [None, [], ["id", "b1"], "b1", 3])
def test_a_record_that_is_not_an_object_is_rejected(value: Any) -> None:
    with pytest.raises(InvalidBackupRecord, match="JSON object"):
        Backup.from_api(value)


def test_invalid_record_is_a_value_error() -> None:
    # Callers that treat any bad input alike can catch ValueError.
    with pytest.raises(ValueError, match="start_timestamp"):
        Backup.from_api(record(start_timestamp="soon"))


def test_to_api_round_trips_and_writes_a_utc_start_time() -> None:
    backup = Backup.from_api(RECORD)
    api = backup.to_api()

    assert Backup.from_api(api) == backup
    assert api["start_time"] == "2026-11-25T12:00:00"
    assert api["start_timestamp"] == RECORD["start_timestamp"]


def test_values_repeated_across_records_are_kept_once_and_unique_ones_are_not_interned() -> None:
    text = (
        '{"id": "b-%d", "name": "nightly-%d", "graph_id": "graph-7", "graph_name": "prod", "status": "success", '
        '"backup_method": "auto", "start_timestamp": 1700000000000}'
    )
    first, second = (Backup.from_api(json.loads(text % (n, n))) for n in (1, 2))
    # Two separate parses: without interning each field would be its own string object.
    assert first.graph_id is second.graph_id
    assert first.graph_name is second.graph_name
    assert first.status is second.status
    assert first.backup_method is second.backup_method
    assert (first.id, first.name, second.id, second.name) == ("b-1", "nightly-1", "b-2", "nightly-2")
