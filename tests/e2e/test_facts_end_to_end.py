"""GES facts end to end: the real CLI against the emulator: orphans after a graph is deleted with `keep_backup`, the
graph listing's trust, the backup quota, sizes (absent, null, negative, not a number) and `import` backups."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import aiohttp
from e2e_helpers import PROJECT, cli_env, run_cli

from ges_retention.emulator.app import DEFAULT_TOKEN, RunningEmulator
from ges_retention.emulator.config import FaultRates

DAY_MS = 86_400_000

# Graph `a` lives; graph `b` is deleted with keep_backup by the tests; names say which.
ORPHAN_POLICY = f"""\
version: 1
policies:
  - name: p
    project_id: {PROJECT}
    select: {{graphs: ["facts-*"], orphans: {{orphans}}}}
    keep: {{last: 1}}
    safety: {{min_keep: 0, max_deletes: 1000}}
"""


def write_policy(tmp_path: Path, orphans: str = "include", extra_select: str = "") -> Path:
    path = tmp_path / f"facts-{orphans}.yaml"
    text = ORPHAN_POLICY.replace("{orphans}", orphans)
    if extra_select:
        text = text.replace(f"orphans: {orphans}", f"orphans: {orphans}, {extra_select}")
    path.write_text(text)
    return path


def add_facts_graphs(emulator: RunningEmulator, now: datetime) -> dict[str, list[str]]:
    """Graphs `facts-a` and `facts-b`, each with 3 auto and 3 manual daily backups of 100 MB; ids by graph."""
    now_ms = int(now.timestamp() * 1000)
    ids: dict[str, list[str]] = {}
    for graph in ("a", "b"):
        emulator.store.add_graph(PROJECT, name=f"facts-{graph}", graph_id=f"facts-{graph}")
        ids[graph] = []
        for i in range(6):
            record = {
                "id": f"{graph}{i}",
                "graph_id": f"facts-{graph}",
                "start_timestamp": now_ms - (i + 1) * DAY_MS,
                "backup_method": "auto" if i % 2 == 0 else "manual",
                "size": 100,
            }
            ids[graph].append(emulator.store.add_backup(PROJECT, record)["id"])
    return ids


async def delete_graph(emulator: RunningEmulator, graph_id: str, keep_backup: bool) -> dict[str, object]:
    url = f"{emulator.url}/v2/{PROJECT}/graphs/{graph_id}?keep_backup={'true' if keep_backup else 'false'}"
    async with aiohttp.ClientSession() as session, session.delete(url, headers={"X-Auth-Token": DEFAULT_TOKEN}) as r:
        assert r.status == 200, await r.text()
        body: dict[str, object] = await r.json()
        return body


def current(emulator: RunningEmulator) -> set[str]:
    return {r["id"] for r in emulator.store.backups(PROJECT)}


async def test_deleting_a_graph_with_keep_backup_leaves_orphans_that_plans_mark(
    emulator: RunningEmulator, tmp_path: Path, now: datetime
) -> None:
    ids = add_facts_graphs(emulator, now)
    assert "job_id" in await delete_graph(emulator, "facts-b", keep_backup=True)
    # GES keeps the newest automatic and the two newest manual backups of the graph.
    assert {b for b in ids["b"] if b in current(emulator)} == {"b0", "b1", "b3"}

    result = await run_cli(["plan", str(write_policy(tmp_path)), "--format", "json"], cli_env(emulator))
    assert result.code == 0, result.stderr
    decisions = {d["backup_id"]: d for d in json.loads(result.stdout)["policies"][0]["decisions"]}
    assert {b: d["orphan"] for b, d in decisions.items()} == {
        **{b: False for b in ids["a"]},
        "b0": True,
        "b1": True,
        "b3": True,
    }
    assert {d["size_mb"] for d in decisions.values()} == {100}
    assert decisions["b3"]["graph_name"] == "facts-b"  # from its records: the graph listing no longer has it

    table = await run_cli(["plan", str(write_policy(tmp_path))], cli_env(emulator))
    assert table.code == 0, table.stderr
    rows = table.stdout.splitlines()
    assert sum(1 for row in rows if " facts-b " in row) == 3
    assert all(" orphan " in row for row in rows if " facts-b " in row)
    assert not any(" orphan " in row for row in rows if " facts-a " in row)
    assert "SIZE MB" in table.stdout and "ORPHAN" in table.stdout
    assert "freeing" in table.stdout


async def test_deleting_a_graph_without_keep_backup_removes_its_backups(
    emulator: RunningEmulator, now: datetime
) -> None:
    ids = add_facts_graphs(emulator, now)
    await delete_graph(emulator, "facts-b", keep_backup=False)
    assert not set(ids["b"]) & current(emulator)
    assert set(ids["a"]) <= current(emulator)


async def test_orphans_only_exclude_and_include_delete_what_they_select(
    emulator: RunningEmulator, tmp_path: Path, now: datetime
) -> None:
    ids = add_facts_graphs(emulator, now)
    await delete_graph(emulator, "facts-b", keep_backup=True)

    only = await run_cli(["run", str(write_policy(tmp_path, "only")), "--format", "json"], cli_env(emulator))
    assert only.code == 0, only.stderr
    assert set(emulator.stats.deleted_ids) == {"b1", "b3"}  # b0 is the one `last: 1` keeps
    summary = json.loads(only.stdout)
    assert summary["freed_mb"] == 200
    assert {e["backup_id"]: e["size_mb"] for e in only.events("backup_deleted")} == {"b1": 100, "b3": 100}

    excluded = await run_cli(["run", str(write_policy(tmp_path, "exclude"))], cli_env(emulator))
    assert excluded.code == 0, excluded.stderr
    assert set(emulator.stats.deleted_ids) == {"b1", "b3", *ids["a"][1:]}
    assert "b0" in current(emulator)

    included = await run_cli(["run", str(write_policy(tmp_path, "include"))], cli_env(emulator))
    assert included.code == 0, included.stderr
    # Graph a keeps a0, graph b its newest, b0: nothing more to delete.
    assert {"a0", "b0"} <= current(emulator)
    assert not (set(ids["a"][1:]) | {"b1", "b3"}) & current(emulator)


async def test_a_failing_graph_listing_deletes_nothing(
    emulator: RunningEmulator, tmp_path: Path, now: datetime
) -> None:
    add_facts_graphs(emulator, now)
    before = current(emulator)
    emulator.config.faults = {"list_graphs": FaultRates(error_503=1.0)}
    env = cli_env(emulator, GES_RETENTION_MAX_ATTEMPTS="2")
    result = await run_cli(["run", str(write_policy(tmp_path)), "--format", "json"], env)
    assert result.code == 1, result.stderr
    assert current(emulator) == before
    assert emulator.stats.count("delete_backup") == 0
    [failed] = result.events("listing_failed")
    assert failed["error"].startswith("graph listing:")
    assert json.loads(result.stdout)["skipped_projects"] == [PROJECT]


async def test_an_incomplete_or_repeating_graph_listing_deletes_nothing(
    emulator: RunningEmulator, tmp_path: Path, now: datetime
) -> None:
    add_facts_graphs(emulator, now)
    before = current(emulator)
    emulator.config.graph_count_extra = 1
    result = await run_cli(["run", str(write_policy(tmp_path))], cli_env(emulator, GES_RETENTION_PAGE_SIZE="2"))
    assert result.code == 1, result.stderr
    assert [e["error_code"] for e in result.events("listing_failed")] == ["incomplete_graphs"]

    emulator.config.graph_count_extra = 0
    emulator.config.faults = {"list_graphs": FaultRates(repeat=1.0)}
    result = await run_cli(["run", str(write_policy(tmp_path))], cli_env(emulator, GES_RETENTION_PAGE_SIZE="2"))
    assert result.code == 1, result.stderr
    assert result.events("listing_failed")
    assert current(emulator) == before
    assert emulator.stats.count("delete_backup") == 0


async def test_the_quota_warns_when_low_and_a_quota_without_backup_entry_is_only_a_warning(
    emulator: RunningEmulator, tmp_path: Path, now: datetime
) -> None:
    add_facts_graphs(emulator, now)
    held = len(current(emulator))
    emulator.config.backup_quota = held + 3
    low = await run_cli(["run", str(write_policy(tmp_path)), "--dry-run"], cli_env(emulator))
    assert low.code == 0, low.stderr
    [warning] = low.events("backup_quota_low")
    assert (warning["level"], warning["available"], warning["project_id"]) == ("warning", 3, PROJECT)
    assert emulator.stats.count("list_quotas") == 1

    emulator.config.quota_without_backup = True
    missing = await run_cli(["run", str(write_policy(tmp_path)), "--format", "json"], cli_env(emulator))
    assert missing.code == 0, missing.stderr
    [unavailable] = missing.events("quota_unavailable")
    assert unavailable["level"] == "warning" and "backup" in unavailable["error"]
    assert json.loads(missing.stdout)["deleted"] == 10  # the run went on as if nothing were wrong


async def test_sizes_absent_or_null_are_unknown_and_bad_sizes_make_the_listing_untrusted(
    emulator: RunningEmulator, tmp_path: Path, now: datetime
) -> None:
    add_facts_graphs(emulator, now)
    emulator.store.update_backup(PROJECT, "a1", {"size": None})
    record = emulator.store.backup(PROJECT, "a2")
    assert record is not None
    del record["size"]
    emulator.store.discard_backup(PROJECT, "a2")
    emulator.store.add_backup(PROJECT, record, complete=False)

    result = await run_cli(["run", str(write_policy(tmp_path)), "--dry-run", "--format", "json"], cli_env(emulator))
    assert result.code == 0, result.stderr
    # a1..a5 and b1..b5 would go; two of them have no size: left out of the sum.
    assert json.loads(result.stdout)["would_free_mb"] == 800
    plan = await run_cli(["plan", str(write_policy(tmp_path)), "--format", "json"], cli_env(emulator))
    sizes = {d["backup_id"]: d["size_mb"] for d in json.loads(plan.stdout)["policies"][0]["decisions"]}
    assert (sizes["a1"], sizes["a2"], sizes["a3"]) == (None, None, 100)

    before = current(emulator)
    for bad in (-1, "12 MB", True):
        emulator.store.update_backup(PROJECT, "b4", {"size": bad})
        bad_run = await run_cli(["run", str(write_policy(tmp_path))], cli_env(emulator))
        assert bad_run.code == 1, bad_run.stderr
        [failed] = bad_run.events("listing_failed")
        assert failed["error_code"] == "invalid_record" and "'size'" in failed["error"]
    assert current(emulator) == before
    assert emulator.stats.count("delete_backup") == 0


async def test_import_backups_are_selectable_and_shown(
    emulator: RunningEmulator, tmp_path: Path, now: datetime
) -> None:
    ids = add_facts_graphs(emulator, now)
    for backup_id in ids["a"][:4]:
        emulator.store.update_backup(PROJECT, backup_id, {"backup_method": "import"})
    path = write_policy(tmp_path, extra_select="backup_methods: [import]")
    result = await run_cli(["plan", str(path), "--format", "json"], cli_env(emulator))
    assert result.code == 0, result.stderr
    decisions = json.loads(result.stdout)["policies"][0]["decisions"]
    assert {d["backup_id"]: d["action"] for d in decisions} == {
        "a0": "keep",
        "a1": "delete",
        "a2": "delete",
        "a3": "delete",
    }
    assert {d["backup_method"] for d in decisions} == {"import"}
    table = await run_cli(["plan", str(path)], cli_env(emulator))
    assert table.stdout.count(" import ") == 4


async def test_plan_from_file_cannot_decide_orphans(tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    export.write_text(
        json.dumps(
            [
                {
                    "id": "b1",
                    "graph_id": "facts-a",
                    "graph_name": "facts-a",
                    "status": "success",
                    "start_timestamp": 1,
                    "size": 3,
                }
            ]
        )
    )
    for orphans in ("exclude", "only"):
        result = await run_cli(
            ["plan", str(write_policy(tmp_path, orphans)), "--from-file", str(export)], cli_env_offline()
        )
        assert result.code == 2, result.stderr
        assert f"select.orphans: {orphans}" in result.stderr
    include = await run_cli(
        ["plan", str(write_policy(tmp_path)), "--from-file", str(export), "--format", "json"], cli_env_offline()
    )
    assert include.code == 0, include.stderr
    [decision] = json.loads(include.stdout)["policies"][0]["decisions"]
    assert (decision["orphan"], decision["size_mb"]) == (None, 3)


def cli_env_offline() -> dict[str, str]:
    from subprocess_env import clean_env

    return clean_env()
