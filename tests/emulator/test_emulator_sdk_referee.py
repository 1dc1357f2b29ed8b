"""The referee: Huawei Cloud's official Python SDK (`huaweicloudsdkges` v2, AK/SK `BasicCredentials`) talks to the
emulator over plain http. If the SDK cannot, the emulator is wrong, not the SDK.

The SDK is synchronous (requests): its calls run in a thread while the emulator serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from emulator_helpers import PROJECT

from ges_retention.emulator.app import DEFAULT_AK, DEFAULT_SK, EmulatorConfig, RunningEmulator, running_emulator
from ges_retention.emulator.store import Store

sdk_core = pytest.importorskip("huaweicloudsdkcore")
from huaweicloudsdkcore.auth.credentials import BasicCredentials  # noqa: E402
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException  # noqa: E402
from huaweicloudsdkcore.http.http_config import HttpConfig  # noqa: E402
from huaweicloudsdkges.v2 import (  # noqa: E402
    DeleteBackup2Request,
    DeleteGraph2Request,
    GesClient,
    ListBackups2Request,
    ListGraphBackups2Request,
    ListGraphs2Request,
    ListQuotas2Request,
)


class _Clients:
    """Builds SDK clients and closes their sessions (an unclosed one would warn)."""

    def __init__(self) -> None:
        self._built: list[Any] = []

    def __call__(self, url: str, *, sk: str = DEFAULT_SK) -> Any:
        # An "http://" endpoint is used as is (the SDK adds https:// only to bare hosts); the SDK signs the Host it
        # derives from that endpoint, 127.0.0.1:PORT.
        client = (
            GesClient.new_builder()
            .with_http_config(HttpConfig.get_default_config())
            .with_credentials(BasicCredentials(DEFAULT_AK, sk, PROJECT))
            .with_endpoint(url)
            .build()
        )
        self._built.append(client)
        return client

    def close(self) -> None:
        for client in self._built:
            client.get_http_client().close()


@pytest.fixture
async def emulator(store: Store, config: EmulatorConfig) -> AsyncIterator[RunningEmulator]:
    """On the real clock: the SDK stamps X-Sdk-Date with the machine's time."""
    async with running_emulator(store, config) as running:
        yield running


@pytest.fixture
def sdk() -> Iterator[_Clients]:
    clients = _Clients()
    yield clients
    clients.close()


async def test_the_official_sdk_lists_and_deletes(emulator: RunningEmulator, sdk: _Clients) -> None:
    client = sdk(emulator.url)
    backups = await asyncio.to_thread(client.list_backups2, ListBackups2Request(offset=0, limit=100))
    assert backups.backup_count == 36
    assert [b.id for b in backups.backup_list] == [b["id"] for b in emulator.store.backups(PROJECT)]
    first = backups.backup_list[0]
    assert isinstance(first.start_timestamp, int) and isinstance(first.encrypted, bool)
    assert first.graph_status == "200"

    graphs = await asyncio.to_thread(client.list_graphs2, ListGraphs2Request(offset=0, limit=10))
    assert graphs.graph_count == 3
    assert {g.name for g in graphs.graphs} == {g["name"] for g in emulator.store.graphs(PROJECT)}

    victim = next(b for b in backups.backup_list if b.status == "success")
    page = await asyncio.to_thread(
        client.list_graph_backups2, ListGraphBackups2Request(graph_id=victim.graph_id, offset=2, limit=3)
    )
    assert page.backup_count == 12
    assert len(page.backup_list) == 3

    request = DeleteBackup2Request(graph_id=victim.graph_id, backup_id=victim.id)
    deleted = await asyncio.to_thread(client.delete_backup2, request)
    assert deleted.status_code == 200
    assert emulator.store.backup(PROJECT, victim.id) is None
    assert emulator.stats.deleted_ids == [victim.id]

    with pytest.raises(ClientRequestException) as again:
        await asyncio.to_thread(client.delete_backup2, request)
    assert again.value.status_code == 400
    assert again.value.error_code == "GES.7024"
    assert again.value.error_msg == "The graph backup does not exist or has been deleted."
    assert again.value.request_id  # from the X-Request-Id header


async def test_the_official_sdk_signing_with_a_wrong_sk_is_refused(emulator: RunningEmulator, sdk: _Clients) -> None:
    client = sdk(emulator.url, sk="not-the-secret-key")
    with pytest.raises(ClientRequestException) as refused:
        await asyncio.to_thread(client.list_backups2, ListBackups2Request())
    assert refused.value.status_code == 401
    assert refused.value.error_code == "APIGW.0301"
    assert emulator.stats.count("list_backups", 401) == 1


async def test_the_official_sdk_reads_the_quotas_and_deletes_a_graph_keeping_backups(
    emulator: RunningEmulator, sdk: _Clients
) -> None:
    client = sdk(emulator.url)
    emulator.config.backup_quota = 40
    quotas = await asyncio.to_thread(client.list_quotas2, ListQuotas2Request())
    by_type = {r.type: r.available for r in quotas.quotas.resources}
    assert by_type["backup"] == 40 - 36
    assert set(by_type) == {"graph", "backup", "metadata"}

    graph = emulator.store.graphs(PROJECT)[0]["id"]
    before = [b for b in emulator.store.backups(PROJECT) if b["graph_id"] == graph]
    answer = await asyncio.to_thread(client.delete_graph2, DeleteGraph2Request(graph_id=graph, keep_backup=True))
    assert answer.job_id
    kept = [b for b in emulator.store.backups(PROJECT) if b["graph_id"] == graph]
    assert 0 < len(kept) <= 3 < len(before)
    graphs = await asyncio.to_thread(client.list_graphs2, ListGraphs2Request(offset=0, limit=10))
    assert graphs.graph_count == 2 and graph not in {g.id for g in graphs.graphs}

    with pytest.raises(ClientRequestException) as gone:
        await asyncio.to_thread(client.delete_graph2, DeleteGraph2Request(graph_id=graph))
    assert (gone.value.status_code, gone.value.error_code) == (400, "GES.7000")
