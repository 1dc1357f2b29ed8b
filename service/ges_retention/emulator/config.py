"""The emulator's knobs: credentials, latency, rate limit, faults; with their JSON form for the control API.

`EmulatorConfig` is mutable on purpose: the running app reads it on every request, so a test may change
`emulator.config.latency_ms` directly, or PUT `/_emulator/config`, and the next request sees it.

JSON shape (GET/PUT `/_emulator/config`; a PUT may send any subset of the keys, each one replaces the old value):

    {"project_ids": ["0a1b..."],
     "access_keys": [{"ak": "...", "sk": "...", "project_id": "...", "security_token": null}],
     "tokens": {"emulator-token": "0a1b..."},
     "iam_users": [{"domain": "emulator", "name": "retention", "password": "..."}],
     "agencies": [{"domain": "other-account", "name": "ges-retention", "project_ids": ["9f8e..."]}],
     "security_token_lifetime_s": null,
     "token_lifetime_s": 86400, "latency_ms": 0, "latency_jitter_ms": 0, "rate_limit_per_s": 0,
     "faults": {"delete_backup": {"error_500": 0.1, "error_503": 0, "drop": 0, "hang": 0, "repeat": 0}},
     "hang_s": 60, "backup_duration_s": 0, "seed": 0,
     "backup_quota": -1, "quota_without_backup": false, "graph_count_extra": 0}

`backup_quota` is the most backups a project may hold (-1 = unlimited): `GET .../graphs/quotas` answers what is left,
and a create beyond it is 400 GES.7019. `quota_without_backup` leaves the `backup` entry out of that answer.
`graph_count_extra` reports that many more graphs in `graph_count` than the listing holds (an incomplete listing).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ges_retention.endpoints import PROJECT_ID_RE

__all__ = [
    "DEFAULT_AK",
    "DEFAULT_IAM_DOMAIN",
    "DEFAULT_IAM_PASSWORD",
    "DEFAULT_IAM_USER",
    "DEFAULT_PROJECT_ID",
    "DEFAULT_SK",
    "DEFAULT_TOKEN",
    "GES_OPERATIONS",
    "OPERATIONS",
    "PROJECT_ID_RE",
    "AccessKey",
    "Agency",
    "ConfigError",
    "EmulatorConfig",
    "FaultRates",
    "IamUser",
]

# Throwaway credentials of the emulator: printed by `ges-retention emulator`, never real secrets.
# The examples' project (config/*.example.yaml, the README), so that following the README works as written.
DEFAULT_PROJECT_ID = "0a1b2c3d4e5f"
DEFAULT_AK = "EMULATORAK0000000001"
DEFAULT_SK = "emulator-secret-key"
DEFAULT_TOKEN = "emulator-token"  # noqa: S105 (a published test credential)
DEFAULT_IAM_DOMAIN = "emulator"
DEFAULT_IAM_USER = "retention"
DEFAULT_IAM_PASSWORD = "emulator-password"  # noqa: S105 (a published test credential)

GES_OPERATIONS = (
    "list_graphs",
    "list_backups",
    "list_graph_backups",
    "delete_backup",
    "create_backup",
    "delete_graph",
    "list_quotas",
)
OPERATIONS = (*GES_OPERATIONS, "iam_token", "iam_securitytokens")


class ConfigError(ValueError):
    """A knob has a bad value; the message names it."""


@dataclass(frozen=True, slots=True)
class AccessKey:
    """An AK/SK pair valid for one project; with `security_token` it is a temporary credential."""

    ak: str
    sk: str
    project_id: str
    security_token: str | None = None


@dataclass(frozen=True, slots=True)
class IamUser:
    domain: str
    name: str
    password: str


@dataclass(frozen=True, slots=True)
class Agency:
    """An IAM agency of another account (`domain`): whoever assumes it acts in `project_ids` (list them in
    `project_ids` of the config too, so that they exist). Every authenticated caller may assume it."""

    domain: str
    name: str
    project_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probabilities (each 0..1, summing to at most 1) of the injected faults of one operation."""

    error_500: float = 0.0
    error_503: float = 0.0
    drop: float = 0.0  # the connection is closed without an answer, before the operation happens
    hang: float = 0.0  # no answer for `hang_s` (past any sane client timeout), then the normal answer
    # Listings only, drawn apart from the others: the page at offset 0 whatever the offset (a server repeating itself).
    repeat: float = 0.0

    @property
    def total(self) -> float:
        return self.error_500 + self.error_503 + self.drop + self.hang


