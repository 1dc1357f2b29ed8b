"""Fuzzing the policy file: hypothesis-generated YAML fed to `ges-retention validate` in-process (`cli.main`).

Generated: documents shaped like policy files (the real keys mixed with unknown ones, plausible and absurd values of
every type, nested with `st.recursive`), and mutations of a valid file (text cut, duplicated, swapped, re-indented,
YAML tokens, aliases, tags and invalid bytes inserted). Whatever the input: the exit code is 0 or 2, an invalid file
gets exactly one line on stderr and nothing on stdout, never a traceback, never an exception out of `main`.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import record

from ges_retention.cli import main
from ges_retention.policy_loading import parse_policy_text

VALID = """\
version: 1
defaults:
  region: cn-north-4
  timezone: Asia/Shanghai
  safety: {min_keep: 2, max_deletes: 50}
  select:
    backup_methods: [auto, manual]
policies:
  - name: prod-nightly
    project_id: 0a1b2c3d4e5f
    schedule: "30 2 * * *"
    select:
      graphs: ["prod-*"]
      exclude_graphs: [prod-scratch]
      names: ["*"]
    group_by: graph_and_method
    keep:
      last: 3
      daily: 7
      weekly: 4
      monthly: 12
      yearly: unlimited
      within: 1y6mo
      names: ["*-golden"]
      ids: [5f0c2b1e-0000-4000-8000-000000000001]
    anchor: now
    failed: {delete_after: 3d}
    safety: {max_deletes: 500}
  - name: staging
    project_id: 0a1b2c3d4e5f
    endpoint: https://ges.cn-north-4.myhuaweicloud.com
    dry_run: true
    keep: {last: 2, within: 36h}
