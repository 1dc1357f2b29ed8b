"""SQLite only: the file and its faults (permissions, not a database, disk full), WAL settings, `:memory:`, and two
processes on one file (the daemon lock and run locks survive nothing: a killed holder frees them)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from state_helpers import SCOPE, T0, FakeClock, item, start

from ges_retention.state import (
    DaemonLockHeld,
    Outcome,
    StateLocationInvalid,
    StateMissing,
    StatePermissionDenied,
    StateUnavailable,
    Store,
    open_store,
    resolve_state_location,
)

SERVICE = Path(__file__).resolve().parents[2] / "service"


async def _open(path: Path | str, clock: FakeClock, mode: str = "create", **kw: object) -> Store:
    store = await open_store(resolve_state_location(str(path)), mode=mode, clock=clock, **kw)  # type: ignore[arg-type]
    assert store is not None
    return store


async def test_the_file_uses_wal_with_normal_sync_and_parent_directories_are_created(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    store = await _open(path, clock)
    try:
        assert path.is_file()
        call = store.call  # type: ignore[attr-defined]
        assert (await call(lambda c: c.execute("PRAGMA journal_mode").fetchone()))[0] == "wal"
        assert (await call(lambda c: c.execute("PRAGMA synchronous").fetchone()))[0] == 1  # NORMAL
    finally:
        await store.close()


async def test_read_only_open_leaves_the_file_byte_for_byte_unchanged(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state.db"
    store = await _open(path, clock)
    await start(store, "r1")
    await store.put_hold("b1", "r", now=T0)
    await store.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    reader = await _open(path, clock, mode="read_only")
    assert len(await reader.list_holds()) == 1 and len(await reader.list_runs()) == 1
    await reader.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


async def test_memory_keeps_nothing_and_needs_no_file(tmp_path: Path, clock: FakeClock) -> None:
    os.chdir(tmp_path)
    first = await _open(":memory:", clock)
    assert first.info.in_memory and first.info.backend == "sqlite" and first.info.created
    await first.put_hold("b1", "r", now=T0)
    lock = await first.try_run_lock("nightly")
    assert lock is not None and await first.try_run_lock("nightly") is None  # its own runs still exclude each other
    assert await first.run_lock_holder("nightly") == lock.holder
    daemon = await first.acquire_daemon_lock()
    await daemon.release()
    await lock.release()
    second = await _open(":memory:", clock)
    assert await second.list_holds() == []  # a fresh state every time
    await first.close()
    await second.close()
    assert os.listdir(tmp_path) == []
    with pytest.raises(StateMissing, match="memory"):
        await open_store(resolve_state_location(":memory:"), mode="existing")
    assert await open_store(resolve_state_location(":memory:"), mode="read_only") is None


async def test_a_directory_or_a_file_in_the_way_is_an_invalid_location(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StateLocationInvalid, match="directory"):
        await _open(tmp_path / "dir.db", clock)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateLocationInvalid, match="not a usable file path"):
        await _open(tmp_path / "file" / "state.db", clock)


async def test_a_file_that_is_not_a_state_is_refused_untouched(tmp_path: Path, clock: FakeClock) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    for path in (junk, other):
        before = path.read_bytes()
        for mode in ("create", "existing", "read_only"):
            with pytest.raises(StateLocationInvalid, match="not a ges-retention state"):
                await _open(path, clock, mode=mode)
        assert path.read_bytes() == before


def _as_unprivileged(fn_source: str, path: Path) -> str:
    """Run a snippet opening `path` as an unprivileged user (root ignores file modes): its printed result."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(SERVICE)!r})
        from ges_retention.state import open_store, resolve_state_location, StateError
        async def main():
            try:
                store = await open_store(resolve_state_location({str(path)!r}), mode={fn_source!r})
                print("opened", store.info.created)
                await store.put_hold("b1", "r")
                await store.close()
                print("wrote")
            except StateError as exc:
                print(type(exc).__name__, exc)
        asyncio.run(main())
        """
    )
    if os.geteuid() != 0:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        return result.stdout + result.stderr
    # As root: fork, drop to `nobody`, run the snippet's logic in the child with the modules already loaded.
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_fd)
        code = 0
        try:
            nobody = pwd.getpwnam("nobody")
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            # The interpreter may live where `nobody` cannot read it (/root): run the snippet in this process.
            namespace: dict[str, object] = {}
            import contextlib
            import io

            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(compile(script, "<unprivileged>", "exec"), namespace)
            os.write(write_fd, buffer.getvalue().encode())
        except BaseException as exc:  # report anything
            os.write(write_fd, f"child failed: {exc!r}".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


async def test_an_unwritable_state_path_is_a_permission_error(clock: FakeClock) -> None:
    base = Path(tempfile.mkdtemp(prefix="ges-state-perm-"))  # pytest's temp dirs are 0700: nobody could not enter
    locked_dir = base / "locked"
    locked_dir.mkdir()
    state = locked_dir / "sub" / "state.db"
    os.chmod(base, 0o755)
    os.chmod(locked_dir, 0o555)  # nobody may create in it
    try:
        out = await asyncio.to_thread(_as_unprivileged, "create", state)
        assert out.startswith("StatePermissionDenied"), out
        assert str(state) in out

        os.chmod(locked_dir, 0o755)
        store = await _open(state, clock)  # created by us
        await store.close()
        os.chmod(state.parent, 0o755)
        os.chmod(state, 0o644)  # readable, not writable by nobody
        out = await asyncio.to_thread(_as_unprivileged, "existing", state)
        assert out.startswith("StatePermissionDenied"), out
    finally:
        os.chmod(locked_dir, 0o755)
        shutil.rmtree(base, ignore_errors=True)


async def test_a_parent_directory_that_cannot_be_entered_is_a_permission_error(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    if os.geteuid() != 0:
        closed.chmod(0o000)  # as root the unprivileged child cannot enter a 0700 root directory anyway
    try:
        out = await asyncio.to_thread(_as_unprivileged, "create", closed / "state.db")
    finally:
        closed.chmod(0o700)
    assert out.startswith("StatePermissionDenied"), out


async def test_disk_full_mid_batch_is_unavailable_and_the_batch_is_all_or_nothing(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await _open(tmp_path / "state.db", clock)
    await start(store, "r1")
    first = await store.write_intents("r1", SCOPE, [item("ok1")], now=T0)
    assert len(first.committed) == 1
    # Cap the file at its current size: the next write that needs a page fails as a full disk would (SQLITE_FULL).
    call = store.call  # type: ignore[attr-defined]
    pages = (await call(lambda c: c.execute("PRAGMA page_count").fetchone()))[0]
    await call(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
    many = [item(f"big{i}", "x" * 2000) for i in range(64)]
    with pytest.raises(StateUnavailable, match="full"):
        await store.write_intents("r1", SCOPE, many, now=T0)
    assert [r.backup.backup_id for r in await store.active_deletions(SCOPE)] == ["ok1"]
    await call(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
    again = await store.write_intents("r1", SCOPE, many[:2], now=T0)  # the store is usable once space is back
    assert len(again.committed) == 2
    await store.close()


HOLDER_SCRIPT = """
import asyncio, sys
sys.path.insert(0, {service!r})
from ges_retention.state import open_store, resolve_state_location
async def main():
    store = await open_store(resolve_state_location({path!r}))
    await store.acquire_daemon_lock()
    await store.acquire_run_lock("nightly")
    print("locked", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
asyncio.run(main())
"""


async def test_a_second_process_is_refused_the_daemon_lock_and_a_killed_holder_frees_everything(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "state.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER_SCRIPT.format(service=str(SERVICE), path=str(path)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert line.strip() == b"locked"
        store = await _open(path, clock, holder="second:2")
        with pytest.raises(DaemonLockHeld, match=f":{proc.pid}\\)") as caught:
            await store.acquire_daemon_lock()
        assert caught.value.holder is not None and caught.value.holder.endswith(f":{proc.pid}")
        assert await store.try_run_lock("nightly") is None
        holder = await store.run_lock_holder("nightly")
        assert holder is not None and holder.endswith(f":{proc.pid}")

        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), timeout=30)
        daemon = await store.acquire_daemon_lock()  # the kernel dropped the dead holder's flocks
        assert await store.run_lock_holder("nightly") is None  # its row is stale and names nobody
        lock = await store.try_run_lock("nightly")
        assert lock is not None and await store.run_lock_holder("nightly") == "second:2"
        await lock.release()
        await daemon.release()
        await store.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_failed_commit_is_rolled_back_and_the_store_stays_usable(tmp_path: Path, clock: FakeClock) -> None:
    store = await _open(tmp_path / "state.db", clock)
    await start(store, "r1")
    call = store.call  # type: ignore[attr-defined]

    def deny_commit_once(conn: sqlite3.Connection) -> None:
        denied: list[str] = []

        def authorizer(action: int, arg1: str | None, *_: object) -> int:
            if action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT" and not denied:
                denied.append(arg1)
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK

        conn.set_authorizer(authorizer)

    await call(deny_commit_once)
    with pytest.raises(StatePermissionDenied):  # SQLITE_AUTH: what a commit refused looks like
        await store.write_intents("r1", SCOPE, [item("b1")], now=T0)
    assert await store.active_deletions(SCOPE) == []  # nothing of the failed transaction remains
    batch = await store.write_intents("r1", SCOPE, [item("b2")], now=T0)  # and the next one works
    assert [t.backup_id for t in batch.committed] == ["b2"]
    await store.put_hold("b3", "r", now=T0)  # the multi-statement path too
    assert await store.get_hold("b3") is not None
    await call(lambda conn: conn.set_authorizer(None))
    await store.close()


async def _intent_batch_steps(store: Store, run_id: str, prefix: str) -> int:
    """SQLite virtual-machine steps of one intent batch of 64 (a count, not a duration)."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    call = store.call  # type: ignore[attr-defined]
    await call(lambda c: c.set_progress_handler(count, 1))
    try:
        await store.write_intents(run_id, SCOPE, [item(f"{prefix}-{i:03d}") for i in range(64)], now=T0)
    finally:
        await call(lambda c: c.set_progress_handler(None, 1))
    return steps[0]


async def test_an_intent_batch_does_not_grow_with_the_journal_of_its_policy(tmp_path: Path, clock: FakeClock) -> None:
    # The read-back of a batch's row ids searched every row of the policy's scope (an OR of states defeated the
    # (scope, state) index): a run's journal cost grew with the square of its deletions and with 400 days of history.
    store = await _open(tmp_path / "state.db", clock)
    try:
        await start(store, "r1")
        fresh = await _intent_batch_steps(store, "r1", "first")
        for chunk in range(40):  # 2,560 finished deletions of the same policy
            batch = await store.write_intents("r1", SCOPE, [item(f"old-{chunk}-{i:02d}") for i in range(64)], now=T0)
            await store.record_outcomes([Outcome(t.deletion_id, "deleted", attempts=1) for t in batch.committed])
        with_history = await _intent_batch_steps(store, "r1", "last")
        assert with_history < 2 * fresh, (fresh, with_history)
    finally:
        await store.close()
