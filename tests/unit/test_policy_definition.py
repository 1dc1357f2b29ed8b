"""`enabled`, `run_on_change`, a policy's effective definition and its digest, and `never_runs`."""

from __future__ import annotations

import hashlib
import json

import pytest

from ges_retention.policy import Policy, never_runs
from ges_retention.policy_definition import canonical_definition, definition_digest, effective_definition
from ges_retention.policy_loading import PolicyError, parse_policy_text

BASE = """\
version: 1
defaults:
  region: cn-north-4
  safety: {max_deletes: 50}
policies:
  - name: a
    project_id: p1
    schedule: "30 2 * * *"
    keep: {daily: 7}
  - name: b
    project_id: p1
    keep: {last: 3}
"""


def _policy(text: str, name: str) -> Policy:
    return {p.name: p for p in parse_policy_text(text).policies}[name]


def test_enabled_and_run_on_change_default_to_true_and_false() -> None:
    policy = _policy(BASE, "a")
    assert policy.enabled is True
    assert policy.run_on_change is False


def test_enabled_and_run_on_change_merge_from_defaults_key_by_key() -> None:
    text = BASE.replace(
        "  safety: {max_deletes: 50}\n", "  safety: {max_deletes: 50}\n  enabled: false\n  run_on_change: true\n"
    )
    text += "    enabled: true\n"  # b overrides the defaults' enabled only
    a, b = _policy(text, "a"), _policy(text, "b")
    assert (a.enabled, a.run_on_change) == (False, True)
    assert (b.enabled, b.run_on_change) == (True, True)


@pytest.mark.parametrize("value", ["null", "yes-please", "1"])
def test_enabled_must_be_a_boolean(value: str) -> None:
    with pytest.raises(PolicyError, match=r"policies\[1\]\.enabled"):
        parse_policy_text(BASE + f"    enabled: {value}\n")


def test_the_effective_definition_is_canonical_json_with_every_default_and_without_the_name() -> None:
    text = effective_definition(_policy(BASE, "b"))
    assert " " not in text and "\n" not in text
    document = json.loads(text)
    assert json.dumps(document, sort_keys=True, separators=(",", ":")) == text
    assert "name" not in document
    assert document["enabled"] is True and document["run_on_change"] is False
    assert document["safety"] == {"max_deletes": 50, "min_keep": 1, "confirm_after": 0, "change_budget": 10}
    assert document["select"]["graphs"] == ["*"]
    assert document["timezone"] == "UTC" and document["schedule"] is None


def test_the_digest_is_the_sha256_of_the_effective_definition() -> None:
    policy = _policy(BASE, "a")
    assert definition_digest(policy) == hashlib.sha256(effective_definition(policy).encode()).hexdigest()


def test_comments_reordering_and_another_policys_edit_keep_the_digest() -> None:
    before = definition_digest(_policy(BASE, "b"))
    reordered = (
        BASE.replace('  - name: a\n    project_id: p1\n    schedule: "30 2 * * *"\n    keep: {daily: 7}\n', "")
        + '  - name: a\n    project_id: p1\n    schedule: "45 3 * * *"  # edited\n    keep: {daily: 9}\n'
    )
    commented = "# a comment\n" + reordered.replace("keep: {last: 3}", "keep: {last: 3}   # three")
    assert definition_digest(_policy(commented, "b")) == before


def test_moving_a_value_into_the_defaults_keeps_the_digest() -> None:
    explicit = BASE.replace("    keep: {last: 3}", "    keep: {last: 3}\n    safety: {max_deletes: 50, min_keep: 1}")
    assert definition_digest(_policy(explicit, "b")) == definition_digest(_policy(BASE, "b"))


@pytest.mark.parametrize(
    "edit",
    [
        ("    keep: {last: 3}", "    keep: {last: 4}"),
        ("    keep: {last: 3}", "    keep: {last: 3}\n    enabled: false"),
        ("    keep: {last: 3}", "    keep: {last: 3}\n    dry_run: true"),
        ("    keep: {last: 3}", "    keep: {last: 3}\n    run_on_change: true"),
        ("  safety: {max_deletes: 50}", "  safety: {max_deletes: 51}"),
        ("  safety: {max_deletes: 50}", "  safety: {max_deletes: 50, change_budget: unlimited}"),
    ],
)
def test_any_change_of_what_the_policy_does_changes_the_digest(edit: tuple[str, str]) -> None:
    assert definition_digest(_policy(BASE.replace(*edit), "b")) != definition_digest(_policy(BASE, "b"))


def test_a_renamed_policy_keeps_its_digest() -> None:
    renamed = BASE.replace("name: b", "name: b2")
    assert definition_digest(_policy(renamed, "b2")) == definition_digest(_policy(BASE, "b"))


def test_spacing_inside_the_schedule_is_not_a_change() -> None:
    spaced = BASE.replace('"30 2 * * *"', '"30  2 * *   *"')
    assert definition_digest(_policy(spaced, "a")) == definition_digest(_policy(BASE, "a"))


def test_safety_ack_is_left_out_when_present() -> None:
    document = _policy(BASE, "b").model_dump(mode="json")
    acked = {**document, "safety": {**document["safety"], "ack": "ab" * 32}}
    assert canonical_definition(acked) == effective_definition(_policy(BASE, "b"))
    assert "ack" in acked["safety"]  # the caller's document is left alone


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", True),  # b: enabled, no schedule, no run_on_change
        ("    run_on_change: true\n", False),
        ("    enabled: false\n", False),  # paused is not "never runs": it is meant to be idle
        ('    schedule: "0 1 * * *"\n', False),
    ],
)
def test_never_runs(extra: str, expected: bool) -> None:
    assert never_runs(_policy(BASE + extra, "b")) is expected


def test_an_ack_in_the_file_is_not_part_of_the_definition_and_is_kept_lowercase() -> None:
    digest = "AB" * 32
    acked = _policy(BASE.replace("    keep: {last: 3}", f"    keep: {{last: 3}}\n    safety: {{ack: {digest}}}"), "b")
    assert acked.safety.ack == digest.lower()
    assert definition_digest(acked) == definition_digest(_policy(BASE, "b"))
    assert "ack" not in json.loads(effective_definition(acked))["safety"]


@pytest.mark.parametrize("value", ["abc", "'" + "g" * 64 + "'", "12", "[1]"])
def test_an_ack_is_64_hex_digits(value: str) -> None:
    with pytest.raises(PolicyError, match=r"policies\[1\]\.safety\.ack"):
        parse_policy_text(BASE.replace("    keep: {last: 3}", f"    keep: {{last: 3}}\n    safety: {{ack: {value}}}"))


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("25", 25), ("unlimited", "unlimited")])
def test_the_change_budget_is_a_count_or_unlimited(value: str, expected: object) -> None:
    text = BASE.replace("    keep: {last: 3}", f"    keep: {{last: 3}}\n    safety: {{change_budget: {value}}}")
    assert _policy(text, "b").safety.change_budget == expected
    with pytest.raises(PolicyError, match=r"change_budget"):
        parse_policy_text(BASE.replace("    keep: {last: 3}", "    keep: {last: 3}\n    safety: {change_budget: -1}"))
