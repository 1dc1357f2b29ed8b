"""Requests attributed to a client by the `(holder=ID)` suffix of their `User-Agent` (several replicas' tests count
each daemon's DELETEs this way)."""

from __future__ import annotations

import aiohttp
from emulator_helpers import NOW_MS, PROJECT, TOKEN_HEADERS, call, ges_url

from ges_retention.emulator.app import RunningEmulator
from ges_retention.emulator.stats import client_of


def test_the_client_id_is_the_holder_suffix_of_the_user_agent() -> None:
    assert client_of("ges-retention/0.3.0 (holder=host-a:12:ab12cd)") == "host-a:12:ab12cd"
    assert client_of("ges-retention/0.3.0") is None
    assert client_of(None) is None
    assert client_of("curl/8 (holder=)") is None
    assert client_of("x (holder=a b)") is None


async def test_stats_count_requests_and_deletions_per_client(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    for backup_id in ("b1", "b2", "b3"):
        emulator.store.add_backup(PROJECT, {"id": backup_id, "graph_id": "g1", "start_timestamp": NOW_MS})

    def as_client(client: str | None) -> dict[str, str]:
        agent = "ges-retention/test" + (f" (holder={client})" if client else "")
        return {**TOKEN_HEADERS, "User-Agent": agent}

    url = ges_url(emulator, "/graphs/g1/backups/{}")
    assert (await call(session, "DELETE", url.format("b1"), headers=as_client("a:1:aa")))[0] == 200
    assert (await call(session, "DELETE", url.format("b2"), headers=as_client("b:2:bb")))[0] == 200
    assert (await call(session, "DELETE", url.format("b1"), headers=as_client("b:2:bb")))[0] == 400  # GES.7024
    assert (await call(session, "DELETE", url.format("b3"), headers=as_client(None)))[0] == 200
    stats = emulator.stats
    assert stats.client_count("a:1:aa", "delete_backup") == 1
    assert (
        stats.client_count("b:2:bb", "delete_backup") == 2 and stats.client_count("b:2:bb", "delete_backup", 400) == 1
    )
    assert stats.client_count("nobody", "delete_backup") == 0
    async with session.get(f"{emulator.url}/_emulator/stats") as response:
        document = await response.json()
    assert document["clients"] == {
        "a:1:aa": {"requests": {"delete_backup": {"200": 1}}, "deleted_ids": ["b1"]},
        "b:2:bb": {"requests": {"delete_backup": {"200": 1, "400": 1}}, "deleted_ids": ["b2"]},
    }
    assert document["deleted_ids"] == ["b1", "b2", "b3"]
    emulator.reset()
    assert emulator.stats.to_json()["clients"] == {}
