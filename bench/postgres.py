"""A throwaway PostgreSQL server for the journal benchmark: `initdb` + `pg_ctl` on 127.0.0.1 and a free port, in a
temporary directory, as the `postgres` user when run as root (`initdb` refuses root). Like `tests/support/postgres.py`,
without the test role's password check: the benchmark measures the journal's writes, not authentication."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["postgres_server"]

SERVER_USER = "postgres"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a fresh database on a server of its own, stopped and removed at the end. Durable settings
    (fsync on, synchronous commits): the figure is what a real server costs a run."""
    for tool in ("initdb", "pg_ctl", "createdb"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"PostgreSQL's {tool} is not on PATH")
    as_user = SERVER_USER if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    port = _free_port()
    sockets = base / "sockets"
    sockets.mkdir()
    if as_user is not None:
        entry = pwd.getpwnam(as_user)
        for path in (base, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def run(*args: str) -> None:
        command = ["runuser", "-u", as_user, "--", *args] if as_user is not None else list(args)
        subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)

    data = base / "data"
    try:
        run("initdb", "-D", str(data), "-U", "postgres", "-E", "UTF8", "--auth-local=trust", "--auth-host=trust")
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets}"
        run("pg_ctl", "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60", "-o", options, "start")
        run("createdb", "-h", str(sockets), "-p", str(port), "-U", "postgres", "ges")
        yield f"postgresql://postgres@127.0.0.1:{port}/ges"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                ["runuser", "-u", as_user, "--", "pg_ctl", "-D", str(data), "stop", "-m", "fast"]
                if as_user is not None
                else ["pg_ctl", "-D", str(data), "stop", "-m", "fast"],
                capture_output=True,
                check=False,
                timeout=60,
            )
        shutil.rmtree(base, ignore_errors=True)
