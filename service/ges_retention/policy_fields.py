"""The policy file's field types: how a duration, a count, a cron expression, a timezone, a backup method or an
acknowledgement is read from YAML, checked (one clear message each) and described in the JSON Schema.

The models that use them (`policy`, `policy_selection`) derive from `PolicyModel`. A parser here raises `ValueError`,
which pydantic reports at the field's key path.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema

from ges_retention.cron import CronError, CronSchedule
from ges_retention.durations import Duration, DurationError
from ges_retention.errors import shorten

__all__ = [
    "KNOWN_BACKUP_METHODS",
    "UNLIMITED",
    "Ack",
    "BackupMethod",
    "ConfirmAfter",
    "Count",
    "CronField",
    "DurationField",
    "Globs",
    "PolicyModel",
    "Timezone",
]

UNLIMITED: Final = "unlimited"

# The methods GES documents today; another lowercase word is accepted with a warning (GES may add methods).
KNOWN_BACKUP_METHODS: Final = ("auto", "manual", "import")

_METHOD_RE = re.compile(r"[a-z][a-z0-9_]*")
# IANA names: `UTC`, `Europe/Berlin`, `America/Argentina/Buenos_Aires`, `Etc/GMT+5`; the longest is under 40.
_TIMEZONE_RE = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+){0,3}")
_TIMEZONE_MAX_CHARS = 64


def _parse_duration(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    try:
        return Duration.parse(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


def _parse_count(value: Any) -> int | str:
    """A count is an integer >= 0 or the word `unlimited`."""
    if value == UNLIMITED:
        return UNLIMITED
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number >= 0 (decimal digits) or 'unlimited', got {shorten(value)}")
    if value < 0:
        raise ValueError(f"a count cannot be negative (got {shorten(value)})")
    return value


def _parse_cron(value: Any) -> CronSchedule:
    if isinstance(value, CronSchedule):
        return value
    try:
        return CronSchedule.parse(value)
    except CronError as exc:
        raise ValueError(str(exc)) from None


def _parse_timezone(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"a timezone must be an IANA name like 'Europe/Berlin', got {shorten(value)}")
    if value.lower() in ("localtime", "local"):
        # The machine's zone would make the same policy keep different backups on different hosts.
        raise ValueError(f"timezone {shorten(value)} depends on the machine: name the zone, like 'Europe/Berlin'")
    unknown = f"unknown timezone {shorten(value)}: use an IANA name like 'UTC' or 'Asia/Shanghai'"
    if len(value) > _TIMEZONE_MAX_CHARS or not _TIMEZONE_RE.fullmatch(value):
        raise ValueError(unknown)
    try:
        ZoneInfo(value)
    # A zone directory (`Europe`, `Etc`) is an OSError (IsADirectoryError) from the zone database, not "not found".
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(unknown) from None
    return value


def _check_backup_method(value: str) -> str:
    if not _METHOD_RE.fullmatch(value):
        raise ValueError(
            f"a backup method is a lowercase word like {', '.join(KNOWN_BACKUP_METHODS)} (no globs), "
            f"got {shorten(value)}"
        )
    return value


DurationField = Annotated[
    Duration,
    PlainValidator(_parse_duration),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d+y)?(\d+mo)?(\d+w)?(\d+d)?(\d+h)?(\d+min)?(\d+s)?$",
            "examples": ["2d", "1y6mo", "36h", "90min"],
        }
    ),
]


def _parse_confirm_after(value: Any) -> Duration | None:
    """`0` (or `"0"`) = two-phase deletion off (None); otherwise a duration."""
    if value is None:
        raise ValueError("'confirm_after' must not be empty (null); use 0 to turn two-phase deletion off")
    if (value == 0 and not isinstance(value, bool)) or value == "0":
        return None
    return _parse_duration(value)


ConfirmAfter = Annotated[
    Duration | None,
    PlainValidator(_parse_confirm_after),
    PlainSerializer(lambda value: 0 if value is None else str(value), return_type=int | str),
    WithJsonSchema(
        {
            "anyOf": [
                {"const": 0},
                {"type": "string", "pattern": r"^(0|(\d+y)?(\d+mo)?(\d+w)?(\d+d)?(\d+h)?(\d+min)?(\d+s)?)$"},
            ],
            "description": "two-phase deletion: delete a backup only once it has been planned for deletion "
            "continuously this long; 0 = off",
            "examples": [0, "1d", "36h"],
        }
    ),
]
Count = Annotated[
    int | str,
    PlainValidator(_parse_count),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"const": UNLIMITED}]}),
]
CronField = Annotated[
    CronSchedule,
    PlainValidator(_parse_cron),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "standard 5-field crontab(5) expression; 0 and 7 = Sunday"}),
]
Timezone = Annotated[
    str,
    PlainValidator(_parse_timezone),
    WithJsonSchema({"type": "string", "description": "IANA timezone name"}),
]
Globs = Annotated[list[Annotated[str, Field(min_length=1, max_length=256)]], Field(max_length=1000)]
BackupMethod = Annotated[
    str,
    Field(min_length=1, max_length=64),
    AfterValidator(_check_backup_method),
    WithJsonSchema({"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 64}),
]


def _parse_ack(value: Any) -> str | None:
    """`safety.ack`: null, or the sha256 (64 hex digits) of a held definition's gate digest; kept lowercase."""
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA256_RE.fullmatch(value):
        raise ValueError(f"'ack' is the gate digest to acknowledge: 64 hex digits (sha256), got {shorten(value)}")
    return value.lower()


_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
Ack = Annotated[
    str | None,
    PlainValidator(_parse_ack),
    WithJsonSchema(
        {
            "anyOf": [{"type": "null"}, {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}],
            "description": "acknowledges a definition held by the change gate: its gate digest (sha256)",
        }
    ),
]


class PolicyModel(BaseModel):
    """The base of every model of the policy file: an unknown key is an error, values are frozen, types strict."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
