"""The `validate` command: every problem of a policy file, or a summary of each policy with its next fire time.

stdout carries the result: one line per policy (`--format text`), or one JSON document (`--format json`, also for an
invalid file: `"valid": false` with every problem). Problems also go to stderr, one error line each; warnings
(`policy_never_runs`, `backup_method_unknown`) are log events on stderr. Exit 0 valid (warnings or not), 2 invalid.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from ges_retention.exit_codes import ExitCode
from ges_retention.policy import Policy
from ges_retention.policy_loading import FileWarning, PolicyError, PolicyFile, Problem, load_policy_file
from ges_retention.retention_buckets import BUCKETS

__all__ = ["describe", "next_fire_time", "validate_command"]

log = structlog.get_logger("ges_retention.validate")


def validate_command(path: str, *, fmt: str, now: datetime, report_error: Callable[[str], None]) -> int:
    """Validate the file at `path` as of `now`; `report_error` writes one error line to stderr."""
    try:
        policy_file = load_policy_file(path)
    except PolicyError as exc:
        problems = exc.problems or [Problem((), str(exc))]
        if fmt == "json":
            _print_json(_document(path, None, problems, now))
        for problem in problems:
            report_error(f"{exc.source}: {problem}")
        return ExitCode.INVALID
    for warning in policy_file.warnings:
        log.warning(
            warning.event,
            path=path,
            policy=warning.policy,
            key_path=warning.key_path,
            line=warning.line,
            detail=warning.message,
        )
    if fmt == "json":
        _print_json(_document(path, policy_file, [], now))
    else:
        for policy in policy_file.policies:
            print(describe(policy, now))
    return ExitCode.OK


def next_fire_time(policy: Policy, now: datetime) -> datetime | None:
    """When the daemon next runs the policy by its schedule (before its jitter of at most 5 minutes), local time."""
    if policy.schedule is None or not policy.enabled:
        return None
    fire: datetime | None = policy.schedule.trigger(policy.tz).get_next_fire_time(None, now)
    return None if fire is None else fire.astimezone(policy.tz)


def describe(policy: Policy, now: datetime) -> str:
    """One line: what the policy selects, keeps and when it runs."""
    keep = policy.keep
    rules = [f"{rule} {getattr(keep, rule)}" for rule in ("last", *BUCKETS) if getattr(keep, rule)]
    if keep.within is not None:
        rules.append(f"within {keep.within}")
    if keep.names or keep.ids:
        rules.append(f"{len(keep.names) + len(keep.ids)} pin(s)")
    parts = [
        f"{policy.name}: project {policy.project_id}",
        _when(policy, now),
        "keep " + ", ".join(rules),
        f"min_keep {policy.safety.min_keep}, max_deletes {policy.safety.max_deletes}",
    ]
    if policy.dry_run:
        parts.append("dry-run")
    return "; ".join(parts)


def _when(policy: Policy, now: datetime) -> str:
    if not policy.enabled:
        return "paused (enabled: false)"
    triggers = []
    if policy.schedule is not None:
        fire = next_fire_time(policy, now)
        shown = fire.strftime("%Y-%m-%d %H:%M %Z") if fire else "never"
        triggers.append(f"schedule '{policy.schedule}' ({policy.timezone}), next {shown}")
    if policy.run_on_change:
        triggers.append("runs when its definition changes")
    return ", ".join(triggers) or "on demand only (run, SIGUSR1, POST /v1/runs)"


def _document(path: str, policy_file: PolicyFile | None, problems: list[Problem], now: datetime) -> dict[str, Any]:
    policies = [] if policy_file is None else [_policy_entry(p, now) for p in policy_file.policies]
    warnings = [] if policy_file is None else [_warning_entry(w) for w in policy_file.warnings]
    return {
        "file": path,
        "valid": policy_file is not None,
        "policies": policies,
        "warnings": warnings,
        "problems": [{"key_path": p.key_path, "line": p.line, "message": p.message} for p in problems],
    }


def _policy_entry(policy: Policy, now: datetime) -> dict[str, Any]:
    fire = next_fire_time(policy, now)
    return {
        "name": policy.name,
        "project_id": policy.project_id,
        "enabled": policy.enabled,
        "dry_run": policy.dry_run,
        "schedule": None if policy.schedule is None else str(policy.schedule),
        "timezone": policy.timezone,
        "run_on_change": policy.run_on_change,
        "next_run": None if fire is None else fire.isoformat(),
        "summary": describe(policy, now),
    }


def _warning_entry(warning: FileWarning) -> dict[str, Any]:
    return {
        "event": warning.event,
        "policy": warning.policy,
        "key_path": warning.key_path,
        "line": warning.line,
        "message": warning.message,
    }


def _print_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
