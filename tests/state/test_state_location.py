"""`GES_RETENTION_STATE` resolution (pure): default path, `:memory:`, URLs with their password hidden, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from ges_retention.state import StateLocationInvalid, resolve_state_location
from ges_retention.state.location import network_filesystem


def test_the_default_is_under_xdg_state_home_or_local_state() -> None:
    xdg = resolve_state_location(None, {"XDG_STATE_HOME": "/srv/state", "HOME": "/home/u"})
    assert (xdg.kind, xdg.path) == ("sqlite", Path("/srv/state/ges-retention/state.db"))
    home = resolve_state_location("", {"HOME": "/home/u"})
    assert home.path == Path("/home/u/.local/state/ges-retention/state.db")
    relative_xdg = resolve_state_location("  ", {"XDG_STATE_HOME": "relative/dir", "HOME": "/home/u"})
    assert relative_xdg.path == Path("/home/u/.local/state/ges-retention/state.db")  # the XDG spec ignores it


def test_paths_memory_and_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_state_location("rel/state.db", {}).path == tmp_path / "rel" / "state.db"
    assert resolve_state_location("~/s.db", {}).path == Path.home() / "s.db"
    memory = resolve_state_location(":memory:", {})
    assert (memory.kind, memory.path, memory.backend, memory.display) == ("memory", None, "sqlite", ":memory:")
    pg = resolve_state_location("postgresql://ges:hunter2@db.internal:5433/journal?sslmode=require", {})
    assert (pg.kind, pg.backend) == ("postgresql", "postgresql")
    assert pg.display == "postgresql://ges:***@db.internal:5433/journal?sslmode=require"
    assert "hunter2" not in repr(pg)
    short = resolve_state_location("postgres://db/journal?password=hunter2", {})
    assert short.kind == "postgresql" and "hunter2" not in short.display


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mysql://u:hunter2@db/x", "unsupported state URL scheme"),
        ("sqlite:///tmp/x.db", "unsupported state URL scheme"),
        ("postgresql://u:hunter2@db:notaport/x", "malformed"),
        ("postgresql://u:hunter2@db:99999/x", "malformed"),
        ("postgresql://u:hunter2@db:0/x", "port"),
        ("postgresql:///journal", "no host"),
        ("/var/lib/ges-retention/", "directory"),
        ("bad\x00path", "NUL"),
    ],
)
def test_bad_locations_are_refused_without_the_password(value: str, message: str) -> None:
    with pytest.raises(StateLocationInvalid, match=message) as caught:
        resolve_state_location(value, {})
    assert "hunter2" not in str(caught.value) and "hunter2" not in caught.value.location


MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 22 0:35 / /mnt/nfs rw,relatime - nfs4 server:/export rw
41 40 8:2 / /mnt/nfs/local rw,relatime - xfs /dev/sdb1 rw
42 22 0:36 / /mnt/ssh rw - fuse.sshfs host:/ rw
"""


def test_network_filesystems_are_detected_by_the_deepest_mount() -> None:
    assert network_filesystem(Path("/var/lib/state.db"), MOUNTINFO) is None
    assert network_filesystem(Path("/mnt/nfs/state.db"), MOUNTINFO) == "nfs4"
    assert network_filesystem(Path("/mnt/nfs/local/state.db"), MOUNTINFO) is None
    assert network_filesystem(Path("/mnt/nfsother/state.db"), MOUNTINFO) is None
    assert network_filesystem(Path("/mnt/ssh/x/state.db"), MOUNTINFO) == "fuse.sshfs"
