"""Security: the daemon's run trigger `POST /v1/runs` (a real `ges-retention daemon` subprocess).

With `GES_RETENTION_HTTP_TOKEN` set, a missing or wrong bearer is 401 and starts nothing, the right one is 202 and
starts the run it names; bound beyond loopback (0.0.0.0, reached here through 127.0.0.1) without a token, the trigger
is refused with 403 whatever is sent; on loopback without a token it is open. Every case ends with SIGTERM and exit 0,
and every line the daemon wrote is scanned for the secrets (the HTTP token, the wrong one, the GES token).
"""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest
from reliability_helpers import (
    HTTP_TOKEN,
    TOKEN,
    WRONG_HTTP_TOKEN,
    DaemonProcess,
    base_env,
    record,
    write_file,
)

from ges_retention.emulator.app import running_emulator
from ges_retention.emulator.config import EmulatorConfig
from ges_retention.emulator.store import Store

PROJECT = "0b1c2d3e4f5a"
POLICY = f"""\
version: 1
policies:
  - name: on-demand
    project_id: {PROJECT}
    keep: {{last: 2}}
    safety: {{max_deletes: 1000, change_budget: unlimited}}
"""
WRONG_AUTHORIZATIONS = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": f"Bearer {WRONG_HTTP_TOKEN}"},
    {"Authorization": f"Bearer {HTTP_TOKEN}x"},
    {"Authorization": f"Bearer {HTTP_TOKEN[:-1]}"},
    {"Authorization": HTTP_TOKEN},
    {"Authorization": f"Basic {HTTP_TOKEN}"},
    {"Authorization": f"Bearer  {HTTP_TOKEN}"},
    {"X-Auth-Token": HTTP_TOKEN},
]


@pytest.mark.parametrize(
    ("host", "with_token"),
    [
        pytest.param("127.0.0.1", True, id="loopback-with-token"),
        pytest.param("0.0.0.0", True, id="all-interfaces-with-token"),
        pytest.param("0.0.0.0", False, id="all-interfaces-without-token"),
        pytest.param("127.0.0.1", False, id="loopback-without-token"),
    ],
)
async def test_post_runs_needs_the_token_and_is_refused_beyond_loopback_without_one(
    host: str, with_token: bool
) -> None:
    write_file("policy.yaml", POLICY)
    store = Store()
    store.seed(PROJECT, graphs=2, backups_per_graph=10, now_ms=int(datetime.now(UTC).timestamp() * 1000), seed=2)
    config = EmulatorConfig(project_ids=[PROJECT], access_keys=[], tokens={TOKEN: PROJECT})
    async with running_emulator(store=store, config=config) as emulator:
        env = base_env(
            GES_RETENTION_ENDPOINT=emulator.url,
            GES_RETENTION_TOKEN=TOKEN,
            GES_RETENTION_RATE_LIMIT="0",
            GES_RETENTION_HTTP=f"{host}:0",
            GES_RETENTION_SHUTDOWN_GRACE_S="5",
        )
        if with_token:
            env["GES_RETENTION_HTTP_TOKEN"] = HTTP_TOKEN
        daemon = await DaemonProcess.start("policy.yaml", env)
        try:
            listening = await daemon.wait_event("http_listening")
            url = f"http://127.0.0.1:{int(listening['url'].rsplit(':', 1)[1])}"
            assert listening["url"].startswith(f"http://{host}:")
            await daemon.wait_event("daemon_started")  # loading the file runs nothing (no schedule, no run_on_change)
            statuses: list[int] = []
            async with aiohttp.ClientSession() as session:

                async def post(headers: dict[str, str], query: str = "") -> tuple[int, dict[str, str]]:
                    async with session.post(f"{url}/v1/runs{query}", headers=headers) as response:
                        statuses.append(response.status)
                        return response.status, await response.json()

                async with session.get(f"{url}/healthz") as response:
                    assert response.status == 200
                if with_token:
                    for headers in WRONG_AUTHORIZATIONS:
                        status, _ = await post(headers)
                        assert status == 401, headers
                    status, _ = await post({"Authorization": f"Bearer {HTTP_TOKEN}"}, "?policy=nope")
                    assert status == 404
                    status, body = await post({"Authorization": f"Bearer {HTTP_TOKEN}"}, "?policy=on-demand")
                    assert status == 202
                elif host != "127.0.0.1":
                    for headers in [{}, {"Authorization": f"Bearer {WRONG_HTTP_TOKEN}"}]:
                        status, body = await post(headers)
                        assert status == 403 and "beyond loopback" in body["error"]
                else:
                    status, body = await post({})
                    assert status == 202
            if status == 202:
                started = await daemon.wait_event("run_started", trigger="http")
                assert started["run_id"] == body["run_id"]
                await daemon.wait_event("run_finished")
            expected_http_runs = 1 if status == 202 else 0
            assert len(daemon.named("run_started", trigger="http")) == expected_http_runs
        finally:
            code = await daemon.stop()
    assert code == 0
    assert daemon.named("daemon_stopped")
    record("security: POST /v1/runs requests refused (401/403/404)", sum(1 for s in statuses if s in (401, 403, 404)))
    record("security: POST /v1/runs requests accepted (202)", statuses.count(202))
