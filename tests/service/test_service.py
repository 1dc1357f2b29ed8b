"""The composition root: readiness has one owner, fed by the request observer; endpoints and IAM derivation."""

from __future__ import annotations

import pytest

from ges_retention.agencies import iam_endpoint_for
from ges_retention.metrics import Metrics
from ges_retention.policy_loading import parse_policy_text
from ges_retention.service import Readiness, Service, _RequestObserver, policy_endpoint
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
