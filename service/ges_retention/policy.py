"""The policy file's models: what a retention policy says, validated, frozen, and nothing else.

The file (YAML, `version: 1`) has optional `defaults` and a list of `policies`. Both are first validated as written
(`Defaults`, `PolicyEntry`: every field optional, so an error points at the line the user wrote), then merged
(`merge_policy`) into a complete `Policy`. Reading YAML and turning errors into messages is `policy_loading`'s job;
the field types (durations, counts, cron, timezones) are `policy_fields`', the `select:` block is `policy_selection`'s
and a policy's effective definition and digest are `policy_definition`'s.
"""

from __future__ import annotations

import re
from datetime import tzinfo
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ges_retention.endpoints import PROJECT_ID_RE, check_endpoint
from ges_retention.errors import shorten
from ges_retention.policy_fields import (
    UNLIMITED,
    Ack,
    ConfirmAfter,
    Count,
    CronField,
    DurationField,
    Globs,
    PolicyModel,
    Timezone,
)
from ges_retention.policy_selection import Select, any_glob

__all__ = [
    "BUCKET_RULES",
    "Agency",
    "Defaults",
    "FailedRule",
    "Keep",
    "Policy",
    "PolicyEntry",
    "PolicyFileDocument",
    "Safety",
    "merge_policy",
    "never_runs",
]

BUCKET_RULES: Final = ("hourly", "daily", "weekly", "monthly", "yearly")

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}[a-z0-9]")


class Keep(PolicyModel):
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
        return bool(self.names) and any_glob(self.names, name)


class FailedRule(PolicyModel):
    # Absent = failed backups are never deleted.
    delete_after: DurationField | None = None


class Safety(PolicyModel):
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


class Agency(PolicyModel):
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


class _PolicyFields(PolicyModel):
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


class PolicyFileDocument(PolicyModel):
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


class Policy(PolicyModel):
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


def never_runs(policy: Policy) -> bool:
    """An enabled policy that nothing triggers by itself (no `schedule`, no `run_on_change`): only run by hand."""
    return policy.enabled and policy.schedule is None and not policy.run_on_change
