"""`ges-retention demo`: the main job, end to end, against an in-process emulator with realistic backups.

Starts the emulator on a free loopback port, seeds each project of `config/policy.example.yaml` with several graphs
and months of daily automatic backups (plus weekly manual ones, a golden one, a failed one and one still running),
shows the plan as a table, runs the policies for real against the emulator, and prints the summary.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from ges_retention.emulator.app import running_emulator
from ges_retention.emulator.config import DEFAULT_AK, DEFAULT_SK, AccessKey, EmulatorConfig
from ges_retention.emulator.store import Store
from ges_retention.gate_state import result_scope
from ges_retention.logs import configure_logging
from ges_retention.policy_loading import PolicyError, PolicyFile, load_policy_file
from ges_retention.report import render_summary_text, render_table
from ges_retention.run_coroutine import run_coroutine
from ges_retention.service import Service
from ges_retention.settings import Settings
from ges_retention.state import Store as StateStore
from ges_retention.summary import PolicyResult

__all__ = ["DEMO_GRAPHS", "find_example_policy", "run_demo", "seed_demo_project"]

EXAMPLE = Path("config") / "policy.example.yaml"
DEMO_GRAPHS = ("prod-orders", "prod-social", "staging-search", "dev-sandbox")
DAYS_OF_HISTORY = 75


def find_example_policy() -> Path:
    """`config/policy.example.yaml` from the working directory, else from the source checkout."""
    candidates = [Path.cwd() / EXAMPLE, Path(__file__).resolve().parents[2] / EXAMPLE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise PolicyError(str(EXAMPLE), [])


def seed_demo_project(store: Store, project_id: str, now: datetime) -> None:
    """Deterministic, realistic history: daily auto backups at 02:00 UTC, weekly manual ones, a few oddities."""
    today = now.replace(hour=2, minute=0, second=0, microsecond=0)
    if today > now:
        today -= timedelta(days=1)
    for index, name in enumerate(DEMO_GRAPHS):
        graph_id = f"{index + 1:08d}-demo-{name}"
        store.add_graph(project_id, name=name, graph_id=graph_id, created_ms=_ms(today - timedelta(days=400)))
        for day in range(DAYS_OF_HISTORY):
            start = today - timedelta(days=day, minutes=index * 7)
            store.add_backup(
                project_id,
                {
                    "id": f"{name}-auto-{day:03d}",
                    "graph_id": graph_id,
                    "start_timestamp": _ms(start),
                    "backup_method": "auto",
                },
            )
            if day % 7 == 3:
                store.add_backup(
                    project_id,
                    {
                        "id": f"{name}-manual-{day:03d}",
                        "graph_id": graph_id,
                        "start_timestamp": _ms(start + timedelta(hours=9)),
                        "backup_method": "manual",
                    },
                )
        golden = today - timedelta(days=200)
        store.add_backup(
            project_id,
            {
                "id": f"{name}-golden",
                "name": f"{name}-golden",
                "graph_id": graph_id,
                "start_timestamp": _ms(golden),
                "backup_method": "manual",
            },
        )
    orders = f"{1:08d}-demo-prod-orders"
    store.add_backup(
        project_id,
        {
            "id": "prod-orders-failed",
            "graph_id": orders,
            "start_timestamp": _ms(today - timedelta(days=5, hours=-3)),
            "status": "failed",
        },
    )
    store.add_backup(
        project_id,
        {
            "id": "prod-social-running",
            "graph_id": f"{2:08d}-demo-prod-social",
            "start_timestamp": _ms(now - timedelta(minutes=3)),
            "status": "backing_up",
        },
    )


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def run_demo(
    settings: Settings | None = None,
    *,
    policy_path: Path | None = None,
    log_format: str | None = None,
    log_level: str | None = None,
) -> int:
    """`log_format` and `log_level`: the command line's `--log-format` and `--log-level`, which win."""
    path = policy_path or find_example_policy()
    policy_file = load_policy_file(path)
    return run_coroutine(_demo(policy_file, settings, log_format, log_level))


