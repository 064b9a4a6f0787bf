"""Hostile and careless requests against a real signaler: clear answers, nothing lost."""

from __future__ import annotations

import asyncio
import os

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import StartSignaler
from tests.e2e.processes import SignalerProcess
from tests.e2e.wsclient import raw_http, raw_join


async def join_status(url: str) -> tuple[int, str]:
    try:
        connection = await connect(url)
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response.body.decode(errors="replace")
    await connection.close()
    return 101, ""


async def assert_still_relays(signaler: SignalerProcess) -> None:
    first = await connect(signaler.join_url("health", "pw"))
    second = await connect(signaler.join_url("health", "pw"))
    await first.send("ok")
    async with asyncio.timeout(5):
        assert await second.recv() == "ok"
    await first.close()
    await second.close()


async def test_join_errors_are_explained(signaler: SignalerProcess) -> None:
    status, body = await join_status(f"{signaler.ws_url}?community=c")
    assert (status, body.strip()) == (400, "missing password")
    status, _ = await join_status(signaler.join_url("c", "right"))
    assert status == 101
    async with await connect(signaler.join_url("c", "right")):
        status, body = await join_status(signaler.join_url("c", "wrong"))
    assert status == 401 and "wrong password" in body
    status, body = await join_status(signaler.join_url("c", "x" * 73))
    assert status == 400 and "72 bytes" in body
    await assert_still_relays(signaler)


async def test_unknown_community_is_refused_without_ephemeral_communities(
    signaler_factory: StartSignaler,
) -> None:
    signaler = signaler_factory("--ephemeral-communities=false", "--api-password", "a")
    status, body = await join_status(signaler.join_url("nowhere", "pw"))
    assert status == 401 and "ephemeral communities are disabled" in body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /?community=%ff%fe&password=x HTTP/1.1\r\nHost: h\r\n\r\n", b"400"),
        (b"GET /?community=a&password=b HTTP/1.1\r\nHost: h\r\n\r\n", b"426"),
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"401"),
        (b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic !!!\r\n\r\n", b"401"),
        (b"PUT /?community=a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", b"405"),
        (b"\x00\xff\x10garbage\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: nope\r\n\r\n", b"400"),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", b"431"),
    ],
)
async def test_malformed_requests_get_a_clear_status(
    signaler: SignalerProcess, request_bytes: bytes, status: bytes
) -> None:
    response = await raw_http(signaler.port, request_bytes)
    assert response.split(b" ", 2)[1] == status, response[:200]
    await assert_still_relays(signaler)


async def test_management_is_501_without_api_password(signaler_factory: StartSignaler) -> None:
    signaler = signaler_factory()
    response = await raw_http(signaler.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 501")
    assert b"management API disabled" in response


async def test_random_bytes_after_handshake_close_the_connection(
    signaler: SignalerProcess,
) -> None:
    for _ in range(5):
        reader, writer, _ = await raw_join(signaler.port, "noise", "pw")
        writer.write(os.urandom(4096))
        async with asyncio.timeout(5):
            await reader.read()  # the signaler closes the connection
        writer.close()
    await assert_still_relays(signaler)


async def test_disconnecting_mid_handshake_leaves_no_client_behind(
    signaler: SignalerProcess,
) -> None:
    from weron.manager import Manager

    for _ in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", signaler.port)
        writer.write(b"GET /?community=half&password=pw HTTP/1.1\r\nUpgrade: websocket\r\n")
        writer.close()
    manager = Manager(signaler.http_url, "admin", "api-secret")
    await asyncio.sleep(0.5)
    assert await manager.list() == []
