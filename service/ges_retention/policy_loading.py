"""Reading a policy file: safe YAML with line numbers, validation, merging, one clear error type.

Every problem is reported with the file, the key path as the user wrote it (`policies[1].keep.daily`) and the line
YAML gives for it. YAML is composed with the safe loader and walked here, so that duplicate keys are an error (PyYAML
would silently keep the last), nesting and alias expansion are bounded, and positions survive. Integers are decimal
digits only: YAML 1.1 would read `012` as 10, `1:30` as 90 and `0x10`, `0b101`, `1_0` as numbers, so those stay
strings here and are refused as the wrong type where a number is expected.

A valid file may still carry warnings (`FileWarning`: an unknown backup method, a policy that never runs by itself):
the file loads, and `validate` and the daemon say so.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ges_retention.errors import GesRetentionError, shorten
from ges_retention.policy import Policy, PolicyFileDocument, merge_policy, never_runs
from ges_retention.policy_fields import KNOWN_BACKUP_METHODS
from ges_retention.policy_selection import Select

__all__ = [
    "MAX_FILE_BYTES",
    "FileWarning",
    "PolicyError",
    "PolicyFile",
    "Problem",
    "agency_conflicts",
    "load_policy_file",
    "parse_policy_text",
]

MAX_FILE_BYTES = 1024 * 1024
_MAX_DEPTH = 20
_MAX_NODES = 200_000  # bounds alias expansion ("billion laughs") as well as plain size
_INT_TAG = "tag:yaml.org,2002:int"
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)", re.ASCII)
_MAX_INT_DIGITS = 1000
_KEY_CHARS = 60

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    loc: Loc
    message: str
    line: int | None = None

    @property
    def key_path(self) -> str:
        return format_loc(self.loc)

    def __str__(self) -> str:
        where = self.key_path or "(top level)"
        line = f", line {self.line}" if self.line else ""
        return f"{where}{line}: {self.message}"


@dataclass(frozen=True, slots=True)
class FileWarning:
    """Something a valid file says that an operator should hear about; `event` names it in logs and JSON."""

    event: str
    loc: Loc
    message: str
    line: int | None = None
    policy: str | None = None

    @property
    def key_path(self) -> str:
        return format_loc(self.loc)

    def __str__(self) -> str:
        return str(Problem(self.loc, self.message, self.line))


class PolicyError(GesRetentionError, ValueError):
    """A policy file that cannot be used; `str()` is one line naming the file, key path and line."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        first = self.problems[0] if self.problems else Problem((), "invalid policy file")
        more = len(self.problems) - 1
        suffix = f" (+{more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
        super().__init__(f"{source}: {first}{suffix}")


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """A loaded, valid policy file."""

    source: str
    policies: tuple[Policy, ...]
    digest: str = field(repr=False)
    warnings: tuple[FileWarning, ...] = ()

    def names(self) -> list[str]:
        return [p.name for p in self.policies]

    def select(self, names: Iterable[str] | None) -> list[Policy]:
        """The named policies in file order (all when `names` is empty or None); unknown names are an error."""
        wanted = list(names or [])
        if not wanted:
            return list(self.policies)
        known = set(self.names())
        unknown = [n for n in wanted if n not in known]
        if unknown:
            names = ", ".join(shorten(n) for n in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            has = str(sorted(known)) if len(known) <= 20 else f"{str(sorted(known)[:20])[:-1]}, ...]"
            raise PolicyError(self.source, [Problem((), f"no policy named {names}; the file has {has}")])
        return [p for p in self.policies if p.name in wanted]


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # A key like "a\nb" must not break the line, nor a 100 KB key make it unreadable.
            text = part if part.isprintable() and len(part) <= _KEY_CHARS else shorten(part, _KEY_CHARS)
            out += f".{text}" if out else text
    return out


def load_policy_file(path: str | Path) -> PolicyFile:
    source = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PolicyError(source, [Problem((), f"cannot read the file: {exc.strerror or exc}")]) from None
    return parse_policy_text(data, source=source)


def parse_policy_text(data: bytes | str, *, source: str = "<policy>") -> PolicyFile:
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_FILE_BYTES:
        raise PolicyError(source, [Problem((), f"the file is larger than {MAX_FILE_BYTES // 1024} KiB")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(source, [Problem((), f"the file is not UTF-8 text (byte {exc.start})")]) from None
    document, lines = _read_yaml(text, source)
    return _validate(document, lines, source, hashlib.sha256(raw).hexdigest())


# --- YAML ---------------------------------------------------------------------------------------------------


class _Walker:
    __slots__ = ("constructor", "lines", "nodes", "source")

    def __init__(self, source: str, constructor: yaml.SafeLoader) -> None:
        self.source = source
        self.constructor = constructor
        self.lines: dict[Loc, int] = {}
        self.nodes = 0

    def fail(self, loc: Loc, node: yaml.Node, message: str) -> PolicyError:
        return PolicyError(self.source, [Problem(loc, message, node.start_mark.line + 1)])

    def walk(self, node: yaml.Node, loc: Loc) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise self.fail(loc, node, f"the document has more than {_MAX_NODES} values (alias expansion?)")
        if len(loc) > _MAX_DEPTH:
            raise self.fail(loc, node, f"nesting deeper than {_MAX_DEPTH} levels")
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*loc, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, loc)

    def _scalar(self, node: yaml.Node, loc: Loc) -> Any:
        if node.tag == _INT_TAG:
            return self._integer(node, loc)
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self.fail(loc, node, f"invalid value: {getattr(exc, 'problem', None) or exc}") from None
        except Exception:  # an explicit tag the value does not fit (`!!int abc`, `!!bool x`, `!!timestamp x`)
            tag = str(node.tag).removeprefix("tag:yaml.org,2002:")
            raise self.fail(loc, node, f"invalid value {shorten(node.value)} for the tag !!{shorten(tag)}") from None

    def _integer(self, node: yaml.Node, loc: Loc) -> int | str:
        """Decimal digits are a number; YAML 1.1's octal, hex, binary, `1_0` and `1:30` stay text (a type error)."""
        text = str(node.value)
        if not _DECIMAL.fullmatch(text):
            if not re.fullmatch(r"[-+]?[0-9][0-9a-fA-FxXbBoO_:]*", text, re.ASCII):
                raise self.fail(loc, node, f"invalid value {shorten(text)} for the tag !!int")  # `!!int seven`
            return text
        if len(text.lstrip("+-")) > _MAX_INT_DIGITS:
            raise self.fail(loc, node, f"the number is too large ({len(text)} digits)")
        return int(text)

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail(loc, key_node, "YAML merge keys ('<<') are not supported; use 'defaults'")
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(loc, key_node, "a key must be a plain string")
            key = self._scalar(key_node, loc)
            if not isinstance(key, str):
                raise self.fail(loc, key_node, f"a key must be a string, got {shorten(key)}")
            child = (*loc, key)
            if key in result:
                first = self.lines.get(child)
                raise self.fail(child, key_node, f"duplicate key {shorten(key)} (first at line {first})")
            self.lines[child] = key_node.start_mark.line + 1
            result[key] = self.walk(value_node, child)
        return result


def _read_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    try:
        loader = yaml.SafeLoader(text)  # checks for non-printable characters right away
    except yaml.reader.ReaderError as exc:
        problem = f"invalid YAML: unacceptable character #x{exc.character:04x}: {exc.reason}"
        raise PolicyError(source, [Problem((), problem, text.count("\n", 0, exc.position) + 1)]) from None
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise PolicyError(source, [Problem((), f"invalid YAML: {problem}", line)]) from None
    except yaml.YAMLError as exc:
        raise PolicyError(source, [Problem((), f"invalid YAML: {exc}")]) from None
    except RecursionError:  # PyYAML composes recursively: `[[[[...` thousands deep
        raise PolicyError(source, [Problem((), f"nesting deeper than {_MAX_DEPTH} levels")]) from None
    finally:
        loader.dispose()
    if node is None:
        raise PolicyError(source, [Problem((), "the file is empty: expected 'version: 1' and 'policies'")])
    walker = _Walker(source, loader)
    document = walker.walk(node, ())
    if not isinstance(document, dict):
        raise PolicyError(source, [Problem((), "the top level must be a mapping with 'version' and 'policies'", 1)])
    return document, walker.lines


# --- validation ---------------------------------------------------------------------------------------------


def _line_for(lines: dict[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), -1, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


def _problems(exc: ValidationError, lines: dict[Loc, int], prefix: Loc = ()) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = (*prefix, *(part for part in error["loc"] if isinstance(part, str | int)))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] in ("model_type", "dict_type", "model_attributes_type"):
            message = "expected a mapping (key: value lines, or {key: value})"  # not "an instance of Select"
        elif error["type"] == "missing":
            message = "required key is missing"
        message = message.removeprefix("Value error, ")
        problems.append(Problem(loc, message, _line_for(lines, loc)))
    return problems


def _validate(document: dict[str, Any], lines: dict[Loc, int], source: str, digest: str) -> PolicyFile:
    try:
        parsed = PolicyFileDocument.model_validate(document)
    except ValidationError as exc:
        raise PolicyError(source, _problems(exc, lines)) from None

    problems: list[Problem] = []
    seen: dict[str, int] = {}
    policies: list[Policy] = []
    for index, entry in enumerate(parsed.policies):
        if entry.name in seen:
            loc: Loc = ("policies", index, "name")
            problems.append(
                Problem(
                    loc,
                    f"duplicate policy name {entry.name!r} (also policies[{seen[entry.name]}])",
                    lines.get(loc),
                )
            )
            continue
        seen[entry.name] = index
        try:
            policies.append(Policy.model_validate(merge_policy(parsed.defaults, entry)))
        except ValidationError as exc:
            for problem in _problems(exc, lines, ("policies", index)):
                if "missing" in problem.message:
                    problem = Problem(
                        problem.loc, "required key is missing (in the policy and in 'defaults')", problem.line
                    )
                problems.append(problem)
    if not problems:
        problems = agency_conflicts(policies, lambda policy: policy.api_endpoint() or "", lines)
    if problems:
        raise PolicyError(source, problems)
    return PolicyFile(
        source=source, policies=tuple(policies), digest=digest, warnings=tuple(_warnings(parsed, policies, lines))
    )


def agency_conflicts(
    policies: Sequence[Policy], endpoint_of: Callable[[Policy], str], lines: dict[Loc, int] | None = None
) -> list[Problem]:
    """Policies of one (endpoint, project_id) must use one agency: that project's requests are made with one set of
    credentials (a listing serves every policy of the project). A problem per policy that differs from the first."""
    first: dict[tuple[str, str], tuple[int, Policy]] = {}
    problems = []
    for index, policy in enumerate(policies):
        key = (endpoint_of(policy), policy.project_id)
        seen = first.setdefault(key, (index, policy))
        other = seen[1]
        if other.agency == policy.agency:
            continue
        loc: Loc = ("policies", index, "agency") if policy.agency is not None else ("policies", index)
        where = f"project {policy.project_id}" + (f" at {key[0]}" if key[0] else "")
        message = (
            f"policies {other.name!r} and {policy.name!r} act in {where} with different agencies "
            f"({_agency_text(other)} and {_agency_text(policy)}): policies of one (endpoint, project_id) must use "
            "the same agency"
        )
        problems.append(Problem(loc, message, _line_for(lines or {}, loc)))
    return problems


def _agency_text(policy: Policy) -> str:
    return f"agency {policy.agency.label()}" if policy.agency is not None else "no agency"


# --- warnings -----------------------------------------------------------------------------------------------


def _warnings(parsed: PolicyFileDocument, policies: Sequence[Policy], lines: dict[Loc, int]) -> list[FileWarning]:
    found: list[FileWarning] = []
    for index, policy in enumerate(policies):
        if never_runs(policy):
            # Round-1 users triggered such policies by editing the file; since round 2 nothing runs them by itself.
            message = (
                "enabled, with neither 'schedule' nor 'run_on_change': only 'run', SIGUSR1 or POST /v1/runs run it"
            )
            loc: Loc = ("policies", index)
            found.append(FileWarning("policy_never_runs", loc, message, _line_for(lines, loc), policy.name))
    selects: list[tuple[Loc, Select | None, str | None]] = [
        (("defaults", "select"), parsed.defaults.select if parsed.defaults else None, None)
    ]
    selects += [(("policies", i, "select"), e.select, e.name) for i, e in enumerate(parsed.policies)]
    for prefix, select, name in selects:
        for j, method in enumerate(select.backup_methods or [] if select else []):
            if method not in KNOWN_BACKUP_METHODS:
                loc = (*prefix, "backup_methods", j)
                message = (
                    f"backup method {method!r} is not one GES documents ({', '.join(KNOWN_BACKUP_METHODS)}); "
                    "accepted in case GES added it: check the spelling"
                )
                found.append(FileWarning("backup_method_unknown", loc, message, _line_for(lines, loc), name))
    return found
