"""The policy file's models: what a retention policy says, validated, frozen, and nothing else.

The file (YAML, `version: 1`) has optional `defaults` and a list of `policies`. Both are first validated as written
(`Defaults`, `PolicyEntry`: every field optional, so an error points at the line the user wrote), then merged
(`merge_policy`) into a complete `Policy`. Reading YAML and turning errors into messages is `policy_loading`'s job.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable
from datetime import tzinfo
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ges_retention.cron import CronError, CronSchedule
from ges_retention.durations import Duration, DurationError
from ges_retention.endpoints import PROJECT_ID_RE, check_endpoint
from ges_retention.errors import shorten

__all__ = [
    "BUCKET_RULES",
    "KNOWN_BACKUP_METHODS",
    "UNLIMITED",
    "Agency",
    "Defaults",
    "FailedRule",
    "Keep",
    "Policy",
    "PolicyEntry",
    "PolicyFileDocument",
    "Safety",
    "Select",
    "canonical_definition",
    "definition_digest",
    "definition_document",
    "effective_definition",
    "merge_policy",
    "never_runs",
]

UNLIMITED: Final = "unlimited"
BUCKET_RULES: Final = ("hourly", "daily", "weekly", "monthly", "yearly")

# The methods GES documents today; another lowercase word is accepted with a warning (GES may add methods).
KNOWN_BACKUP_METHODS: Final = ("auto", "manual", "import")

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}[a-z0-9]")
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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Select(_Model):
    """Which backups a policy manages: every condition must hold."""

    graphs: Globs = Field(default_factory=lambda: ["*"], min_length=1)
    exclude_graphs: Globs = Field(default_factory=list)
    # None = every method, including ones not known today. Exact lowercase words, not globs: `[Auto]` or `["*"]`
    # would silently select nothing (or everything).
    backup_methods: Annotated[list[BackupMethod], Field(min_length=1, max_length=100)] | None = None
    names: Globs = Field(default_factory=lambda: ["*"], min_length=1)
    # Backups whose graph no longer exists (deleted with keep_backup): managed like any (include), left alone
    # (exclude), or the only ones managed (only). Deciding needs a live graph listing (not `plan --from-file`).
    orphans: Literal["include", "exclude", "only"] = "include"

    def matches_orphan(self, orphan: bool | None) -> bool:
        """`orphan` None (not known) passes only `include`: `exclude` and `only` need to know (fail closed)."""
        if self.orphans == "include":
            return True
        if orphan is None:
            return False
        return orphan if self.orphans == "only" else not orphan

    def matches_graph(self, graph_id: str, graph_name: str) -> bool:
        """By exact graph id, or by name glob. A graph whose name is unknown (`""`: no record of it carries one)
        fails closed both ways: only `"*"` selects it, and any `exclude_graphs` entry excludes it."""
        if not graph_name:
            if graph_id not in self.graphs and "*" not in self.graphs:
                return False
            return not self.exclude_graphs
        if not _graph_matches(self.graphs, graph_id, graph_name):
            return False
        return not (self.exclude_graphs and _graph_matches(self.exclude_graphs, graph_id, graph_name))

    def matches_backup(self, backup_method: str, name: str) -> bool:
        """The conditions on the backup itself (its graph is checked by `matches_graph`)."""
        if self.backup_methods is not None and backup_method not in self.backup_methods:
            return False
        return _any_glob(self.names, name)


def _any_glob(patterns: Iterable[str], value: str) -> bool:
    return any(pattern == "*" or fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _graph_matches(patterns: list[str], graph_id: str, graph_name: str) -> bool:
    """Globs on the graph name, or exact graph ids."""
    return graph_id in patterns or _any_glob(patterns, graph_name)


class Keep(_Model):
    """The keep rules; a backup kept by any rule is kept. A unit: a policy's `keep` replaces the defaults'."""

    last: Count = 0
    hourly: Count = 0
    daily: Count = 0
    weekly: Count = 0
    monthly: Count = 0
    yearly: Count = 0
    within: DurationField | None = None
    names: Globs = Field(default_factory=list)
    ids: Globs = Field(default_factory=list)

    @model_validator(mode="after")
    def _keeps_something(self) -> Keep:
        counts = [self.last, *(getattr(self, rule) for rule in BUCKET_RULES)]
        if not any(c == UNLIMITED or c for c in counts) and self.within is None and not self.names and not self.ids:
            raise ValueError(
                "keep must hold at least one rule that can keep something "
                "(a count > 0 or 'unlimited', 'within', or a pin in 'names'/'ids')"
            )
        return self

    def is_pinned_name(self, name: str) -> bool:
        return bool(self.names) and _any_glob(self.names, name)


class FailedRule(_Model):
    # Absent = failed backups are never deleted.
    delete_after: DurationField | None = None


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


class Safety(_Model):
    min_keep: int = Field(default=1, ge=0)
    max_deletes: int = Field(default=100, ge=0)
    # None = 0 = off. Real runs need a durable state for it (pending clocks); `run` on `:memory:` refuses it.
    confirm_after: ConfirmAfter = None
    # The change gate: a changed (or new) definition deleting more than this many backups its baseline would keep
    # is held until acknowledged. The smaller of the baseline's and the new budget applies.
    change_budget: Count = 10
    # An acknowledgement written in the file; not part of the effective definition (it approves one).
    ack: Ack = None


# IAM agency and domain (account) names: printable, no control characters; IAM's own limit is 64.
_AGENCY_NAME_RE = re.compile(r"[A-Za-z0-9_.@+-](?:[A-Za-z0-9_.@+ -]{0,62}[A-Za-z0-9_.@+-])?")


class Agency(_Model):
    """`agency: {domain, name}`: act in another account through an IAM agency (temporary credentials from
    `assume_role`). A unit: a policy's `agency` replaces the defaults' whole, and `agency: null` removes it."""

    domain: str
    name: str

    @field_validator("domain", "name")
    @classmethod
    def _iam_name(cls, value: str, info: ValidationInfo) -> str:
        if not _AGENCY_NAME_RE.fullmatch(value):
            raise ValueError(
                f"an agency's {info.field_name} is 1 to 64 of A-Z a-z 0-9 _ . @ + - (inner spaces allowed), "
                f"got {shorten(value)}"
            )
        return value

    def label(self) -> str:
        return f"{self.domain}/{self.name}"


class _PolicyFields(_Model):
    """Every field a policy or the defaults may set, all optional as written in the file."""

    project_id: str | None = None
    region: str | None = None
    endpoint: str | None = None
    schedule: CronField | None = None
    timezone: Timezone | None = None
    enabled: bool | None = None
    run_on_change: bool | None = None
    dry_run: bool | None = None
    select: Select | None = None
    group_by: Literal["graph", "graph_and_method"] | None = None
    keep: Keep | None = None
    anchor: Literal["newest", "now"] | None = None
    failed: FailedRule | None = None
    safety: Safety | None = None
    agency: Agency | None = None

    # `region`, `endpoint`, `schedule` and `agency` may be null (a policy's null clears the defaults' value); the
    # others not.
    # A field validator (not a model one) so that the error's key path is the field's: `policies[0].dry_run`.
    @field_validator(
        "project_id",
        "timezone",
        "enabled",
        "run_on_change",
        "dry_run",
        "select",
        "group_by",
        "keep",
        "anchor",
        "failed",
        "safety",
        mode="before",
    )
    @classmethod
    def _no_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            raise ValueError(f"{info.field_name!r} must not be empty (null); leave it out to use the default")
        return value

    @field_validator("project_id")
    @classmethod
    def _project_id(cls, value: str | None) -> str | None:
        if value is not None and not PROJECT_ID_RE.fullmatch(value):
            raise ValueError(f"project_id must be 1 to 64 letters and digits, got {shorten(value)}")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION_RE.fullmatch(value):
            raise ValueError(f"region must look like 'cn-north-4', got {shorten(value)}")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else check_endpoint(value)


class Defaults(_PolicyFields):
    """`defaults:` merged into every policy."""


class PolicyEntry(_PolicyFields):
    """One item of `policies:` as written."""

    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise ValueError(f"a policy name is 1 to 64 of A-Z a-z 0-9 _ . -, got {shorten(value)}")
        return value


class PolicyFileDocument(_Model):
    """The file as written: the JSON Schema of the policy file is this model's."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        title="ges-retention policy file",
        json_schema_extra={"$id": ""},
    )

    version: Literal[1]
    defaults: Defaults | None = None
    policies: list[PolicyEntry] = Field(min_length=1, max_length=10_000)

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_an_integer(cls, value: Any) -> Any:
        # `Literal[1]` alone would take YAML's `true` and `1.0` (both == 1).
        if isinstance(value, bool | float):
            raise ValueError(f"version must be 1, got {shorten(value)}")
        return value


