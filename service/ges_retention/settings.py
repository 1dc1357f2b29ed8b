"""Process settings from the environment (`GES_RETENTION_*`), a `.env` file and `/run/secrets/`.

Exactly one complete credential scheme is needed by the commands that call the API: a static token, an AK/SK pair
(optionally with a security token), or an IAM password login. `HUAWEICLOUD_SDK_AK`/`_SK`, the official SDK's names,
are read as the AK/SK pair only when no `GES_RETENTION_` credential is set. Secrets are `SecretStr`: never in a repr,
a log line or an error message (errors name the variables, never their values).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ges_retention.endpoints import check_endpoint
from ges_retention.errors import GesRetentionError

__all__ = [
    "AkSkCredentials",
    "Credentials",
    "PasswordCredentials",
    "Settings",
    "SettingsError",
    "TokenCredentials",
    "load_settings",
]

SECRETS_DIR = "/run/secrets"
PREFIX = "GES_RETENTION_"


# Fields whose blank value means "not set"; surrounding whitespace (a trailing newline in a secrets file) is dropped.
_STRIPPED = (
    "token",
    "ak",
    "sk",
    "security_token",
    "iam_user",
    "iam_password",
    "iam_domain",
    "iam_endpoint",
    "sdk_ak",
    "sdk_sk",
    "endpoint",
    "http_token",
    "ca_bundle",
    "state",
)
# Credentials go into headers, signatures and a login body: a control character there fails only at the first call.
_CREDENTIALS = ("token", "ak", "sk", "security_token", "iam_user", "iam_password", "iam_domain", "sdk_ak", "sdk_sk")


class SettingsError(GesRetentionError, ValueError):
    """Invalid or incomplete settings; the message names variables, never values."""


@dataclass(frozen=True, slots=True)
class TokenCredentials:
    token: str = field(repr=False)
    scheme: Literal["token"] = "token"


@dataclass(frozen=True, slots=True)
class AkSkCredentials:
    ak: str
    sk: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    scheme: Literal["aksk"] = "aksk"


@dataclass(frozen=True, slots=True)
class PasswordCredentials:
    user: str
    password: str = field(repr=False)
    domain: str
    iam_endpoint: str | None
    scheme: Literal["password"] = "password"


Credentials = TokenCredentials | AkSkCredentials | PasswordCredentials


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
    )

    token: SecretStr | None = None
    ak: str | None = None
    sk: SecretStr | None = None
    security_token: SecretStr | None = None
    iam_user: str | None = None
    iam_password: SecretStr | None = None
    iam_domain: str | None = None
    iam_endpoint: str | None = None
    sdk_ak: str | None = Field(default=None, validation_alias=AliasChoices("HUAWEICLOUD_SDK_AK"))
    sdk_sk: SecretStr | None = Field(default=None, validation_alias=AliasChoices("HUAWEICLOUD_SDK_SK"))

    endpoint: str | None = None
    concurrency: int = Field(default=8, ge=1, le=1024)
    # Requests per second per (endpoint, project); 0 = no limit; `auto` = adaptive (see `ges.rate_control`).
    rate_limit: float | Literal["auto"] = 10.0
    rate_start: float = Field(default=10.0, gt=0, le=100_000)
    rate_max: float = Field(default=200.0, gt=0, le=100_000)
    page_size: int = Field(default=100, ge=1, le=1000)
    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    request_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    run_deadline_s: float = Field(default=3600.0, gt=0)
    shutdown_grace_s: float = Field(default=30.0, ge=0, le=3600)
    # A changed policy file is used once two reads this far apart agree (a half-written file is never acted on).
    reload_settle_s: float = Field(default=1.0, ge=0, le=60)
    # PostgreSQL leases (several replicas): renewed every TTL/3; a lease is trusted locally until TTL - 1 s.
    lease_ttl_s: float = Field(default=30.0, gt=1, le=3600)
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    http: str = "127.0.0.1:9464"
    http_token: SecretStr | None = None
    ca_bundle: str | None = None
    # The journal (`state/`): a SQLite path, a postgresql:// URL or `:memory:`; None = the default path
    # (`state/location.py`). Resolved and opened by the composition root, never here: a URL may carry a password.
    state: SecretStr | None = None
    state_keep_days: int = Field(default=400, ge=1, le=100_000)
    state_lock_timeout_s: float = Field(default=30.0, ge=0, le=86_400)

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("rate_limit", mode="before")
    @classmethod
    def _rate_limit(cls, value: Any) -> float | str:
        # One clear message instead of pydantic's two (one per member of the union).
        text = value.strip().lower() if isinstance(value, str) else value
        if text == "auto":
            return "auto"
        try:
            rate = float(text)
        except (TypeError, ValueError):
            raise ValueError("must be a number of requests per second (0 = no limit) or auto") from None
        if not 0 <= rate <= 100_000:
            raise ValueError("must be from 0 (no limit) to 100000 requests per second, or auto")
        return rate

    @field_validator("rate_max")
    @classmethod
    def _rate_max(cls, value: float, info: ValidationInfo) -> float:
        start = info.data.get("rate_start")
        if start is not None and value < start:
            raise ValueError(f"must be at least {PREFIX}RATE_START ({start:g})")
        return value

    @field_validator(*_STRIPPED, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator(*_CREDENTIALS, "http_token")
    @classmethod
    def _no_control_characters(cls, value: str | SecretStr | None) -> str | SecretStr | None:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            raise ValueError("contains a control character (a stray newline or tab?)")  # never the value itself
        return value

    @field_validator("endpoint", "iam_endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_endpoint(value, what="the URL")

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not Path(value).is_file():
            raise ValueError("CA bundle file does not exist")
        try:
            ssl.create_default_context().load_verify_locations(cafile=value)
        except (ssl.SSLError, OSError, ValueError):
            raise ValueError("CA bundle is not a readable PEM file of certificates") from None
        return value

    @field_validator("http")
    @classmethod
    def _listener(cls, value: str) -> str:
        value = value.strip()
        if value:
            parse_listener(value)
        return value

    def listener(self) -> tuple[str, int] | None:
        """(host, port) of the daemon's HTTP listener, or None when disabled."""
        return parse_listener(self.http) if self.http else None

    def credentials(self) -> Credentials:
        """The one complete credential scheme; `SettingsError` naming the variables otherwise."""
        schemes: dict[str, list[tuple[str, object]]] = {
            "token": [("TOKEN", self.token)],
            "AK/SK": [("AK", self.ak), ("SK", self.sk)],
            "IAM password": [
                ("IAM_USER", self.iam_user),
                ("IAM_PASSWORD", self.iam_password),
                ("IAM_DOMAIN", self.iam_domain),
            ],
        }
        if self.security_token is not None:
            schemes["AK/SK"].append(("SECURITY_TOKEN", self.security_token))
        started = {name: parts for name, parts in schemes.items() if any(v is not None for _, v in parts)}
        if len(started) > 1:
            names = " and ".join(
                f"{name} ({', '.join(PREFIX + var for var, v in parts if v is not None)})"
                for name, parts in started.items()
            )
            raise SettingsError(f"more than one credential scheme is set: {names}; set exactly one")
        if not started:
            if self.sdk_ak is not None or self.sdk_sk is not None:
                if self.sdk_ak is None or self.sdk_sk is None:
                    absent = "HUAWEICLOUD_SDK_AK" if self.sdk_ak is None else "HUAWEICLOUD_SDK_SK"
                    raise SettingsError(f"incomplete AK/SK credentials: {absent} is not set")
                return AkSkCredentials(self.sdk_ak, self.sdk_sk.get_secret_value())
            raise SettingsError(
                f"no credentials: set {PREFIX}TOKEN, or {PREFIX}AK and {PREFIX}SK, "
                f"or {PREFIX}IAM_USER, {PREFIX}IAM_PASSWORD and {PREFIX}IAM_DOMAIN"
            )
        name, parts = next(iter(started.items()))
        missing = [PREFIX + var for var, value in parts if value is None and var != "SECURITY_TOKEN"]
        if missing:
            raise SettingsError(f"incomplete {name} credentials: {', '.join(missing)} not set")
        if self.token is not None:
            return TokenCredentials(self.token.get_secret_value())
        if self.ak is not None and self.sk is not None:
            security = self.security_token.get_secret_value() if self.security_token else None
            return AkSkCredentials(self.ak, self.sk.get_secret_value(), security)
        assert self.iam_user and self.iam_password and self.iam_domain  # guaranteed by `missing` above
        return PasswordCredentials(
            self.iam_user, self.iam_password.get_secret_value(), self.iam_domain, self.iam_endpoint
        )

    def secret_values(self) -> list[str]:
        """Every secret this process holds, for the log redaction processor."""
        secrets = [self.token, self.sk, self.security_token, self.iam_password, self.sdk_sk, self.http_token]
        values = [s.get_secret_value() for s in secrets if s is not None]
        password = self.state_password()
        return values + ([password] if password else [])

    def state_value(self) -> str | None:
        """`GES_RETENTION_STATE` as written (None: the default location)."""
        return self.state.get_secret_value() if self.state is not None else None

    def state_password(self) -> str | None:
        """The password of a `postgresql://` state URL, for the log redaction processor."""
        value = self.state_value()
        if value is None or "://" not in value:
            return None
        from urllib.parse import parse_qs, urlsplit

        try:
            parts = urlsplit(value)
            password = parts.password or next(iter(parse_qs(parts.query).get("password", [])), None)
        except ValueError:
            return None
        return password or None


def parse_listener(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"listener must be HOST:PORT, got {value!r}")
    return host, int(port_text)


def load_settings(*, env_file: str | None = ".env", secrets_dir: str | None = None) -> Settings:
    """Read the settings; `SettingsError` with one line per bad variable (names, not values)."""
    if secrets_dir is None and os.path.isdir(SECRETS_DIR):
        secrets_dir = SECRETS_DIR
    try:
        return Settings(_env_file=env_file, _secrets_dir=secrets_dir)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            name = str(error["loc"][0]) if error["loc"] else "?"
            variable = name if name.startswith("HUAWEICLOUD") else PREFIX + name.upper()
            problems.append(f"{variable}: {error['msg'].removeprefix('Value error, ')}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
