"""A throwaway PostgreSQL server for tests: `initdb` + `pg_ctl` on 127.0.0.1, a free port, a temp directory.

Used by the session fixture `pg_server` (`tests/state/conftest.py`); any test directory can use it the same way
(`from support.postgres import PgServer`). `initdb` refuses to run as root, so as root the server runs as the
`postgres` user (`runuser`), in a directory that user owns, with its own Unix socket directory. The superuser
connects over that socket (trust); the test role `ges` logs in over TCP with a SCRAM password, so a wrong password is
a real authentication failure.

A server that cannot start is an error, never a skip: the journal's contract suite must run on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

ROLE = "ges"
PASSWORD = "ges-test-secret"
DATABASE = "ges"
SERVER_USER = "postgres"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_coroutine_in_thread(factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion on a loop of its own, even when called from inside a running loop (a session
    fixture first requested by an async fixture)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(factory())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="pg-server-setup")
    thread.start()
    thread.join(timeout=60)
    if errors:
        raise errors[0]


@dataclass
class PgServer:
    base: Path
    port: int
    as_user: str | None

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def sockets(self) -> Path:
        return self.base / "sockets"

    def url(self, *, password: str = PASSWORD, database: str = DATABASE) -> str:
        return f"postgresql://{ROLE}:{password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self.as_user is not None:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=60)

    @classmethod
    def start(cls) -> PgServer:
        for tool in ("initdb", "pg_ctl"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"PostgreSQL's {tool} is not on PATH: the journal tests need a real server")
        as_user = SERVER_USER if os.geteuid() == 0 else None
        base = Path(tempfile.mkdtemp(prefix="ges-pg-"))
        server = cls(base=base, port=free_port(), as_user=as_user)
        server.sockets.mkdir()
        if as_user is not None:
            entry = pwd.getpwnam(as_user)
            for path in (base, server.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        pwfile = base / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if as_user is not None:
            os.chown(pwfile, pwd.getpwnam(as_user).pw_uid, -1)
        try:
            server._run(
                "initdb", "-D", str(server.data), "-U", "postgres", "-E", "UTF8", "--no-sync",
                "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
            )  # fmt: skip
            server.resume()
            _run_coroutine_in_thread(server._create_role)
        except Exception as exc:
            log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
            detail = exc.stderr if isinstance(exc, subprocess.CalledProcessError) else str(exc)
            server.stop()
            raise RuntimeError(f"could not start the test PostgreSQL server: {detail}\n{log[-2000:]}") from exc
        return server

    async def _create_role(self) -> None:
        conn = await asyncpg.connect(host=str(self.sockets), port=self.port, user="postgres", database="postgres")
        try:
            await conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
            await conn.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        finally:
            await conn.close()

    async def reset(self) -> None:
        """An empty database for the next test: drop and recreate the public schema (fast; no CREATE DATABASE)."""
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()

    def halt(self) -> None:
        """Stop the server, keeping its data (`resume` starts it again on the same port): an outage."""
        self._run("pg_ctl", "-D", str(self.data), "stop", "-m", "immediate", "-w")

    def resume(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.sockets} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60 "
            "-c shared_buffers=16MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-w", "-t", "30",
                  "-o", options, "start")  # fmt: skip

    def processes(self) -> list[int]:
        """The postmaster's pid and its children's (backends, checkpointer, ...), read from /proc."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        pids = [postmaster]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:  # the process ended meanwhile
                    continue
                if int(fields[1]) == postmaster:
                    pids.append(int(entry.name))
        return pids

    def freeze(self) -> None:
        """SIGSTOP the whole server: connections stay open and queries never answer (a hung database host)."""
        for pid in self.processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.processes():
            os.kill(pid, signal.SIGCONT)

    def restart(self) -> None:
        """Stop the server (fast: sessions are cut) and start it again with the same options and data."""
        log = str(self.base / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "30", "-m", "fast", "restart")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "stop", "-m", "immediate", check=False)
        shutil.rmtree(self.base, ignore_errors=True)
