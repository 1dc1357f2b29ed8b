"""Small builders for the unit tests: backups from a short timestamp, policies from a few lines of YAML.

b("a", "2026-11-25T10:00")                       # a success of graph g1, UTC wall clock
b("x", "2026-03-29T00:30+01:00", status="failed", graph="g2", method="manual")
pol("keep: {daily: 7}", NO_FLOOR)                # one policy, parsed by the real loader
outcome(plan(...))                               # {"a": "keep: daily 1/7 (2026-11-25)", "b": "delete: expired"}
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ges_retention.backup import Backup
from ges_retention.policy import Policy
from ges_retention.policy_loading import PolicyFile, parse_policy_text
from ges_retention.retention_decisions import Decision, Plan

# A policy line that switches the `min_keep` floor off, to look at the rules alone.
NO_FLOOR = "safety: {min_keep: 0}"

# The `write_policy` fixture (conftest): writes a policy file, returns its path.
WritePolicy = Callable[[str | bytes], Path]


def at(text: str, tz: str = "UTC") -> datetime:
    """An aware instant from ISO 8601; without an offset the wall clock is read in `tz`."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return parsed.astimezone(UTC)


def ms(text: str, tz: str = "UTC") -> int:
    """Epoch milliseconds of `at(text, tz)`, exactly."""
    instant = at(text, tz)
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def b(
    backup_id: str,
    when: str,
    *,
    status: str = "success",
    graph: str = "g1",
    graph_name: str | None = None,
    method: str = "auto",
    name: str | None = None,
    tz: str = "UTC",
) -> Backup:
    """A backup; the graph's name defaults to `<graph>-name`, the backup's name to its id."""
    return Backup(
        id=backup_id,
        graph_id=graph,
        status=status,
        start_ms=ms(when, tz),
        name=backup_id if name is None else name,
        graph_name=f"{graph}-name" if graph_name is None else graph_name,
        backup_method=method,
    )


def earlier(backup: Backup, by_ms: int = 1) -> Backup:
    """The same backup, `by_ms` milliseconds earlier (to sit just across a boundary)."""
    return dataclasses.replace(backup, start_ms=backup.start_ms - by_ms)


def policy_file(text: str) -> PolicyFile:
    """A whole policy file from (dedented) YAML text."""
    return parse_policy_text(textwrap.dedent(text), source="test.yaml")


def pol(*lines: str, name: str = "p", project: str = "proj1") -> Policy:
    """One policy from YAML lines of its keys (each line at the policy's own level)."""
    body = "".join(f"    {line}\n" for line in lines)
    text = f"version: 1\npolicies:\n  - name: {name}\n    project_id: {project}\n{body}"
    (policy,) = parse_policy_text(text, source="test.yaml").policies
    return policy


def outcome(result: Plan) -> dict[str, str]:
    """backup id -> "keep: r1; r2" or "delete: expired", for whole-plan comparisons."""
    return {d.backup.id: f"{d.action}: {'; '.join(d.reasons)}" for d in result.decisions}


def ids(decisions: Iterable[Decision]) -> list[str]:
    return [d.backup.id for d in decisions]
