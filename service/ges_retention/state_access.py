"""The journal as the commands that do not run see it: `hold`, `release`, `holds`, `why` and `history`.

They need an existing state at the current schema version (`open_store(mode="existing")`): only `run` and `daemon`
create or migrate one, so a missing, older or newer state is exit 2 naming the location they resolved. They take no
run lock. `hold` and `release` also refuse `:memory:` by name: a hold there would be forgotten when the command ends.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ges_retention.state import StateLocation, StateMissing, Store, open_store, resolve_state_location

if TYPE_CHECKING:
    from ges_retention.settings import Settings

__all__ = ["cli_placed_by", "existing_store", "state_location"]


def state_location(settings: Settings | None) -> StateLocation:
    """Where `GES_RETENTION_STATE` points (the default path when unset): from the settings (environment, `.env`,
    `/run/secrets/`) when they could be read, else from the environment."""
    value = settings.state_value() if settings is not None else os.environ.get("GES_RETENTION_STATE")
    return resolve_state_location(value)


@asynccontextmanager
async def existing_store(location: StateLocation, *, durable_for: str | None = None) -> AsyncIterator[Store]:
    """The store at `location`, opened `existing`, closed on exit. `durable_for` names a command that writes
    something that must outlive it (`hold`, `release`): `:memory:` is refused for it with that name."""
    if durable_for is not None and location.kind == "memory":
        raise StateMissing(
            f"`{durable_for}` needs a durable state: GES_RETENTION_STATE=:memory: keeps nothing between commands "
            "(point it at the state file or URL that `run` and `daemon` use)",
            location=location.display,
        )
    store = await open_store(location, mode="existing")
    assert store is not None  # `existing` raises instead of returning None
    try:
        yield store
    finally:
        await store.close()


def cli_placed_by() -> str:
    """Who placed a hold from the command line, for `holds` and `why`: `cli:USER@HOST`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry and no LOGNAME
        user = f"uid{os.getuid()}"
    return f"cli:{user}@{socket.gethostname()}"