class Policy(_Model):
    """A complete policy: an entry with the defaults merged in and the built-in defaults filled."""

    name: str
    project_id: str
    region: str | None = None
    endpoint: str | None = None
    schedule: CronField | None = None
    timezone: Timezone = "UTC"
    # False = paused: never run by anything, still counted for overlap protection.
    enabled: bool = True
    # Daemon: run when this policy's own effective definition changes (see `definition_digest`).
    run_on_change: bool = False
    dry_run: bool = False
    select: Select = Field(default_factory=Select)
    group_by: Literal["graph", "graph_and_method"] = "graph"
    keep: Keep
    anchor: Literal["newest", "now"] = "newest"
    failed: FailedRule = Field(default_factory=FailedRule)
    safety: Safety = Field(default_factory=Safety)
    # None = the process's own credentials act in `project_id`.
    agency: Agency | None = None

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    def api_endpoint(self) -> str | None:
        """The GES base URL: the policy's `endpoint`, else derived from `region`; None if neither is set."""
        if self.endpoint:
            return self.endpoint
        if self.region:
            return f"https://ges.{self.region}.myhuaweicloud.com"
        return None


# Mappings merged key by key; `keep` is deliberately not here: a policy's keep replaces the defaults' keep.
_MERGED_KEY_BY_KEY = ("select", "safety", "failed")


