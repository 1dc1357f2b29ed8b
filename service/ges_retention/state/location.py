"""Where the journal lives: `GES_RETENTION_STATE` resolved to a SQLite file, a PostgreSQL URL or `:memory:`.

Pure: reads only the mapping it is given (the environment by default) and `/proc/self/mountinfo` when asked whether a
path is on a local filesystem. The resolved location has a `display` form with the password removed; only that form
reaches messages and logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from ges_retention.state.errors import StateLocationInvalid

__all__ = ["MEMORY", "StateLocation", "default_state_path", "network_filesystem", "resolve_state_location"]

MEMORY = ":memory:"
_PG_SCHEMES = ("postgresql", "postgres")
# Filesystems on which SQLite's locking (and our flock) is unreliable or not shared between hosts.
_NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "gpfs"})


@dataclass(frozen=True, slots=True)
class StateLocation:
    kind: Literal["sqlite", "postgresql", "memory"]
    path: Path | None = None
    url: str | None = field(default=None, repr=False)
    display: str = ""
    """The location as it may be shown: the URL without its password."""

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        return "postgresql" if self.kind == "postgresql" else "sqlite"


def default_state_path(environ: Mapping[str, str]) -> Path:
    """`$XDG_STATE_HOME/ges-retention/state.db`; `~/.local/state/...` when unset or not absolute (XDG spec)."""
    xdg = environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(environ.get("HOME") or Path.home()) / ".local" / "state"
    return base / "ges-retention" / "state.db"


def resolve_state_location(value: str | None, environ: Mapping[str, str] | None = None) -> StateLocation:
    """The location `value` names (None or blank: the default path), or `StateLocationInvalid`."""
    env = os.environ if environ is None else environ
    raw = (value or "").strip()
    if not raw:
        path = default_state_path(env)
        return StateLocation(kind="sqlite", path=path, display=str(path))
    if raw == MEMORY:
        return StateLocation(kind="memory", display=MEMORY)
    if "://" in raw:
        return _url_location(raw)
    if "\x00" in raw:
        raise StateLocationInvalid("the state path contains a NUL character", location=repr(raw))
    path = Path(os.path.expanduser(raw))
    path = path if path.is_absolute() else Path.cwd() / path
    if raw.endswith(("/", os.sep)):
        raise StateLocationInvalid(f"the state path {raw} names a directory: name a file", location=str(path))
    return StateLocation(kind="sqlite", path=path, display=str(path))


def _url_location(raw: str) -> StateLocation:
    try:
        parts = urlsplit(raw)
        port = parts.port  # parses it: a non-numeric or out-of-range port raises here
    except ValueError as exc:
        raise StateLocationInvalid(f"the state URL is malformed: {exc}", location=_redact_blind(raw)) from None
    display = _redact(raw)
    if parts.scheme.lower() not in _PG_SCHEMES:
        raise StateLocationInvalid(
            f"unsupported state URL scheme {parts.scheme!r}: use a postgresql:// URL, a file path or :memory:",
            location=display,
        )
    if not parts.hostname and "host=" not in parts.query:
        raise StateLocationInvalid("the state URL names no host", location=display)
    if port == 0:
        raise StateLocationInvalid("the state URL's port must be 1-65535", location=display)
    return StateLocation(kind="postgresql", url=raw, display=display)


def _redact(raw: str) -> str:
    parts = urlsplit(raw)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}"
    query = "&".join(
        "password=***" if item.lower().startswith("password=") else item for item in parts.query.split("&") if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _redact_blind(raw: str) -> str:
    """A URL that does not even parse: show the scheme and host part only, never what may be a password."""
    scheme, _, rest = raw.partition("://")
    hostpart = rest.rpartition("@")[2].split("/", 1)[0]
    return f"{scheme}://***@{hostpart}" if "@" in rest else f"{scheme}://{hostpart}"


def network_filesystem(path: Path, mountinfo: str | None = None) -> str | None:
    """The filesystem type when `path` is on a network filesystem (SQLite needs a local one), else None."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None  # not Linux, or no /proc: nothing to check against
    target = str(path)
    best, best_type = "", ""
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = fields[4].replace("\\040", " ")
        fs_type = line.split(" - ", 1)[1].split()[0]
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fs_type
    base_type = best_type.split(".", 1)[0]
    return best_type if base_type in _NETWORK_FS or best_type.startswith("fuse.sshfs") else None
