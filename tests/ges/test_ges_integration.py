"""The client against a real HTTP server on 127.0.0.1: real connection resets, a real hang past the timeout, AK/SK
signatures checked by the server over what actually went on the wire, and TLS with an extra CA bundle.

Retry waits are skipped (instant sleep). No test here depends on real time: the request timeout is a safety net
(30 s) that an answer on 127.0.0.1 never meets even on a loaded machine; a shorter one turned a slow answer into a
retry and the counted attempts into a race. The request timeout is the client's own (aiohttp's timer on the loop), but
the hang test moves the loop's clock past it once the server holds the request: the timeout fires then, never before
the request arrived, however loaded the machine.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from ges_retention.ges import signing
from ges_retention.ges.auth import AkSkAuth, TokenAuth
from ges_retention.ges.client import ClientConfig, GesClient, open_session
from ges_retention.ges.errors import RequestTimeout, TlsError, TransportError, Unauthorized

PROJECT = "p1"
SAFETY_TIMEOUT_S = 30.0
AK = "AKLOCAL"
SK = "sk-SECRET-local"


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


@dataclass
class Server:
    url: str
    hits: dict[str, int] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    on_hang: Callable[[], None] = lambda: None  # called once a "hang" request is in the server's hands


class LoopClock:
    """The running loop's clock with a settable lead: `jump` makes every timer due up to `now + seconds` fire at the
    loop's next turn (aiohttp's request timeout is such a timer). Real time still runs under it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> None:
        self._real = loop.time
        self.lead_s = 0.0
        monkeypatch.setattr(loop, "time", self.time)

    def time(self) -> float:
        return self._real() + self.lead_s

    def jump(self, seconds: float) -> None:
        self.lead_s += seconds


def _abort_with_reset(request: web.Request) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0), as a crashing gateway does."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _verify_signature(request: web.Request) -> bool:
    parsed = signing.parse_authorization(request.headers.get("Authorization", ""))
    if parsed is None or parsed[0] != AK:
        return False
    _, signed_names, received = parsed
    headers = {name: request.headers.get(name, "") for name in signed_names}
    if request.headers.get("X-Project-Id") != PROJECT or "host" not in signed_names:
        return False
    signed = signing.SignedRequest.of(request.method, request.raw_path.split("?")[0], request.query.items(), headers)
    canonical, names = signing.canonical_request(signed)
    return names == signed_names and signing.signature(SK, request.headers["X-Sdk-Date"], canonical) == received


def _app(server: Server) -> web.Application:
    def count(name: str) -> int:
        server.hits[name] = server.hits.get(name, 0) + 1
        return server.hits[name]

    async def delete(request: web.Request) -> web.StreamResponse:
        backup_id = request.match_info["backup_id"]
        if backup_id.startswith("reset"):
            # Reset the first two attempts, answer the third.
            if count(backup_id) <= 2:
                _abort_with_reset(request)
                await server.release.wait()
            return web.json_response({})
        if backup_id == "always-reset":
            count(backup_id)
            _abort_with_reset(request)
            await server.release.wait()
        if backup_id == "hang":
            count(backup_id)
            server.on_hang()
            await server.release.wait()  # never answers within the client's timeout
        if backup_id == "signed":
            count(backup_id)
            if not _verify_signature(request):
                return web.json_response({"error_code": "APIGW.0301", "error_msg": "bad signature"}, status=401)
        return web.json_response({})

    app = web.Application()
    app.router.add_delete("/v2/{project_id}/graphs/{graph_id}/backups/{backup_id}", delete)
    return app


async def _serve(server: Server, ssl_context: object = None) -> AsyncIterator[Server]:
    runner = web.AppRunner(_app(server), shutdown_timeout=0.5, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)  # type: ignore[arg-type]
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    scheme = "https" if ssl_context is not None else "http"
    server.url = f"{scheme}://127.0.0.1:{port}"
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async for s in _serve(Server("")):
        yield s