@dataclass(slots=True)
class EmulatorConfig:
    """Every knob of the emulator. Defaults: the throwaway credentials, no latency, no limit, no faults."""

    project_ids: list[str] = field(default_factory=lambda: [DEFAULT_PROJECT_ID])
    access_keys: list[AccessKey] = field(
        default_factory=lambda: [AccessKey(DEFAULT_AK, DEFAULT_SK, DEFAULT_PROJECT_ID)]
    )
    tokens: dict[str, str] = field(default_factory=lambda: {DEFAULT_TOKEN: DEFAULT_PROJECT_ID})
    iam_users: list[IamUser] = field(
        default_factory=lambda: [IamUser(DEFAULT_IAM_DOMAIN, DEFAULT_IAM_USER, DEFAULT_IAM_PASSWORD)]
    )
    token_lifetime_s: float = 86_400.0
    agencies: list[Agency] = field(default_factory=list)
    # Lifetime of an agency's temporary credentials; None = the `duration_seconds` asked (0 = expired at once).
    security_token_lifetime_s: float | None = None
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    # Per project, over any sliding 1-second window; 0 = no limit.
    rate_limit_per_s: int = 0
    faults: dict[str, FaultRates] = field(default_factory=dict)
    hang_s: float = 60.0
    # A backup made through the API is `backing_up` this long (seconds of the emulator's clock), then `success`.
    backup_duration_s: float = 0.0
    # Seeds the emulator's random choices (faults, jitter, ids of created backups).
    seed: int = 0
    # The most backups one project may hold; -1 = unlimited (see the module docstring).
    backup_quota: int = -1
    quota_without_backup: bool = False
    graph_count_extra: int = 0

    @property
    def default_project_id(self) -> str:
        return self.project_ids[0] if self.project_ids else DEFAULT_PROJECT_ID

    def agency(self, domain: str, name: str) -> Agency | None:
        return next((a for a in self.agencies if (a.domain, a.name) == (domain, name)), None)

    def access_key(self, ak: str) -> AccessKey | None:
        return next((key for key in self.access_keys if key.ak == ak), None)

    def fault_rates(self, operation: str) -> FaultRates | None:
        return self.faults.get(operation)

    def to_json(self) -> dict[str, Any]:
        return {
            "project_ids": list(self.project_ids),
            "access_keys": [
                {"ak": k.ak, "sk": k.sk, "project_id": k.project_id, "security_token": k.security_token}
                for k in self.access_keys
            ],
            "tokens": dict(self.tokens),
            "iam_users": [{"domain": u.domain, "name": u.name, "password": u.password} for u in self.iam_users],
            "token_lifetime_s": self.token_lifetime_s,
            "agencies": [
                {"domain": a.domain, "name": a.name, "project_ids": list(a.project_ids)} for a in self.agencies
            ],
            "security_token_lifetime_s": self.security_token_lifetime_s,
            "latency_ms": self.latency_ms,
            "latency_jitter_ms": self.latency_jitter_ms,
            "rate_limit_per_s": self.rate_limit_per_s,
            "faults": {
                op: {
                    "error_500": r.error_500,
                    "error_503": r.error_503,
                    "drop": r.drop,
                    "hang": r.hang,
                    "repeat": r.repeat,
                }
                for op, r in self.faults.items()
            },
            "hang_s": self.hang_s,
            "backup_duration_s": self.backup_duration_s,
            "seed": self.seed,
            "backup_quota": self.backup_quota,
            "quota_without_backup": self.quota_without_backup,
            "graph_count_extra": self.graph_count_extra,
        }

    def apply(self, patch: Any) -> list[str]:
        """Validate a JSON patch (a subset of `to_json()`'s keys) and apply it all, or raise `ConfigError` and
        change nothing. Returns the keys changed."""
        if not isinstance(patch, Mapping):
            raise ConfigError("the configuration must be a JSON object")
        unknown = sorted(set(patch) - {f.name for f in fields(self)})
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
        parsed = {key: _PARSERS[key](key, value) for key, value in patch.items()}
        for key, value in parsed.items():
            setattr(self, key, value)
        return list(parsed)

    def validate(self) -> None:
        """Check a config built in code the same way as one sent to the control API."""
        for key, value in self.to_json().items():
            _PARSERS[key](key, value)


def _number(key: str, value: Any, *, maximum: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key} must be a number")
    if not 0 <= value <= maximum:
        bounds = f"between 0 and {maximum:g}" if maximum < math.inf else ">= 0"
        raise ConfigError(f"{key} must be a number {bounds}, got {value}")
    return float(value)


def _non_negative(key: str, value: Any) -> float:
    return _number(key, value)


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer")
    return value


def _count(key: str, value: Any) -> int:
    if _integer(key, value) < 0:
        raise ConfigError(f"{key} must be >= 0, got {value}")
    return int(value)


