"""`agency: {domain, name}`: merged from defaults as a unit, removable with null, part of the effective definition,
and one per (endpoint, project_id)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ges_retention.cli import main
from ges_retention.policy import Agency
from ges_retention.policy_definition import effective_definition
from ges_retention.policy_loading import PolicyError, PolicyFile, parse_policy_text
from ges_retention.service import check_endpoints
from ges_retention.settings import Settings, SettingsError

HEADER = """\
version: 1
defaults:
  region: cn-north-4
  keep: {last: 3}
  agency: {domain: other-account, name: ges-retention}
policies:
"""


def _load(policies: str, header: str = HEADER) -> PolicyFile:
    return parse_policy_text(header + policies)


def test_a_default_agency_applies_and_a_policy_agency_replaces_it_whole() -> None:
    loaded = _load(
        "  - {name: a, project_id: p1}\n  - {name: b, project_id: p2, agency: {domain: third, name: cleaner}}\n"
    )
    a, b = loaded.policies
    assert a.agency == Agency(domain="other-account", name="ges-retention")
    assert b.agency == Agency(domain="third", name="cleaner")


def test_a_policy_agency_is_a_unit_not_merged_key_by_key() -> None:
    # Key by key, `{name: cleaner}` would borrow the defaults' domain and act in an account nobody named.
    with pytest.raises(PolicyError) as caught:
        _load("  - {name: a, project_id: p1, agency: {name: cleaner}}\n")
    assert "policies[0].agency.domain" in str(caught.value)


def test_agency_null_removes_the_default_agency() -> None:
    loaded = _load("  - {name: a, project_id: p1, agency: null}\n")
    assert loaded.policies[0].agency is None


def test_the_agency_is_part_of_the_effective_definition() -> None:
    with_agency = _load("  - {name: a, project_id: p1}\n").policies[0]
    other = _load("  - {name: a, project_id: p1, agency: {domain: third, name: ges-retention}}\n").policies[0]
    without = _load("  - {name: a, project_id: p1, agency: null}\n").policies[0]
    texts = {effective_definition(p) for p in (with_agency, other, without)}
    assert len(texts) == 3
    assert '"agency":{"domain":"other-account","name":"ges-retention"}' in effective_definition(with_agency)
    # No agency is what every file meant before the key existed: its definition (and digest) does not change.
    assert "agency" not in effective_definition(without)


@pytest.mark.parametrize(
    ("agency", "path"),
    [
        ("{domain: '', name: x}", "agency.domain"),
        ("{domain: 'a/b', name: x}", "agency.domain"),
        ("{domain: a, name: ' x'}", "agency.name"),
        ("{domain: a, name: x, extra: 1}", "agency.extra"),
        ("{domain: a}", "agency.name"),
        ("other-account", "agency"),
    ],
)
def test_bad_agencies_are_refused_with_their_key_path(agency: str, path: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(f"  - {{name: a, project_id: p1, agency: {agency}}}\n")
    assert f"policies[0].{path}" in str(caught.value)


def test_policies_of_one_project_with_different_agencies_are_refused_naming_both() -> None:
    with pytest.raises(PolicyError) as caught:
        _load(
            "  - {name: first, project_id: p1}\n"
            "  - {name: second, project_id: p1, agency: {domain: third, name: cleaner}}\n"
        )
    message = str(caught.value)
    assert "'first'" in message and "'second'" in message
    assert "agency other-account/ges-retention" in message and "agency third/cleaner" in message
    assert "policies[1].agency, line 8" in message


def test_an_agency_beside_no_agency_on_one_project_is_refused() -> None:
    with pytest.raises(PolicyError) as caught:
        _load("  - {name: first, project_id: p1}\n  - {name: second, project_id: p1, agency: null}\n")
    assert "no agency" in str(caught.value)


def test_policies_of_one_project_on_different_endpoints_may_differ() -> None:
    loaded = _load(
        "  - {name: first, project_id: p1}\n  - {name: second, project_id: p1, region: eu-west-101, agency: null}\n"
    )
    assert [p.agency is None for p in loaded.policies] == [False, True]


def test_validate_exits_2_on_an_agency_conflict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(HEADER + "  - {name: first, project_id: p1}\n  - {name: second, project_id: p1, agency: null}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'first'" in err and "'second'" in err and "same agency" in err


def _settings(**values: str) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_a_static_token_cannot_assume_an_agency() -> None:
    loaded = _load("  - {name: a, project_id: p1}\n")
    with pytest.raises(SettingsError) as caught:
        check_endpoints(loaded.policies, _settings(token="a-static-token"))
    message = str(caught.value)
    assert "static token" in message and "'a'" in message
    assert "a-static-token" not in message
    # The same policies with AK/SK, or without an agency, pass.
    check_endpoints(loaded.policies, _settings(ak="AK", sk="SK"))
    check_endpoints(_load("  - {name: a, project_id: p1, agency: null}\n").policies, _settings(token="t0ken"))


def test_the_endpoint_setting_can_join_projects_whose_agencies_differ() -> None:
    # Different regions keep the file valid; GES_RETENTION_ENDPOINT sends both to one (endpoint, project).
    loaded = _load(
        "  - {name: first, project_id: p1}\n  - {name: second, project_id: p1, region: eu-west-101, agency: null}\n"
    )
    check_endpoints(loaded.policies, _settings(ak="AK", sk="SK"))
    with pytest.raises(SettingsError) as caught:
        check_endpoints(loaded.policies, _settings(ak="AK", sk="SK", endpoint="http://127.0.0.1:9"))
    assert "'first'" in str(caught.value) and "'second'" in str(caught.value)