ClientFactory = Callable[..., Awaitable[GesClient]]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    sessions: list[aiohttp.ClientSession] = []

    async def make(**config: object) -> GesClient:
        settings = ClientConfig(**{"rate_limit_per_s": 0, "request_timeout_s": SAFETY_TIMEOUT_S, **config})  # type: ignore[arg-type]
        session = open_session(settings)
        sessions.append(session)
        return GesClient(session, settings, sleep_fn=no_sleep)

    yield make
    for session in sessions:
        await session.close()


async def test_real_connection_resets_are_retried(server: Server, make_client: ClientFactory) -> None:
    client = await make_client()
    project = client.project(server.url, PROJECT, TokenAuth("t"))
    result = await project.delete_backup("g1", "reset-1")
    assert (result.outcome, result.attempts) == ("deleted", 3)
    # The pool recovered: the next request on the same session goes through at once.
    assert (await project.delete_backup("g1", "b1")).attempts == 1


async def test_real_connection_resets_every_time(server: Server, make_client: ClientFactory) -> None:
    client = await make_client(max_attempts=3)
    with pytest.raises(TransportError) as caught:
        await client.project(server.url, PROJECT, TokenAuth("t")).delete_backup("g1", "always-reset")
    assert caught.value.retryable
    assert caught.value.attempts == 3
    assert server.hits["always-reset"] == 3
    assert isinstance(caught.value.__cause__, aiohttp.ClientError | OSError)


async def test_a_real_hang_past_the_timeout(
    server: Server, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The timeout (30 s, a safety net that real time never reaches first) fires when the server, holding the request
    # and never answering, moves the loop's clock past it: each attempt reaches the server before it times out.
    timeout_s = SAFETY_TIMEOUT_S
    clock = LoopClock(asyncio.get_running_loop(), monkeypatch)
    server.on_hang = lambda: clock.jump(timeout_s + 2)  # + 2: aiohttp rounds timeouts over 5 s up to a whole second
    client = await make_client(max_attempts=2, request_timeout_s=timeout_s)
    with pytest.raises(RequestTimeout) as caught:
        await client.project(server.url, PROJECT, TokenAuth("t")).delete_backup("g1", "hang")
    assert isinstance(caught.value.__cause__, TimeoutError)  # aiohttp's timeout, not a connection error
    assert caught.value.attempts == 2
    assert server.hits["hang"] == 2


async def test_aksk_signature_survives_the_wire(server: Server, make_client: ClientFactory) -> None:
    client = await make_client()
    good = client.project(server.url, PROJECT, AkSkAuth(AK, SK, PROJECT, security_token="sts"))
    assert (await good.delete_backup("g1", "signed")).outcome == "deleted"
    client2 = await make_client()
    bad = client2.project(server.url, PROJECT, AkSkAuth(AK, "wrong-sk", PROJECT))
    with pytest.raises(Unauthorized):
        await bad.delete_backup("g1", "signed")


def _make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it (openssl CLI)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=ges-retention test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")  # fmt: skip
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is needed to make certificates")
async def test_tls_is_verified_and_the_extra_ca_bundle_is_used(tmp_path: Path, make_client: ClientFactory) -> None:
    import ssl

    ca, cert, key = await asyncio.to_thread(_make_ca_and_server_cert, tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async for server in _serve(Server(""), ssl_context=context):
        untrusting = await make_client()
        with pytest.raises(TlsError) as caught:
            await untrusting.project(server.url, PROJECT, TokenAuth("t")).delete_backup("g1", "b1")
        assert caught.value.attempts == 1  # not retried: it cannot get better
        assert not caught.value.retryable
        trusting = await make_client(ca_bundle=str(ca))
        result = await trusting.project(server.url, PROJECT, TokenAuth("t")).delete_backup("g1", "b1")
        assert result.outcome == "deleted"