"""

SNIPPETS = (
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "*undefined",
    "!!python/object/apply:os.system ['true']",
    "!!python/name:os.system",
    "!!binary AAAA",
    "!!int x",
    "!!float y",
    "!!bool maybe",
    "!!timestamp x",
    "!!set {a}",
    "!!omap [a: 1]",
    "!custom x",
    "<<: *a",
    "? ",
    "|",
    ">-",
    "\t",
    "'",
    '"',
    "#",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n",
    "---\n",
    "...\n",
    "\x00",
    "\x07",
    "\x85",
    "\ufeff",
    "\u2028",
    "ü",
    "@",
    "`",
    "1e400",
    "0x1F",
    "0o17",
    "-0",
    ".nan",
    ".inf",
    "~",
    "null",
    "yes",
    "no",
    "on",
    "2026-01-01",
    "2026-02-30T25:61:00",
    "9" * 40,
    "unlimited",
    "-1",
)
BAD_BYTES = (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\xfe\xff")

# --- documents shaped like policy files ---------------------------------------------------------------------------

interesting_text = st.sampled_from(
    ["", " ", "unlimited", "Unlimited", "true", "null", "1", "-1", "2d", "x" * 300, "a\nb", "é", "🙂", "*", "../.."]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    interesting_text,
)
junk = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
junk_keys = st.one_of(st.text(max_size=12), st.sampled_from(["Keep", "polices", "keep ", "<<", "1", "null", "~"]))


class Values:
    """The values of one key: `good` ones (valid on their own) and `bad` ones (each invalid)."""

    def __init__(self, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> None:
        self.good = good
        self.bad = bad


def text_globs(min_size: int) -> st.SearchStrategy[list[str]]:
    glob = st.one_of(st.text(min_size=1, max_size=10), st.sampled_from(["prod-*", "*", "[", "**", "?", "[!a]"]))
    return st.lists(glob, min_size=min_size, max_size=3)


COUNT = Values(
    st.one_of(st.integers(min_value=0, max_value=40), st.just("unlimited")),
    st.one_of(st.integers(min_value=-(10**6), max_value=-1), st.sampled_from(["Unlimited", "3", "", "∞", 2.5, True])),
)
DURATION = Values(
    st.one_of(
        st.sampled_from(["2d", "1y6mo", "36h", "1w", "3mo", "1y2mo3w4d5h"]),
        st.from_regex(r"\A[1-9][0-9]{0,4}(y|mo|w|d|h)\Z"),
    ),
    st.sampled_from(["2x", "", "d", "-1d", "1.5d", "0d", "0h", "999999y", "1h1d", "P1D", "2 d", 3, None]),
)
CRON = Values(
    st.sampled_from(
        ["30 2 * * *", "0 0 * * 7", "0 0 * * sun", "*/15 * * * *", "0 3 1 * *", "0 0 * * 1-5", "5,35 */2 * jan-jun mon"]
    ),
    st.sampled_from(
        ["61 * * * *", "* * *", "0 0 * * 8", "@daily", "0-59/0 * * * *", "* * * * * *", "", "0 0 * * sun-sat/0", 5]
    ),
)
SELECT = {
    "graphs": Values(text_globs(1), st.sampled_from([[], [""], "prod-*", [1], None])),
    "exclude_graphs": Values(text_globs(0), st.sampled_from([[""], "x", {"a": 1}])),
    "backup_methods": Values(text_globs(1), st.sampled_from([[""], "auto", [None]])),
    "names": Values(text_globs(1), st.sampled_from([[], [""], 7])),
}
KEEP = {rule: COUNT for rule in ("last", "hourly", "daily", "weekly", "monthly", "yearly")} | {
    "within": DURATION,
    "names": SELECT["names"],
    "ids": SELECT["exclude_graphs"],
}
POLICY: dict[str, Any] = {
    "name": Values(
        st.from_regex(r"\A[A-Za-z0-9_.-]{1,64}\Z"), st.sampled_from(["", "bad name", "x" * 65, "é", 12, None])
    ),
    "project_id": Values(st.from_regex(r"\A[A-Za-z0-9]{1,64}\Z"), st.sampled_from(["has-dash", "", "x" * 65, 12])),
    "region": Values(st.sampled_from(["cn-north-4", "ap-southeast-1"]), st.sampled_from(["CN_NORTH", "-x-", ""])),
    "endpoint": Values(
        st.sampled_from(["https://ges.example.com", "http://127.0.0.1:1", "https://ges.cn-north-4.myhuaweicloud.com"]),
        st.sampled_from(["ftp://x", "not a url", "https://", "", "//host"]),
    ),
    "schedule": CRON,
    "timezone": Values(
        st.sampled_from(["UTC", "Asia/Shanghai", "Europe/Berlin", "Etc/GMT+5"]),
        st.sampled_from(["Mars/Base", "", "../etc/passwd", "Europe/", 0]),
    ),
    "dry_run": Values(st.booleans(), st.sampled_from(["yes", "true", 1, None])),
    "select": SELECT,
    "group_by": Values(st.sampled_from(["graph", "graph_and_method"]), st.sampled_from(["method", "", None])),
    "keep": KEEP,
    "anchor": Values(st.sampled_from(["newest", "now"]), st.sampled_from(["oldest", "", 0])),
    "failed": {"delete_after": DURATION},
    "safety": {
        "min_keep": Values(st.integers(0, 10), COUNT.bad),
        "max_deletes": Values(st.integers(0, 10**6), COUNT.bad),
    },
}


@st.composite
def mapping(draw: st.DrawFn, spec: dict[str, Any], chaos: int, required: tuple[str, ...] = ()) -> dict[str, Any] | Any:
    """Some of `spec`'s keys (the `required` ones, unless chaos says otherwise) with values that are bad or junk
    with a probability of `chaos` in 8."""

    def spoiled() -> bool:
        return draw(st.integers(0, 7)) < chaos

    keys = draw(st.lists(st.sampled_from(sorted(spec)), unique=True, max_size=len(spec)))
    keys += [k for k in required if k not in keys and not spoiled()]
    out: dict[str, Any] = {}
    for key in keys:
        values = spec[key]
        if isinstance(values, dict):
            out[key] = draw(mapping(values, chaos)) if not spoiled() else draw(junk)
        elif spoiled():
            out[key] = draw(values.bad if draw(st.booleans()) else junk)
        else:
            out[key] = draw(values.good)
    if chaos and draw(st.integers(0, 7)) < chaos:
        out[draw(junk_keys)] = draw(junk)
    return out


@st.composite
def policy_documents(draw: st.DrawFn) -> Any:
    chaos = draw(st.sampled_from([0, 0, 1, 2, 4]))
    if chaos and draw(st.integers(0, 15)) == 0:
        return draw(junk)

    def spoiled() -> bool:
        return draw(st.integers(0, 7)) < chaos

    doc: dict[str, Any] = {}
    if not spoiled():
        doc["version"] = 1
    elif draw(st.booleans()):
        doc["version"] = draw(st.one_of(st.sampled_from([2, 0, "1", 1.0, True, None]), junk))
    if draw(st.booleans()):
        doc["defaults"] = draw(mapping({k: v for k, v in POLICY.items() if k not in ("name", "project_id")}, chaos))
    if not spoiled():
        doc["policies"] = draw(st.lists(mapping(POLICY, chaos, ("name", "project_id", "keep")), max_size=3))
    elif draw(st.booleans()):
        doc["policies"] = draw(junk)
    if spoiled():
        doc[draw(junk_keys)] = draw(junk)
    return doc


def dump(document: Any) -> bytes:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode("utf-8", "surrogatepass")


# --- mutations of a valid file --------------------------------------------------------------------------------------


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        kind = draw(
            st.sampled_from(["delete", "insert", "dup_line", "swap", "indent", "truncate", "value", "random_line"])
        )
        position = draw(st.integers(0, max(0, len(text) - 1)))
        line_no = draw(st.integers(0, max(0, len(lines) - 1)))
        if kind == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 40)) :]
        elif kind == "insert":
            snippet = draw(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=6)))
            text = text[:position] + snippet + text[position:]
        elif kind == "dup_line":
            lines.insert(line_no, lines[line_no])
            text = "\n".join(lines)
        elif kind == "swap":
            other = draw(st.integers(0, max(0, len(lines) - 1)))
            lines[line_no], lines[other] = lines[other], lines[line_no]
            text = "\n".join(lines)
        elif kind == "indent":
            delta = draw(st.integers(-4, 4))
            line = lines[line_no]
            lines[line_no] = line[-delta:] if delta < 0 else " " * delta + line
            text = "\n".join(lines)
        elif kind == "truncate":
            text = text[:position]
        elif kind == "value":
            line = lines[line_no]
            if ":" in line:
                value = draw(st.one_of(st.sampled_from(SNIPPETS), scalars.map(lambda v: yaml.safe_dump(v).strip())))
                lines[line_no] = line[: line.index(":") + 1] + " " + value.replace("\n", " ")
            text = "\n".join(lines)
        else:
            lines.insert(line_no, draw(st.text(max_size=30)))
            text = "\n".join(lines)
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(BAD_BYTES)) + data[at:]
    return data


# --- the property ---------------------------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.valid = 0
        self.invalid = 0


def validate_behaves(data: bytes, tally: Tally) -> None:
    path = Path("fuzzed-policy.yaml")
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])  # an exception escaping fails the example
    stdout, stderr = out.getvalue(), err.getvalue()
    assert "Traceback" not in stderr and "Traceback" not in stdout
    assert code in (0, 2), (code, stderr)
    if code == 2:
        tally.invalid += 1
        assert stdout == ""
        # One JSON error line per problem (the default log format is json), each naming the file.
        assert stderr.endswith("\n") and stderr.strip(), f"no error line: {stderr!r}"
        for line in stderr.splitlines():
            event = json.loads(line)
            assert event["event"] == "command_failed" and event["error"].startswith(f"{path}: "), line
    else:
        tally.valid += 1
        # Only warnings (`policy_never_runs`, `backup_method_unknown`), as JSON lines.
        assert all(json.loads(line)["level"] == "warning" for line in stderr.splitlines()), stderr
        policies = parse_policy_text(data).policies
        lines = stdout.splitlines()
        assert len(lines) == len(policies)
        assert all(
            line.startswith(f"{p.name}: project {p.project_id}; ") for line, p in zip(lines, policies, strict=True)
        )


def fuzz(strategy: st.SearchStrategy[bytes], examples: int, derandomize: bool, check: Callable[[bytes], None]) -> None:
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=derandomize,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(strategy)
    def property_holds(data: bytes) -> None:
        check(data)

    property_holds()


SIZES = [
    pytest.param(200, True, id="200-examples"),
    pytest.param(3000, False, id="3000-examples", marks=[pytest.mark.slow, pytest.mark.timeout(300)]),
]


@pytest.mark.parametrize(("examples", "derandomize"), SIZES)
def test_generated_policy_documents_validate_with_exit_0_or_one_error_line(examples: int, derandomize: bool) -> None:
    tally = Tally()
    fuzz(policy_documents().map(dump), examples, derandomize, lambda data: validate_behaves(data, tally))
    record("fuzz: policy files tried (generated documents)", tally.valid + tally.invalid)
    record("fuzz: policy files tried: invalid (exit 2)", tally.invalid)
    record("fuzz: policy files tried: valid (exit 0)", tally.valid)
    # Not a vacuous property: the generator reaches both sides of the validator.
    assert tally.invalid > examples / 4 and tally.valid > 0


@pytest.mark.parametrize(("examples", "derandomize"), SIZES)
def test_mutated_policy_files_validate_with_exit_0_or_one_error_line(examples: int, derandomize: bool) -> None:
    tally = Tally()
    fuzz(mutated_files(), examples, derandomize, lambda data: validate_behaves(data, tally))
    record("fuzz: policy files tried (mutations of a valid file)", tally.valid + tally.invalid)
    record("fuzz: policy files tried: invalid (exit 2)", tally.invalid)
    record("fuzz: policy files tried: valid (exit 0)", tally.valid)
    assert tally.invalid > examples / 4 and tally.valid > 0


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(BILLION_LAUGHS.encode(), id="billion-laughs"),
        pytest.param(b"[" * 20000 + b"]" * 20000, id="deep-nesting-flow"),
        pytest.param(b"".join(b"  " * i + b"- \n" for i in range(3000)), id="deep-nesting-block"),
        pytest.param(VALID.encode() + b"#" * (1024 * 1024), id="over-1-MiB"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\xef\xbb\xbf" + VALID.encode(), id="utf8-bom"),
        pytest.param(VALID.encode("utf-16"), id="utf16"),
        pytest.param(b"version: 1\npolicies: []\n", id="no-policies"),
        pytest.param(b"!!python/object/apply:os.system ['touch pwned']\n", id="python-tag"),
        pytest.param(b"---\nversion: 1\n---\nversion: 1\n", id="two-documents"),
        pytest.param(b"? [a, b]\n: c\n", id="complex-key"),
    ],
)
def test_hostile_policy_files_validate_with_exit_0_or_one_error_line(data: bytes) -> None:
    tally = Tally()
    validate_behaves(data, tally)
    assert not Path("pwned").exists()
    record("fuzz: policy files tried (hostile, fixed)")
    record("fuzz: policy files tried: invalid (exit 2)", tally.invalid)
    record("fuzz: policy files tried: valid (exit 0)", tally.valid)
