"""The referee for an agency's temporary credentials: the official SDK (`huaweicloudsdkges`, `BasicCredentials` with
a security token) lists the other account's project with what the emulated IAM issued to the service's own
`AssumeRole`. If the SDK cannot, the emulator (or the service's assume_role) is wrong, not the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from emulator_helpers import OTHER_PROJECT

from ges_retention.emulator.app import DEFAULT_AK, DEFAULT_SK, EmulatorConfig, RunningEmulator, running_emulator
from ges_retention.emulator.config import Agency
from ges_retention.emulator.store import Store
from ges_retention.ges.agency import AssumeRole
from ges_retention.ges.auth import AkSkAuth

pytest.importorskip("huaweicloudsdkcore")
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkges.v2 import GesClient, ListBackups2Request


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    """On the real clock: the SDK stamps X-Sdk-Date with the machine's time."""
    config = EmulatorConfig()
    config.project_ids.append(OTHER_PROJECT)
    config.agencies.append(Agency("other-account", "ges-retention", (OTHER_PROJECT,)))
    store = Store()
    store.seed(OTHER_PROJECT, graphs=2, backups_per_graph=4, now_ms=1_795_780_800_000, seed=7)
    async with running_emulator(store, config) as running:
        yield running


def _list(url: str, ak: str, sk: str, security_token: str) -> int:
    credentials = BasicCredentials(ak, sk, OTHER_PROJECT).with_security_token(security_token)
    client = (
        GesClient.new_builder()
        .with_http_config(HttpConfig.get_default_config())
        .with_credentials(credentials)
        .with_endpoint(url)
        .build()
    )
    try:
        return int(client.list_backups2(ListBackups2Request(offset=0, limit=100)).backup_count)
    finally:
        client.get_http_client().close()


async def test_the_official_sdk_uses_the_agencys_temporary_credentials(emulator: RunningEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        role = AssumeRole(
            emulator.url, "other-account", "ges-retention", AkSkAuth(DEFAULT_AK, DEFAULT_SK, None), session=session
        )
        credentials = await role.credentials()
    ak, sk, token = credentials.ak, credentials.sk.reveal(), credentials.security_token.reveal()
    assert await asyncio.to_thread(_list, emulator.url, ak, sk, token) == 8
    # With a wrong security token the gateway refuses the temporary key.
    with pytest.raises(ClientRequestException) as caught:
        await asyncio.to_thread(_list, emulator.url, ak, sk, "not-the-token")
    assert caught.value.status_code == 401 and caught.value.error_code == "APIGW.0301"