def merge_policy(defaults: Defaults | None, entry: PolicyEntry) -> dict[str, Any]:
    """The fields of `entry` over those of `defaults`, as keyword data for `Policy`."""
    merged: dict[str, Any] = {}
    if defaults is not None:
        merged.update({key: getattr(defaults, key) for key in defaults.model_fields_set})
    for key in entry.model_fields_set:
        value = getattr(entry, key)
        base = merged.get(key)
        if key in _MERGED_KEY_BY_KEY and isinstance(base, BaseModel) and isinstance(value, BaseModel):
            value = base.model_copy(update={k: getattr(value, k) for k in value.model_fields_set})
        merged[key] = value
    return {key: value for key, value in merged.items() if value is not None}


def effective_definition(policy: Policy) -> str:
    """The policy as it acts: every default filled in, `name` and `safety.ack` left out, as canonical JSON.

    Sorted keys and no whitespace, so a comment, a reordering of the file, a key moved into `defaults` or an edit of
    another policy gives the same text, and any change of what this policy does gives another.
    """
    return canonical_definition(policy.model_dump(mode="json"))


def canonical_definition(document: dict[str, Any]) -> str:
    """A dumped policy as its effective definition's text (see `effective_definition`); `document` is not changed."""
    document = {key: value for key, value in document.items() if key != "name"}
    if document.get("agency") is None:
        # No agency is the only meaning a file without the key ever had: its digest stays what it was.
        document.pop("agency", None)
    safety = document.get("safety")
    if isinstance(safety, dict):
        # An acknowledgement approves a definition; it is not part of it.
        document["safety"] = {key: value for key, value in safety.items() if key != "ack"}
    if isinstance(document.get("schedule"), str):
        document["schedule"] = " ".join(document["schedule"].split())  # spacing inside the cron changes nothing
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def definition_document(policy: Policy) -> dict[str, Any]:
    """The effective definition as a JSON value (what the change gate's digest and a baseline hold)."""
    document: dict[str, Any] = json.loads(effective_definition(policy))
    return document


def definition_digest(policy: Policy) -> str:
    """The sha256 (hex) of the policy's effective definition: what `run_on_change` and the change gate compare."""
    return hashlib.sha256(effective_definition(policy).encode("utf-8")).hexdigest()


def never_runs(policy: Policy) -> bool:
    """An enabled policy that nothing triggers by itself (no `schedule`, no `run_on_change`): only run by hand."""
    return policy.enabled and policy.schedule is None and not policy.run_on_change