async def _demo(policy_file: PolicyFile, base: Settings | None, log_format: str | None, log_level: str | None) -> int:
    now = datetime.now(UTC)
    # A newcomer wants the table and the summary, not every log line: warnings only unless asked otherwise.
    configure_logging(
        log_format or (base.log_format if base and "GES_RETENTION_LOG_FORMAT" in os.environ else "console"),
        log_level or os.environ.get("GES_RETENTION_LOG_LEVEL", "warning").lower(),
    )
    projects = sorted({p.project_id for p in policy_file.policies})
    store = Store()
    config = EmulatorConfig(
        project_ids=projects,
        access_keys=[AccessKey(f"{DEFAULT_AK[:-2]}{i:02d}", DEFAULT_SK, p) for i, p in enumerate(projects, 1)],
    )
    for project_id in projects:
        seed_demo_project(store, project_id, now)
    out = sys.stdout
    started = time.monotonic()
    async with running_emulator(store=store, config=config) as emulator:
        total_before = sum(len(store.backups(p)) for p in projects)
        out.write(
            f"GES emulator at {emulator.url}: {len(projects)} project(s), {len(DEMO_GRAPHS)} graphs, "
            f"{total_before} backups ({DAYS_OF_HISTORY} days of history)\n"
            f"Policy file: {policy_file.source}\n\n"
        )
        for project_id, key in zip(projects, config.access_keys, strict=True):
            settings = _demo_settings(emulator.url, key.ak)
            selected = [p for p in policy_file.policies if p.project_id == project_id]
            service = Service(settings, state_mode="create")
            async with service as runner:
                planned = await runner.list_and_plan(policy_file, selected, dry_run=True, now=now)
                out.write(render_table(planned.results, now, collapse=4))
                assert service.store is not None
                await _acknowledge(service.store, planned.results, out)
                out.write("\nRunning the policies against the emulator...\n")
                summary = await runner.run(policy_file, selected, trigger="cli")
            out.write(render_summary_text(summary))
        left = sum(len(store.backups(p)) for p in projects)
        out.write(
            f"\nBackups before: {total_before}, after: {left} "
            f"({total_before - left} deleted) in {time.monotonic() - started:.1f}s.\n"
            "Next: rehearse a policy offline on an exported listing:\n"
            "  ges-retention plan config/policy.example.yaml --from-file config/backups.example.json "
            "--now 2026-11-27T12:00:00Z\n"
        )
    return int(summary.exit_code())


async def _acknowledge(store: StateStore, results: list[PolicyResult], out: TextIO) -> None:
    """The demo's state is new, so each policy's first real run has no baseline: every deletion counts against its
    `change_budget`, and one deleting more is held. The demo acknowledges them itself, and says so."""
    held = [r for r in results if r.change_held and r.gate is not None]
    if not held:
        return
    out.write(
        "\nChange gate: this state is new, so these policies have no baseline and a first real run deleting more "
        "than safety.change_budget (default 10) backups is held (exit 3, nothing deleted) until a person "
        "acknowledges it: `ges-retention ack POLICY_FILE --policy NAME --digest SHA256`, POST "
        "/v1/policies/NAME/ack, or `safety.ack: SHA256` in the file. The demo acknowledges them itself:\n"
    )
    for result in held:
        assert result.gate is not None
        await store.put_ack(result_scope(result), result.gate.digest, by="cli")
        out.write(f"  acknowledged {result.name}: {len(result.gate.extra)} deletions, digest {result.gate.digest}\n")


def _demo_settings(url: str, ak: str) -> Settings:
    return Settings(
        _env_file=None,
        endpoint=url,
        ak=ak,
        sk=DEFAULT_SK,
        token=None,
        security_token=None,
        iam_user=None,
        iam_password=None,
        iam_domain=None,
        rate_limit=0,
        concurrency=16,
        state=":memory:",  # the demo remembers nothing: a real state is never touched by a rehearsal
    )
