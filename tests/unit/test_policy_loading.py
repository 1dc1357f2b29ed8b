"""Good policy files: what they mean once loaded (defaults merged, built-in defaults filled)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from factories import WritePolicy, policy_file

from ges_retention.cron import CronSchedule
from ges_retention.durations import Duration
from ges_retention.policy import Keep, Safety
from ges_retention.policy_loading import PolicyError, load_policy_file
from ges_retention.policy_selection import Select

# The example of the contract, as written there.
CONTRACT_EXAMPLE = """\
version: 1
defaults:                      # optional; merged into every policy (see below)
  region: cn-north-4
  timezone: UTC                # IANA name; calendar buckets and cron use it
  safety: {min_keep: 1, max_deletes: 100}
policies:
  - name: prod-nightly         # unique; [A-Za-z0-9_.-]{1,64}
    project_id: 0a1b2c3d4e5f   # letters and digits, <= 64
    region: cn-north-4
    endpoint: https://ges.cn-north-4.myhuaweicloud.com   # optional; default from region
    schedule: "30 2 * * *"     # standard 5-field cron in `timezone`; absent = runs only on demand
    dry_run: false
    select:                    # which backups this policy manages (all conditions must hold)
      graphs: ["prod-*"]       # globs on graph name, or exact graph ids; default ["*"]
      exclude_graphs: []
      backup_methods: [auto, manual]   # default: every method, including ones not known today (e.g. import)
      names: ["*"]             # globs on backup name
    group_by: graph            # graph | graph_and_method
    keep:                      # backups kept by any rule are kept
      last: 3
      hourly: 0
      daily: 7
      weekly: 4
      monthly: 12
      yearly: unlimited        # a count >= 0, or `unlimited`
      within: 2d               # duration: y, mo, w, d, h (e.g. 1y6mo, 36h)
      names: ["*-golden"]      # pinned by name glob
      ids: []                  # pinned by backup id
    anchor: newest             # `within` measured from the newest successful backup (newest) or from now (now)
    failed:
      delete_after: 3d         # failed backups older than this are deleted once the group has a newer success
    safety:
      min_keep: 1              # newest successful backups per group always kept, whatever the rules say
      max_deletes: 100         # a plan deleting more than this in one run stops the policy (exit 3, nothing deleted)
"""


def test_the_contract_example_loads(write_policy: WritePolicy) -> None:
    path = write_policy(CONTRACT_EXAMPLE)
    loaded = load_policy_file(path)

    assert loaded.source == str(path)
    assert loaded.names() == ["prod-nightly"]
    (policy,) = loaded.policies
    assert policy.project_id == "0a1b2c3d4e5f"
    assert policy.region == "cn-north-4"
    assert policy.api_endpoint() == "https://ges.cn-north-4.myhuaweicloud.com"
    assert policy.schedule == CronSchedule.parse("30 2 * * *")
    assert policy.timezone == "UTC"
    assert policy.dry_run is False
    assert policy.select == Select(graphs=["prod-*"], exclude_graphs=[], backup_methods=["auto", "manual"], names=["*"])
    assert policy.group_by == "graph"
    assert policy.keep == Keep(
        last=3,
        hourly=0,
        daily=7,
        weekly=4,
        monthly=12,
        yearly="unlimited",
        within=Duration(days=2),
        names=["*-golden"],
        ids=[],
    )
    assert policy.anchor == "newest"
    assert policy.failed.delete_after == Duration(days=3)
    assert policy.safety == Safety(min_keep=1, max_deletes=100)


def test_digest_is_the_sha256_of_the_bytes(write_policy: WritePolicy) -> None:
    path = write_policy(CONTRACT_EXAMPLE)
    assert load_policy_file(path).digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_built_in_defaults() -> None:
    (policy,) = policy_file(
        """
        version: 1
        policies:
          - name: minimal
            project_id: abc123
            keep: {daily: 7}
        """
    ).policies

    assert policy.timezone == "UTC"
    assert policy.anchor == "newest"
    assert policy.group_by == "graph"
    assert policy.select == Select(graphs=["*"], exclude_graphs=[], backup_methods=None, names=["*"])
    assert policy.dry_run is False
    assert policy.safety == Safety(min_keep=1, max_deletes=100)
    assert policy.failed.delete_after is None
    assert policy.schedule is None
    assert policy.region is None
    assert policy.endpoint is None
    assert policy.api_endpoint() is None
    assert policy.keep == Keep(daily=7)
    assert (policy.keep.last, policy.keep.weekly, policy.keep.within, policy.keep.names) == (0, 0, None, [])


MERGING = """
    version: 1
    defaults:
      project_id: proj0
      region: cn-north-4
      timezone: Europe/Berlin
      schedule: "0 3 * * *"
      anchor: now
      group_by: graph_and_method
      select: {graphs: ["prod-*"], exclude_graphs: [prod-scratch], backup_methods: [auto]}
      safety: {min_keep: 3, max_deletes: 50}
      failed: {delete_after: 1w}
      keep: {daily: 7, weekly: 4, names: ["*-golden"]}
    policies:
      - name: inherits
      - name: overrides
        project_id: proj1
        region: null
        endpoint: http://127.0.0.1:8080/
        schedule: null
        timezone: Asia/Shanghai
        anchor: newest
        select: {names: ["nightly-*"]}
        safety: {max_deletes: 500}
        failed: {}
        keep: {last: 3}
