"""The composition root: readiness has one owner, fed by the request observer; endpoints and IAM derivation."""

from __future__ import annotations

import pytest

from ges_retention.agencies import iam_endpoint_for
from ges_retention.metrics import Metrics
from ges_retention.policy_loading import parse_policy_text
from ges_retention.service import Readiness, Service, _RequestObserver, client_config, policy_endpoint
from ges_retention.settings import Settings, SettingsError


def test_readiness_follows_the_last_answer_about_credentials() -> None:
    readiness = Readiness()
    observer = _RequestObserver(Metrics(), readiness)
    assert readiness.authenticated() is None, "nothing said yet"
    observer.on_response("list_backups", 500, 0.1)
    assert readiness.authenticated() is None, "a server error says nothing about credentials"
    observer.on_auth_ok()
    assert readiness.authenticated() is True
    observer.on_response("list_backups", 401, 0.1)
    assert readiness.authenticated() is False
    observer.on_auth_ok()
    assert readiness.authenticated() is True


def test_the_service_hands_its_readiness_out() -> None:
    service = Service(Settings(_env_file=None, token="t", endpoint="https://ges.example"))
    service.observer.on_response("delete_backup", 403, 0.1)
    assert service.readiness.authenticated() is False


def test_the_endpoint_setting_overrides_the_policy_and_a_policy_needs_one() -> None:
    policy = parse_policy_text("version: 1\npolicies:\n  - {name: p, project_id: abc, keep: {last: 1}}\n").policies[0]
    assert policy_endpoint(policy, Settings(_env_file=None, endpoint="https://ges.example")) == "https://ges.example"
    with pytest.raises(SettingsError, match="neither 'endpoint' nor 'region'"):
        policy_endpoint(policy, Settings(_env_file=None))


@pytest.mark.parametrize(
    ("endpoint", "iam"),
    [
        ("https://ges.cn-north-4.myhuaweicloud.com", "https://iam.cn-north-4.myhuaweicloud.com"),
        ("http://127.0.0.1:8080", "https://iam.myhuaweicloud.com"),
    ],
)
def test_the_iam_endpoint_is_derived_from_the_ges_one(endpoint: str, iam: str) -> None:
    assert iam_endpoint_for(endpoint) == iam


def test_the_rate_gauge_follows_the_pacers_through_the_observer() -> None:
    metrics = Metrics()
    observer = _RequestObserver(metrics, Readiness())
    observer.on_rate_limit("https://ges.example", "p1", 80.0)
    observer.on_rate_limit("https://ges.example", "p1", 72.4567)
    text = metrics.render().decode()
    assert 'ges_retention_rate_limit{endpoint="https://ges.example",project_id="p1"} 72.457' in text


def test_auto_rate_settings_become_adaptive_pacers() -> None:
    fixed = client_config(Settings(_env_file=None, token="t", rate_limit=25))
    assert (fixed.rate_limit_per_s, fixed.auto_rate) == (25, None)
    auto = client_config(Settings(_env_file=None, token="t", rate_limit="auto", rate_start=5, rate_max=300))
    assert auto.auto_rate is not None
    assert (auto.auto_rate.start_per_s, auto.auto_rate.max_per_s, auto.rate_limit_per_s) == (5, 300, 300)