def _quota(key: str, value: Any) -> int:
    if _integer(key, value) < -1:
        raise ConfigError(f"{key} must be -1 (unlimited) or a count >= 0, got {value}")
    return int(value)


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false")
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string")
    return value


def _project_id(key: str, value: Any) -> str:
    if not isinstance(value, str) or not PROJECT_ID_RE.fullmatch(value):
        raise ConfigError(f"{key} must be 1 to 64 letters and digits, got {value!r}")
    return value


def _objects(key: str, value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ConfigError(f"{key} must be a list of objects")
    return value


def _exact_keys(key: str, item: Mapping[str, Any], required: set[str], optional: frozenset[str] = frozenset()) -> None:
    missing = required - set(item)
    extra = set(item) - required - optional
    if missing or extra:
        raise ConfigError(f"{key} entries need exactly {sorted(required)} (optional {sorted(optional)})")


def _project_ids(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key} must be a non-empty list")
    return [_project_id(f"{key}[{i}]", v) for i, v in enumerate(value)]


def _access_keys(key: str, value: Any) -> list[AccessKey]:
    keys = []
    for i, item in enumerate(_objects(key, value)):
        _exact_keys(key, item, {"ak", "sk", "project_id"}, frozenset({"security_token"}))
        token = item.get("security_token")
        if token is not None:
            _string(f"{key}[{i}].security_token", token)
        keys.append(
            AccessKey(
                ak=_string(f"{key}[{i}].ak", item["ak"]),
                sk=_string(f"{key}[{i}].sk", item["sk"]),
                project_id=_project_id(f"{key}[{i}].project_id", item["project_id"]),
                security_token=token,
            )
        )
    return keys


def _tokens(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be an object mapping each token to its project id")
    return {_string(f"{key} token", t): _project_id(f"{key}[{t!r}]", p) for t, p in value.items()}


def _iam_users(key: str, value: Any) -> list[IamUser]:
    users = []
    for i, item in enumerate(_objects(key, value)):
        _exact_keys(key, item, {"domain", "name", "password"})
        users.append(IamUser(*(_string(f"{key}[{i}].{f}", item[f]) for f in ("domain", "name", "password"))))
    return users


def _agencies(key: str, value: Any) -> list[Agency]:
    agencies = []
    for i, item in enumerate(_objects(key, value)):
        _exact_keys(key, item, {"domain", "name", "project_ids"})
        projects = item["project_ids"]
        if not isinstance(projects, list):
            raise ConfigError(f"{key}[{i}].project_ids must be a list")
        agencies.append(
            Agency(
                domain=_string(f"{key}[{i}].domain", item["domain"]),
                name=_string(f"{key}[{i}].name", item["name"]),
                project_ids=tuple(_project_id(f"{key}[{i}].project_ids[{j}]", p) for j, p in enumerate(projects)),
            )
        )
    return agencies


def _optional_non_negative(key: str, value: Any) -> float | None:
    return None if value is None else _number(key, value)


def _faults(key: str, value: Any) -> dict[str, FaultRates]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be an object keyed by operation ({', '.join(OPERATIONS)})")
    result = {}
    for op, rates in value.items():
        if op not in OPERATIONS:
            raise ConfigError(f"{key}: unknown operation {op!r}; known: {', '.join(OPERATIONS)}")
        if not isinstance(rates, Mapping):
            raise ConfigError(f"{key}.{op} must be an object")
        names = {"error_500", "error_503", "drop", "hang", "repeat"}
        if set(rates) - names:
            raise ConfigError(f"{key}.{op}: unknown fault kinds {sorted(set(rates) - names)}; known: {sorted(names)}")
        parsed = FaultRates(**{k: _number(f"{key}.{op}.{k}", v, maximum=1.0) for k, v in rates.items()})
        if parsed.total > 1.0 + 1e-9:
            raise ConfigError(f"{key}.{op}: the fault probabilities add up to more than 1")
        result[op] = parsed
    return result


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "project_ids": _project_ids,
    "access_keys": _access_keys,
    "tokens": _tokens,
    "iam_users": _iam_users,
    "token_lifetime_s": _non_negative,
    "agencies": _agencies,
    "security_token_lifetime_s": _optional_non_negative,
    "latency_ms": _non_negative,
    "latency_jitter_ms": _non_negative,
    "rate_limit_per_s": _count,
    "faults": _faults,
    "hang_s": _non_negative,
    "backup_duration_s": _non_negative,
    "seed": _integer,
    "backup_quota": _quota,
    "quota_without_backup": _boolean,
    "graph_count_extra": _count,
}