"""


def test_a_policy_without_keys_takes_every_default() -> None:
    inherits = policy_file(MERGING).policies[0]

    assert inherits.project_id == "proj0"
    assert inherits.region == "cn-north-4"
    assert inherits.timezone == "Europe/Berlin"
    assert inherits.schedule == CronSchedule.parse("0 3 * * *")
    assert inherits.anchor == "now"
    assert inherits.group_by == "graph_and_method"
    assert inherits.select == Select(
        graphs=["prod-*"], exclude_graphs=["prod-scratch"], backup_methods=["auto"], names=["*"]
    )
    assert inherits.safety == Safety(min_keep=3, max_deletes=50)
    assert inherits.failed.delete_after == Duration(weeks=1)
    assert inherits.keep == Keep(daily=7, weekly=4, names=["*-golden"])


def test_select_safety_and_failed_merge_key_by_key_keep_is_replaced_as_a_unit() -> None:
    overrides = policy_file(MERGING).policies[1]

    # select: the policy's `names` over the defaults' graphs, exclusions and methods.
    assert overrides.select == Select(
        graphs=["prod-*"], exclude_graphs=["prod-scratch"], backup_methods=["auto"], names=["nightly-*"]
    )
    # safety: `max_deletes` replaced, the defaults' `min_keep` kept.
    assert overrides.safety == Safety(min_keep=3, max_deletes=500)
    # failed: an empty mapping changes nothing.
    assert overrides.failed.delete_after == Duration(weeks=1)
    # keep: the policy's keep entirely; no daily, weekly or pins from the defaults.
    assert overrides.keep == Keep(last=3)
    assert overrides.keep.names == []
    # plain keys: the policy's value; null clears a nullable default.
    assert overrides.project_id == "proj1"
    assert overrides.timezone == "Asia/Shanghai"
    assert overrides.anchor == "newest"
    assert overrides.region is None
    assert overrides.schedule is None
    assert overrides.endpoint == "http://127.0.0.1:8080"
    assert overrides.api_endpoint() == "http://127.0.0.1:8080"


def test_defaults_keep_can_be_set_and_a_policy_safety_alone_does_not_reset_it() -> None:
    loaded = policy_file(
        """
        version: 1
        defaults:
          keep: {within: 36h}
        policies:
          - {name: a, project_id: p1, safety: {min_keep: 0}}
          - {name: b, project_id: p1, keep: {ids: [b-1]}}
        """
    )
    a, b = loaded.policies
    assert a.keep == Keep(within=Duration(hours=36))
    assert a.safety == Safety(min_keep=0, max_deletes=100)
    assert b.keep == Keep(ids=["b-1"])


@pytest.mark.parametrize(
    ("keep", "expected"),
    [
        ("{last: 1}", Keep(last=1)),
        ("{yearly: unlimited}", Keep(yearly="unlimited")),
        ("{hourly: 24}", Keep(hourly=24)),
        ("{within: 1y6mo}", Keep(within=Duration(years=1, months=6))),
        ("{names: ['*-golden']}", Keep(names=["*-golden"])),
        ("{ids: [backup-1]}", Keep(ids=["backup-1"])),
        ("{daily: 0, weekly: 0, monthly: 1}", Keep(monthly=1)),
    ],
)
def test_any_rule_that_can_keep_something_makes_a_valid_keep(keep: str, expected: Keep) -> None:
    (policy,) = policy_file(
        f"""
        version: 1
        policies:
          - {{name: p, project_id: abc, keep: {keep}}}
        """
    ).policies
    assert policy.keep == expected


def test_yaml_spellings_that_are_still_valid() -> None:
    # A UTF-8 byte order mark, CRLF line ends, YAML 1.1 booleans, a document marker, quoted numbers as names.
    text = '\ufeff---\r\nversion: 1\r\npolicies:\r\n  - name: "2026"\r\n    project_id: "123"\r\n    dry_run: yes\r\n'
    text += "    keep: {daily: 7}\r\n"
    (policy,) = policy_file(text).policies
    assert (policy.name, policy.project_id, policy.dry_run) == ("2026", "123", True)


def test_several_policies_keep_file_order_and_select_by_name() -> None:
    loaded = policy_file(
        """
        version: 1
        defaults: {project_id: p1, keep: {daily: 1}}
        policies:
          - name: c
          - name: a
          - name: b
        """
    )
    assert loaded.names() == ["c", "a", "b"]
    assert [p.name for p in loaded.select(None)] == ["c", "a", "b"]
    assert [p.name for p in loaded.select([])] == ["c", "a", "b"]
    assert [p.name for p in loaded.select(["b", "c"])] == ["c", "b"]


def test_selecting_an_unknown_policy_is_a_policy_error() -> None:
    loaded = policy_file("version: 1\npolicies: [{name: a, project_id: p1, keep: {daily: 1}}]\n")
    with pytest.raises(PolicyError) as caught:
        loaded.select(["a", "nope"])
    assert str(caught.value) == "test.yaml: (top level): no policy named 'nope'; the file has ['a']"


def test_a_missing_file_is_a_one_line_policy_error(tmp_path: Path) -> None:
    path = f"{tmp_path}/absent.yaml"
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: (top level): cannot read the file: ")
    assert "\n" not in message


def test_a_file_of_exactly_one_mib_is_read(write_policy: WritePolicy) -> None:
    head = "version: 1\npolicies: [{name: a, project_id: p1, keep: {daily: 1}}]\n"
    content = head + "#" * (1024 * 1024 - len(head) - 1) + "\n"
    assert len(content.encode()) == 1024 * 1024
    assert load_policy_file(write_policy(content)).names() == ["a"]


def test_an_unknown_backup_method_word_loads_with_a_warning(write_policy: WritePolicy) -> None:
    path = write_policy(
        """\
        version: 1
        defaults:
          select: {backup_methods: [auto, snapshot]}
        policies:
          - name: a
            project_id: abc
            keep: {last: 1}
          - name: b
            project_id: abc
            select:
              backup_methods: [manual, import, incremental_v2]
            keep: {last: 1}
        """
    )
    loaded = load_policy_file(path)

    assert loaded.policies[0].select.backup_methods == ["auto", "snapshot"]
    methods = [w for w in loaded.warnings if w.event == "backup_method_unknown"]
    assert [(w.event, w.key_path, w.line, w.policy) for w in methods] == [
        ("backup_method_unknown", "defaults.select.backup_methods[1]", 3, None),
        ("backup_method_unknown", "policies[1].select.backup_methods[2]", 11, "b"),
    ]
    assert "'snapshot' is not one GES documents (auto, manual, import)" in str(methods[0])


def test_known_backup_methods_load_without_warnings(write_policy: WritePolicy) -> None:
    path = write_policy(
        "version: 1\npolicies:\n  - {name: a, project_id: abc, keep: {last: 1}, schedule: '@daily',"
        " select: {backup_methods: [auto, manual, import]}}\n"
    )
    assert load_policy_file(path).warnings == ()


@pytest.mark.parametrize(("text", "seconds"), [("90min", 5400), ("30s", 30), ("1h30min", 5400)])
def test_durations_in_minutes_and_seconds_load(write_policy: WritePolicy, text: str, seconds: int) -> None:
    path = write_policy(f"version: 1\npolicies:\n  - {{name: a, project_id: abc, keep: {{within: {text}}}}}\n")
    within = load_policy_file(path).policies[0].keep.within
    assert within is not None and str(within) == text
    assert within.minutes * 60 + within.seconds + within.hours * 3600 == seconds


def test_an_enabled_policy_that_nothing_triggers_warns_policy_never_runs(write_policy: WritePolicy) -> None:
    path = write_policy(
        """\
        version: 1
        defaults: {project_id: abc, keep: {last: 1}}
        policies:
          - name: scheduled
            schedule: "30 2 * * *"
          - name: on-change
            run_on_change: true
          - name: paused
            enabled: false
          - name: by-hand
            dry_run: true
        """
    )
    warnings = load_policy_file(path).warnings
    assert [(w.event, w.policy, w.key_path, w.line) for w in warnings] == [
        ("policy_never_runs", "by-hand", "policies[3]", 10)
    ]
    assert "neither 'schedule' nor 'run_on_change'" in warnings[0].message
