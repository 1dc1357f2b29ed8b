"""Malformed policy files: each is rejected at load by ONE line naming the file, the key path and the line.

Every case is (file content, expected key path, expected line or None, a fragment of the message). The message must
read `<file>: <key path>, line <n>: <message>` (`<file>: <key path>: <message>` when no line can be known).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from factories import WritePolicy

from ges_retention.policy_loading import MAX_FILE_BYTES, PolicyError, load_policy_file

# Line numbers of the base document below: 1 version, 2 policies, 3 name, 4 project_id, 5 keep, 6 daily.
BASE = """\
version: 1
policies:
  - name: p
    project_id: proj1
    keep:
      daily: 7
"""


def base(*extra: str, replace: tuple[str, str] | None = None) -> str:
    """BASE with `replace` applied and `extra` lines appended (from line 7 on)."""
    text = BASE if replace is None else BASE.replace(*replace)
    return text + "".join(f"{line}\n" for line in extra)


@dataclass(frozen=True)
class Bad:
    content: str | bytes
    path: str  # the key path, or a regex of it when it starts with `re:`
    line: int | None
    fragment: str


def _alias_bomb() -> str:
    lines = ["version: 1", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


_DEEP = "[" * 30 + "]" * 30

CASES: dict[str, Bad] = {
    # --- YAML itself ---------------------------------------------------------------------------------------------
    "yaml syntax error": Bad(base("    select: {graphs: [a, b}"), "(top level)", 7, "invalid YAML"),
    "tab indentation": Bad(base("\tdry_run: true"), "(top level)", 7, "invalid YAML"),
    "two documents": Bad(base("---", "version: 1"), "(top level)", 7, "invalid YAML"),
    "duplicate top-level key": Bad(base("version: 1"), "version", 7, "duplicate key 'version' (first at line 1)"),
    "duplicate nested key": Bad(base("      daily: 3"), "policies[0].keep.daily", 7, "duplicate key 'daily'"),
    "duplicate key in a flow mapping": Bad(
        base("    safety: {min_keep: 1, min_keep: 2}"), "policies[0].safety.min_keep", 7, "duplicate key"
    ),
    "yaml merge key": Bad(
        "version: 1\nx: &x {project_id: proj1, keep: {daily: 7}}\npolicies:\n  - <<: *x\n    name: p\n",
        "policies[0]",
        4,
        "merge keys",
    ),
    "nesting too deep": Bad(
        base(f"    select: {{graphs: {_DEEP}}}"), "re:policies\\[0\\]\\.select\\.graphs(\\[0\\])+", 7, "nesting deeper"
    ),
    "nesting deep enough to break the yaml parser": Bad("x: " + "[" * 5000, "(top level)", None, "nesting deeper"),
    # Expanding a5 passes the bound of 200000 values; the line is where the innermost (aliased) list is written.
    "alias bomb": Bad(_alias_bomb(), "re:a5(\\[\\d\\]){6}", 2, "more than 200000 values"),
    "non-string key": Bad(base("    1: one"), "policies[0]", 7, "a key must be a string, got 1"),
    "complex key": Bad(base("    ? [a, b]", "    : x"), "policies[0]", 7, "a key must be a plain string"),
    "bad value for an explicit tag": Bad(
        base(replace=("daily: 7", "daily: !!int seven")), "policies[0].keep.daily", 6, "invalid value 'seven'"
    ),
    "bad explicit tag on a key": Bad(base("    !!bool maybe: 1"), "policies[0]", 7, "invalid value 'maybe'"),
    "python tag on a scalar": Bad(
        base("    region: !!python/name:os.system"), "policies[0].region", 7, "could not determine a constructor"
    ),
    # A python tag on a sequence is never constructed: the value is read as a plain list, and is not a region.
    "python tag on a sequence": Bad(
        base("    region: !!python/object/apply:os.system [echo]"), "policies[0].region", 7, "valid string"
    ),
    # --- the document's shape ----------------------------------------------------------------------------------
    "empty file": Bad("", "(top level)", None, "the file is empty"),
    "comments only": Bad("# policies will come here\n\n", "(top level)", None, "the file is empty"),
    "top-level list": Bad("- version: 1\n- policies: []\n", "(top level)", 1, "top level must be a mapping"),
    "top-level scalar": Bad("version 1\n", "(top level)", 1, "top level must be a mapping"),
    "missing version": Bad(BASE.replace("version: 1\n", ""), "version", 1, "required key is missing"),
    "version 2": Bad(base(replace=("version: 1", "version: 2")), "version", 1, "Input should be 1"),
    "version as a string": Bad(base(replace=("version: 1", 'version: "1"')), "version", 1, "Input should be 1"),
    "version true": Bad(base(replace=("version: 1", "version: true")), "version", 1, "version must be 1"),
    "version 1.0": Bad(base(replace=("version: 1", "version: 1.0")), "version", 1, "version must be 1, got 1.0"),
    "missing policies": Bad("version: 1\n", "policies", 1, "required key is missing"),
    "no policies": Bad("version: 1\npolicies: []\n", "policies", 2, "at least 1 item"),
    "policies is a mapping": Bad("version: 1\npolicies:\n  p: {}\n", "policies", 2, "valid list"),
    "policies null": Bad("version: 1\npolicies:\n", "policies", 2, "valid list"),
    # --- unknown keys at several levels -------------------------------------------------------------------------
    "unknown top-level key": Bad(base("polices: []"), "polices", 7, "unknown key"),
    "unknown policy key": Bad(base("    retention: 7"), "policies[0].retention", 7, "unknown key"),
    "unknown keep key": Bad(base("      dayly: 3"), "policies[0].keep.dayly", 7, "unknown key"),
    "unknown key with a line break in it": Bad(
        base('    "retain\\ndaily": 7'), "policies[0].'retain\\ndaily'", 7, "unknown key"
    ),
    "unknown select key": Bad(base("    select: {graph: [a]}"), "policies[0].select.graph", 7, "unknown key"),
    "unknown defaults key": Bad(
        base(replace=("version: 1\n", "version: 1\ndefaults:\n  name: shared\n")), "defaults.name", 3, "unknown key"
    ),
    "unknown defaults.safety key": Bad(
        base(replace=("version: 1\n", "version: 1\ndefaults:\n  safety:\n    min_kep: 2\n")),
        "defaults.safety.min_kep",
        4,
        "unknown key",
    ),
    # --- wrong types ---------------------------------------------------------------------------------------------
    "count as a string": Bad(base(replace=("daily: 7", 'daily: "7"')), "policies[0].keep.daily", 6, "whole number"),
    "count as a float": Bad(base(replace=("daily: 7", "daily: 7.5")), "policies[0].keep.daily", 6, "whole number"),
    "count as a bool": Bad(base(replace=("daily: 7", "daily: true")), "policies[0].keep.daily", 6, "whole number"),
    "count as a word": Bad(base(replace=("daily: 7", "daily: all")), "policies[0].keep.daily", 6, "'unlimited'"),
    "dry_run as a string": Bad(base('    dry_run: "false"'), "policies[0].dry_run", 7, "valid boolean"),
    "project_id as a number": Bad(
        base(replace=("project_id: proj1", "project_id: 12345")), "policies[0].project_id", 4, "valid string"
    ),
    "graphs as a string": Bad(base("    select: {graphs: prod-*}"), "policies[0].select.graphs", 7, "valid list"),
    "pinned id as a number": Bad(base("      ids: [12345]"), "policies[0].keep.ids[0]", 7, "valid string"),
    "keep as a list": Bad(
        base(replace=("    keep:\n      daily: 7\n", "    keep: [daily]\n")),
        "policies[0].keep",
        5,
        "expected a mapping",
    ),
    # Plain words, not pydantic's "a valid dictionary or instance of Select".
    "select as a list": Bad(base("    select: [a]"), "policies[0].select", 7, "expected a mapping (key: value"),
    "safety as a number": Bad(base("    safety: 5"), "policies[0].safety", 7, "expected a mapping"),
    "defaults as a string": Bad(
        base(replace=("version: 1\n", "version: 1\ndefaults: x\n")), "defaults", 2, "expected a mapping"
    ),
    "safety.min_keep as a bool": Bad(
        base("    safety: {min_keep: yes}"), "policies[0].safety.min_keep", 7, "valid integer"
    ),
    "group_by unknown": Bad(base("    group_by: method"), "policies[0].group_by", 7, "'graph_and_method'"),
    "anchor unknown": Bad(base("    anchor: oldest"), "policies[0].anchor", 7, "'newest' or 'now'"),
    "backup method glob": Bad(
        base('    select: {backup_methods: ["*"]}'), "policies[0].select.backup_methods[0]", 7, "lowercase word"
    ),
    "backup method capitalised": Bad(
        base("    select: {backup_methods: [auto, Auto]}"), "policies[0].select.backup_methods[1]", 7, "no globs"
    ),
    "backup method with a glob suffix": Bad(
        base("    select: {backup_methods: [auto*]}"), "policies[0].select.backup_methods[0]", 7, "lowercase word"
    ),
    "backup method in defaults": Bad(
        base(replace=("version: 1\n", "version: 1\ndefaults:\n  select: {backup_methods: [m-1]}\n")),
        "defaults.select.backup_methods[0]",
        3,
        "lowercase word",
    ),
    "empty graph glob": Bad(base('    select: {graphs: [""]}'), "policies[0].select.graphs[0]", 7, "at least 1"),
    "no graph globs": Bad(base("    select: {graphs: []}"), "policies[0].select.graphs", 7, "at least 1"),
    # --- null where not allowed ---------------------------------------------------------------------------------
    "dry_run null": Bad(base("    dry_run: null"), "policies[0].dry_run", 7, "must not be empty (null)"),
    "keep null": Bad(
        base(replace=("    keep:\n      daily: 7\n", "    keep: ~\n")), "policies[0].keep", 5, "must not be empty"
    ),
    "timezone null in defaults": Bad(
        base(replace=("version: 1\n", "version: 1\ndefaults:\n  timezone:\n")), "defaults.timezone", 3, "null"
    ),
    "count null": Bad(base(replace=("daily: 7", "daily: null")), "policies[0].keep.daily", 6, "whole number"),
    "min_keep null": Bad(base("    safety: {min_keep: null}"), "policies[0].safety.min_keep", 7, "valid integer"),
    "name null": Bad(base(replace=("name: p", "name:")), "policies[0].name", 3, "valid string"),
    # --- duplicate and missing policy data ----------------------------------------------------------------------
    "duplicate policy names": Bad(
        base("  - name: p", "    project_id: proj2", "    keep: {last: 1}"),
        "policies[1].name",
        7,
        "duplicate policy name 'p' (also policies[0])",
    ),
    "missing name": Bad(
        base(replace=("  - name: p\n    project_id", "  - project_id")), "policies[0].name", 3, "missing"
    ),
    "missing project_id": Bad(
        base(replace=("    project_id: proj1\n", "")), "policies[0].project_id", 3, "in the policy and in 'defaults'"
    ),
    "missing keep": Bad(
        base(replace=("    keep:\n      daily: 7\n", "")), "policies[0].keep", 3, "in the policy and in 'defaults'"
    ),
    # --- names, ids, endpoint, region ---------------------------------------------------------------------------
    "bad policy name": Bad(base(replace=("name: p", "name: prod nightly")), "policies[0].name", 3, "policy name"),
    "empty policy name": Bad(base(replace=("name: p", 'name: ""')), "policies[0].name", 3, "policy name"),
    "policy name too long": Bad(base(replace=("name: p", "name: " + "n" * 65)), "policies[0].name", 3, "1 to 64"),
    "bad project_id": Bad(
        base(replace=("project_id: proj1", "project_id: proj-1")), "policies[0].project_id", 4, "letters and digits"
    ),
    "project_id too long": Bad(
        base(replace=("project_id: proj1", "project_id: " + "a" * 65)), "policies[0].project_id", 4, "1 to 64"
    ),
    "bad region": Bad(base("    region: CN_North_4"), "policies[0].region", 7, "region must look like"),
    "endpoint not http": Bad(base("    endpoint: ftp://ges.example.com"), "policies[0].endpoint", 7, "http(s) URL"),
    "endpoint without host": Bad(base("    endpoint: https://"), "policies[0].endpoint", 7, "http(s) URL"),
    "endpoint with credentials": Bad(
        base("    endpoint: https://user:secret@ges.example.com"), "policies[0].endpoint", 7, "credentials"
    ),
    "endpoint with a query": Bad(
        base("    endpoint: https://ges.example.com/?a=1"), "policies[0].endpoint", 7, "query"
    ),
    "endpoint with a bad port": Bad(
        base("    endpoint: https://ges.example.com:99999"), "policies[0].endpoint", 7, "port"
    ),
    # --- cron ------------------------------------------------------------------------------------------------------
    "cron with 6 fields": Bad(base('    schedule: "0 30 2 * * *"'), "policies[0].schedule", 7, "expected 5 fields"),
    "cron minute 60": Bad(base('    schedule: "60 2 * * *"'), "policies[0].schedule", 7, "minute 60 is outside 0-59"),
    "cron bad weekday name": Bad(
        base('    schedule: "0 2 * * funday"'), "policies[0].schedule", 7, "'funday' is not a valid day of week"
    ),
    "cron backwards range": Bad(base('    schedule: "0 2 * * 5-1"'), "policies[0].schedule", 7, "runs backwards"),
    "cron that never fires": Bad(base('    schedule: "0 0 31 2 *"'), "policies[0].schedule", 7, "never fires"),
    "cron on the 30th of February": Bad(base('    schedule: "0 0 30 2 *"'), "policies[0].schedule", 7, "never fires"),
    "cron on the 31st of short months": Bad(
        base('    schedule: "0 0 31 4,6,9,11 *"'), "policies[0].schedule", 7, "never fires"
    ),
    "cron as a number": Bad(base("    schedule: 5"), "policies[0].schedule", 7, "must be a string"),
    "cron in defaults": Bad(
        base(replace=("version: 1\n", "version: 1\ndefaults:\n  schedule: '@reboot'\n")),
        "defaults.schedule",
        3,
        "invalid cron",
    ),
    # --- timezone --------------------------------------------------------------------------------------------------
    "unknown timezone": Bad(base("    timezone: Mars/Olympus"), "policies[0].timezone", 7, "unknown timezone"),
    "timezone path traversal": Bad(base("    timezone: ../../etc/passwd"), "policies[0].timezone", 7, "timezone"),
    "timezone offset": Bad(base("    timezone: +02:00"), "policies[0].timezone", 7, "timezone"),
    # A zone directory made the zone database raise IsADirectoryError ("unexpected", exit 1, no key path).
    "timezone naming a zone directory": Bad(
        base("    timezone: Europe"), "policies[0].timezone", 7, "unknown timezone"
    ),
    "timezone naming another zone directory": Bad(
        base("    timezone: America"), "policies[0].timezone", 7, "unknown timezone"
    ),
    "timezone Etc": Bad(base("    timezone: Etc"), "policies[0].timezone", 7, "unknown timezone"),
    "timezone directory with a slash": Bad(base("    timezone: Etc/"), "policies[0].timezone", 7, "unknown timezone"),
    "very long timezone": Bad(
        base("    timezone: " + "Europe/" * 300 + "Berlin"), "policies[0].timezone", 7, "unknown"
    ),
    "very long timezone word": Bad(base("    timezone: " + "A" * 5000), "policies[0].timezone", 7, "unknown timezone"),
    # --- durations and counts -------------------------------------------------------------------------------------
    "bad within": Bad(base("      within: 2x"), "policies[0].keep.within", 7, "invalid duration '2x'"),
    "within units out of order": Bad(base("      within: 6mo1y"), "policies[0].keep.within", 7, "largest first"),
    "within in minutes, units out of order": Bad(
        base("      within: 30s1min"), "policies[0].keep.within", 7, "largest first"
    ),
    "within a bare m": Bad(base("      within: 90m"), "policies[0].keep.within", 7, "min, s"),
    "within zero": Bad(base("      within: 0d"), "policies[0].keep.within", 7, "longer than zero"),
    "within as a number": Bad(base("      within: 2"), "policies[0].keep.within", 7, "must be a string"),
    "bad delete_after": Bad(
        base("    failed: {delete_after: 3 days}"), "policies[0].failed.delete_after", 7, "invalid duration"
    ),
    # YAML 1.1 reads these as numbers (012 = 10, 1:30 = 90, ...): counts are decimal digits only.
    **{
        f"count {text}": Bad(
            base(replace=("daily: 7", f"daily: {text}")),
            "policies[0].keep.daily",
            6,
            f"decimal digits) or 'unlimited', got '{text}'",
        )
        for text in ("012", "010", "08", "1:30", "0x10", "0b101", "1_0", "0o17", "+0x1")
    },
    "min_keep in octal": Bad(base("    safety: {min_keep: 012}"), "policies[0].safety.min_keep", 7, "valid integer"),
    "max_deletes sexagesimal": Bad(
        base("    safety: {max_deletes: 1:30}"), "policies[0].safety.max_deletes", 7, "valid integer"
    ),
    "version in octal": Bad(base(replace=("version: 1", "version: 01")), "version", 1, "Input should be 1"),
    "count of thousands of digits": Bad(
        base(replace=("daily: 7", "daily: " + "9" * 5000)), "policies[0].keep.daily", 6, "the number is too large"
    ),
    "negative count": Bad(base("      weekly: -1"), "policies[0].keep.weekly", 7, "cannot be negative"),
    "negative max_deletes": Bad(
        base("    safety: {max_deletes: -5}"), "policies[0].safety.max_deletes", 7, "greater than or equal to 0"
    ),
    "negative min_keep": Bad(
        base("    safety: {min_keep: -1}"), "policies[0].safety.min_keep", 7, "greater than or equal to 0"
    ),
    "keep of zeros": Bad(
        base(replace=("      daily: 7\n", "      daily: 0\n      weekly: 0\n")),
        "policies[0].keep",
        5,
        "at least one rule",
    ),
    "empty keep": Bad(
        base(replace=("    keep:\n      daily: 7\n", "    keep: {}\n")), "policies[0].keep", 5, "at least"
    ),
    "keep of zeros in defaults": Bad(
        base(replace=("version: 1\n", "version: 1\ndefaults:\n  keep: {last: 0}\n")), "defaults.keep", 3, "at least one"
    ),
    # The contract's own example of a key path: an error in the second policy.
    "error in the second policy": Bad(
        base("  - name: q", "    project_id: proj1", "    keep:", "      daily: -7"),
        "policies[1].keep.daily",
        10,
        "cannot be negative",
    ),
    # --- bytes ---------------------------------------------------------------------------------------------------
    "file over 1 MiB": Bad(BASE + "#" * MAX_FILE_BYTES + "\n", "(top level)", None, "larger than 1024 KiB"),
    "not UTF-8": Bad(BASE.encode() + b"    region: cn-\xff\xfe-4\n", "(top level)", None, "not UTF-8"),
    "Latin-1 text": Bad("version: 1\n# r\xe9gion\n".encode("latin-1"), "(top level)", None, "not UTF-8"),
    "control character": Bad(base("    region: cn\x07north"), "(top level)", 7, "unacceptable character #x0007"),
    "NUL byte": Bad(BASE.encode() + b"\x00", "(top level)", 7, "unacceptable character #x0000"),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_a_malformed_file_is_one_clear_line(case: Bad, write_policy: WritePolicy) -> None:
    path = write_policy(case.content)

    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)

    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    assert message.startswith(f"{path}: ")
    where, _, text = message.removeprefix(f"{path}: ").partition(": ")
    key_path, _, line = where.partition(", line ")
    if case.path.startswith("re:"):
        assert re.fullmatch(case.path[3:], key_path), message
    else:
        assert key_path == case.path, message
    assert line == ("" if case.line is None else str(case.line)), message
    assert case.fragment in text, message
    assert "instance of" not in text and "Value error" not in text, message  # no Python internals
    assert caught.value.source == str(path)
    assert caught.value.problems


def test_several_problems_are_counted_in_the_one_line(write_policy: WritePolicy) -> None:
    path = write_policy(base("      weekly: -1", "    anchor: oldest", "    timezone: Nowhere/City"))

    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)

    assert str(caught.value).endswith(" (+2 more problems)")
    assert sorted((p.line, p.key_path) for p in caught.value.problems) == [
        (7, "policies[0].keep.weekly"),
        (8, "policies[0].anchor"),
        (9, "policies[0].timezone"),
    ]


def test_problems_in_several_policies_are_all_reported(write_policy: WritePolicy) -> None:
    path = write_policy(
        """\
        version: 1
        policies:
          - {name: a, project_id: p1, keep: {daily: 1}}
          - {name: a, project_id: p1, keep: {daily: 1}}
          - {name: c, keep: {daily: 1}}
        """
    )
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)

    assert [(p.key_path, p.line) for p in caught.value.problems] == [
        ("policies[1].name", 4),
        ("policies[2].project_id", 5),
    ]
    assert str(caught.value).endswith("(+1 more problem)")


@pytest.mark.parametrize(
    ("fragment", "path"),
    [
        ("timezone: localtime", "policies[0].timezone"),
        ("select: {backup_methods: []}", "policies[0].select.backup_methods"),
    ],
)
def test_machine_dependent_or_empty_selections_are_refused(tmp_path: Path, fragment: str, path: str) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(f"version: 1\npolicies:\n  - name: a\n    project_id: abc\n    keep: {{last: 1}}\n    {fragment}\n")
    with pytest.raises(PolicyError) as info:
        load_policy_file(file)
    message = str(info.value)
    assert "\n" not in message and path in message and "line 6" in message


@pytest.mark.parametrize(
    "fragment",
    [
        '    region: "' + "r" * 100_000 + '"',
        '    "' + "k" * 100_000 + '": 1',
        '    region: "' + "\x1b[31m" * 10 + '"',
        "    timezone: " + "Z" * 100_000,
        '    schedule: "' + "1," * 40_000 + 'x * * * *"',
        "      within: " + "1" * 50_000 + "d",
        "    safety: {max_deletes: " + "9" * 5000 + "}",
    ],
)
def test_an_offending_value_is_cut_to_a_readable_length(fragment: str, write_policy: WritePolicy) -> None:
    path = write_policy(base(fragment))

    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)

    message = str(caught.value)
    assert len(message) < len(str(path)) + 400, message[:500]
    assert "Exceeds the limit" not in message and "4300" not in message
    assert "\x1b" not in message
