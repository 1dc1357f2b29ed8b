"""Settings: exactly one complete credential scheme, names not values in errors, secrets never in repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from ges_retention.settings import (
    AkSkCredentials,
    PasswordCredentials,
    SettingsError,
    TokenCredentials,
    load_settings,
)

SECRET = "s3cr3t-value-never-shown"


def test_defaults_match_the_contract() -> None:
    s = load_settings(env_file=None)
    assert (s.concurrency, s.rate_limit, s.page_size, s.max_attempts) == (8, 10.0, 100, 5)
    assert (s.backoff_max_s, s.request_timeout_s, s.run_deadline_s, s.shutdown_grace_s) == (30, 30, 3600, 30)
    assert (s.log_format, s.log_level, s.http) == ("json", "info", "127.0.0.1:9464")
    assert s.listener() == ("127.0.0.1", 9464)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GES_RETENTION_TOKEN": SECRET}, TokenCredentials),
        ({"GES_RETENTION_AK": "AK1", "GES_RETENTION_SK": SECRET}, AkSkCredentials),
        (
            {"GES_RETENTION_AK": "AK1", "GES_RETENTION_SK": SECRET, "GES_RETENTION_SECURITY_TOKEN": SECRET},
            AkSkCredentials,
        ),
        (
            {"GES_RETENTION_IAM_USER": "u", "GES_RETENTION_IAM_PASSWORD": SECRET, "GES_RETENTION_IAM_DOMAIN": "d"},
            PasswordCredentials,
        ),
        ({"HUAWEICLOUD_SDK_AK": "AK1", "HUAWEICLOUD_SDK_SK": SECRET}, AkSkCredentials),
    ],
)
def test_one_complete_scheme(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: type) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    creds = load_settings(env_file=None).credentials()
    assert isinstance(creds, expected)
    assert SECRET not in repr(creds)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no credentials"),
        ({"GES_RETENTION_AK": "AK1"}, "GES_RETENTION_SK not set"),
        ({"GES_RETENTION_SK": SECRET}, "GES_RETENTION_AK not set"),
        ({"GES_RETENTION_SECURITY_TOKEN": SECRET}, "GES_RETENTION_AK, GES_RETENTION_SK not set"),
        ({"GES_RETENTION_IAM_USER": "u", "GES_RETENTION_IAM_DOMAIN": "d"}, "GES_RETENTION_IAM_PASSWORD not set"),
        ({"GES_RETENTION_TOKEN": SECRET, "GES_RETENTION_AK": "AK1"}, "more than one credential scheme"),
        ({"HUAWEICLOUD_SDK_AK": "AK1"}, "HUAWEICLOUD_SDK_SK is not set"),
    ],
)
def test_missing_or_conflicting_schemes(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=message) as info:
        load_settings(env_file=None).credentials()
    assert SECRET not in str(info.value)


def test_sdk_names_are_ignored_when_a_service_credential_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GES_RETENTION_TOKEN", SECRET)
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", "AK1")
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", "other")
    assert isinstance(load_settings(env_file=None).credentials(), TokenCredentials)


def test_secrets_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GES_RETENTION_AK", "AK1")
    monkeypatch.setenv("GES_RETENTION_SK", SECRET)
    monkeypatch.setenv("GES_RETENTION_HTTP_TOKEN", SECRET)
    settings = load_settings(env_file=None)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert settings.secret_values().count(SECRET) == 2


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GES_RETENTION_CONCURRENCY", "0"),
        ("GES_RETENTION_RATE_LIMIT", "-1"),
        ("GES_RETENTION_PAGE_SIZE", "5000"),
        ("GES_RETENTION_LOG_FORMAT", "xml"),
        ("GES_RETENTION_HTTP", "nonsense"),
        ("GES_RETENTION_ENDPOINT", "ftp://x"),
        ("GES_RETENTION_CA_BUNDLE", "/nonexistent/ca.pem"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings(env_file=None)


def test_env_file_and_secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("GES_RETENTION_AK=AK-from-env-file\nGES_RETENTION_CONCURRENCY=3\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "GES_RETENTION_SK").write_text(SECRET)
    settings = load_settings(env_file=str(env), secrets_dir=str(secrets))
    creds = settings.credentials()
    assert isinstance(creds, AkSkCredentials)
    assert (creds.ak, creds.sk, settings.concurrency) == ("AK-from-env-file", SECRET, 3)


def test_empty_http_disables_the_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GES_RETENTION_HTTP", "")
    assert load_settings(env_file=None).listener() is None
