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


# Issue 11 #7: these were found only after `run_started`, as "unexpected ..." exit 1; they are settings errors now.
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GES_RETENTION_ENDPOINT", "http://user:" + SECRET + "@127.0.0.1:8000", "credentials"),
        ("GES_RETENTION_ENDPOINT", "http://127.0.0.1:99999", "port"),
        ("GES_RETENTION_ENDPOINT", "http://127.0.0.1:0", "port"),
        ("GES_RETENTION_ENDPOINT", "http://127.0.0.1:8000/?project=x", "query"),
        ("GES_RETENTION_ENDPOINT", "http://127.0.0.1:8000/#top", "fragment"),
        ("GES_RETENTION_ENDPOINT", "https://", "http(s) URL with a host"),
        ("GES_RETENTION_IAM_ENDPOINT", "https://" + SECRET + "@iam.example.com", "credentials"),
        ("GES_RETENTION_IAM_ENDPOINT", "https://iam.example.com:70000", "port"),
        ("GES_RETENTION_TOKEN", SECRET + "\n" + SECRET, "control character"),
        ("GES_RETENTION_SK", SECRET + "\x7f", "control character"),
        ("GES_RETENTION_AK", "AK\x1b[31m1", "control character"),
        ("GES_RETENTION_IAM_PASSWORD", "pass\tword" + SECRET, "control character"),
        ("GES_RETENTION_SECURITY_TOKEN", SECRET + "\r\nX-Injected: 1", "control character"),
    ],
)
def test_settings_that_would_fail_at_the_first_call_are_invalid_at_load(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name) as info:
        load_settings(env_file=None)
    assert message in str(info.value)
    assert SECRET not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "content",
    [b"not a certificate\n", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b"", b"\x00\xff" * 64],
)
def test_a_ca_bundle_that_is_not_pem_is_invalid_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(content)
    monkeypatch.setenv("GES_RETENTION_CA_BUNDLE", str(bundle))
    with pytest.raises(SettingsError, match="GES_RETENTION_CA_BUNDLE: CA bundle is not a readable PEM file"):
        load_settings(env_file=None)


def test_a_pem_ca_bundle_and_a_clean_endpoint_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    if not system.is_file():
        pytest.skip("no system CA bundle to copy")
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(system.read_bytes())
    monkeypatch.setenv("GES_RETENTION_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("GES_RETENTION_ENDPOINT", "http://127.0.0.1:8000/base/")
    settings = load_settings(env_file=None)
    assert (settings.ca_bundle, settings.endpoint) == (str(bundle), "http://127.0.0.1:8000/base")


def test_every_settings_error_is_a_ges_retention_error() -> None:
    from ges_retention.errors import GesRetentionError

    assert issubclass(SettingsError, GesRetentionError)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (10.0, 10.0, 200.0)),
        ({"GES_RETENTION_RATE_LIMIT": "auto"}, ("auto", 10.0, 200.0)),
        ({"GES_RETENTION_RATE_LIMIT": " Auto\n"}, ("auto", 10.0, 200.0)),
        ({"GES_RETENTION_RATE_LIMIT": "0"}, (0.0, 10.0, 200.0)),
        (
            {"GES_RETENTION_RATE_LIMIT": "auto", "GES_RETENTION_RATE_START": "5", "GES_RETENTION_RATE_MAX": "1000"},
            ("auto", 5.0, 1000.0),
        ),
    ],
)
def test_rate_limit_is_a_number_or_auto(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: tuple[object, float, float]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(env_file=None)
    assert (settings.rate_limit, settings.rate_start, settings.rate_max) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GES_RETENTION_RATE_LIMIT": "fast"}, r"GES_RETENTION_RATE_LIMIT: must be a number .* or auto$"),
        ({"GES_RETENTION_RATE_LIMIT": "-1"}, r"GES_RETENTION_RATE_LIMIT: must be from 0 .* or auto$"),
        ({"GES_RETENTION_RATE_LIMIT": "nan"}, r"GES_RETENTION_RATE_LIMIT: must be from 0"),
        ({"GES_RETENTION_RATE_START": "0"}, r"GES_RETENTION_RATE_START: .*greater than 0"),
        (
            {"GES_RETENTION_RATE_START": "50", "GES_RETENTION_RATE_MAX": "20"},
            r"GES_RETENTION_RATE_MAX: must be at least GES_RETENTION_RATE_START \(50\)$",
        ),
    ],
)
def test_bad_rate_settings_are_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message) as caught:
        load_settings(env_file=None)
    assert "\n" not in str(caught.value)


def test_state_settings_defaults_and_the_url_password_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(env_file=None)
    assert (s.state_value(), s.state_keep_days, s.state_lock_timeout_s) == (None, 400, 30.0)
    monkeypatch.setenv("GES_RETENTION_STATE", f"postgresql://ges:{SECRET}@db.internal:5432/ges")
    monkeypatch.setenv("GES_RETENTION_STATE_KEEP_DAYS", "30")
    monkeypatch.setenv("GES_RETENTION_STATE_LOCK_TIMEOUT_S", "2.5")
    s = load_settings(env_file=None)
    assert (s.state_keep_days, s.state_lock_timeout_s) == (30, 2.5)
    assert SECRET not in repr(s) and SECRET in s.secret_values()  # the log redaction knows it
    monkeypatch.setenv("GES_RETENTION_STATE", "  ")
    assert load_settings(env_file=None).state_value() is None  # blank: the default location


@pytest.mark.parametrize(("name", "value"), [("STATE_KEEP_DAYS", "0"), ("STATE_LOCK_TIMEOUT_S", "-1")])
def test_bad_state_settings_are_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"GES_RETENTION_{name}", value)
    with pytest.raises(SettingsError, match=f"GES_RETENTION_{name}"):
        load_settings(env_file=None)
