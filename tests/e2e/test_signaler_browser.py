"""The signaler's side of the browser peer, against a real signaler process: the page under
/web/, origins checked on real handshakes, binary frames for browsers and text for Go peers."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import Cluster, StartSignaler
from tests.e2e.processes import SignalerProcess, run_weron
from tests.e2e.wsclient import OP_BINARY, OP_TEXT, client_frame, raw_http, raw_join, read_frame
from weron.signaling.client import SignalingClient, SignalingError

pytestmark = pytest.mark.e2e

SEALED_LIKE = b"\xff\xfe\x00\xc3(" + bytes(range(256))  # what a sealed message looks like


async def join_status(url: str, origin: str | None) -> int:
    try:
        connection = await connect(url, origin=origin)  # type: ignore[arg-type]
    except InvalidStatus as exc:
        return exc.response.status_code
    await connection.close()
    return 101


async def test_serves_the_page_and_keeps_the_management_list(signaler: SignalerProcess) -> None:
    async with httpx.AsyncClient(base_url=signaler.http_url, timeout=10) as http:
        page = await http.get("/web/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert b"<html" in page.content
        assert (
            await http.get("/web/", headers={"If-None-Match": page.headers["etag"]})
        ).status_code == 304
        assert (await http.get("/web/%2e%2e/%2e%2e/pyproject.toml")).status_code == 404
        redirect = await http.get("/web?community=c")
        assert (redirect.status_code, redirect.headers["location"]) == (301, "/web/?community=c")
        listing = await http.get("/", auth=("admin", "api-secret"))
        assert (listing.status_code, listing.json()) == (200, [])
    # A page opened with its form filled in from the query is not a join.
    response = await raw_http(
        signaler.port, b"GET /web/?community=c&password=p HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    for traversal in (b"/web/../pyproject.toml", b"/web/../../etc/passwd", b"/web/..%2f..%2fetc"):
        response = await raw_http(
            signaler.port, b"GET " + traversal + b" HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        assert response.startswith(b"HTTP/1.1 404"), response[:200]
    head = await raw_http(signaler.port, b"HEAD /web/ HTTP/1.1\r\nHost: h\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n"), head[-200:]


async def test_the_page_can_be_turned_off(signaler_factory: StartSignaler) -> None:
    for signaler in (
        signaler_factory("--web=false", "--api-password", "a"),
        signaler_factory("--api-password", "a", env={"WERON_WEB": "false"}),
    ):
        async with httpx.AsyncClient(base_url=signaler.http_url, timeout=10) as http:
            assert (await http.get("/web/")).status_code == 401  # the management API's answer


async def test_origins_on_real_handshakes(signaler_factory: StartSignaler) -> None:
    signaler = signaler_factory("--allowed-origins", "https://chat.example,http://b.example:8080")
    own = f"http://127.0.0.1:{signaler.port}"
    url = signaler.join_url("c", "pw")
    assert await join_status(url, None) == 101  # CLI peers send no Origin
    assert await join_status(url, own) == 101
    assert await join_status(url, "https://chat.example") == 101
    assert await join_status(url, "http://b.example:8080") == 101
    assert await join_status(url, "https://evil.example") == 403
    assert await join_status(url, f"http://127.0.0.1:{signaler.port + 1}") == 403
    assert await join_status(url, "null") == 403
    rejected = [
        r
        for r in signaler.log_records()
        if r.get("message") == "Rejected client: origin not allowed"
    ]
    assert len(rejected) == 3
    assert "evil.example" in str(rejected[0].get("origin"))
    assert "pw" not in str(rejected)


async def test_allowed_origins_from_the_environment_and_bad_ones(
    signaler_factory: StartSignaler,
) -> None:
    signaler = signaler_factory(env={"WERON_ALLOWED_ORIGINS": "https://chat.example"})
    assert await join_status(signaler.join_url("c", "pw"), "https://chat.example") == 101
    result = run_weron("signaler", "--laddr", "127.0.0.1:0", "--allowed-origins", "chat.example")
    assert result.returncode == 1
    assert "is not scheme://host[:port]" in result.stderr
    assert "Traceback" not in result.stderr


async def test_browsers_get_binary_frames_and_go_peers_text(signaler: SignalerProcess) -> None:
    """Raw frames: what a Go peer sends and expects, what a browser must get."""
    own = f"http://127.0.0.1:{signaler.port}"
    go_reader, go_writer, go_head = await raw_join(signaler.port, "mixed", "pw")
    browser_reader, browser_writer, browser_head = await raw_join(
        signaler.port, "mixed", "pw", origin=own
    )
    assert go_head.startswith(b"HTTP/1.1 101") and browser_head.startswith(b"HTTP/1.1 101")
    go_writer.write(client_frame(OP_TEXT, SEALED_LIKE))
    async with asyncio.timeout(10):
        assert await read_frame(browser_reader) == (OP_BINARY, SEALED_LIKE)
    browser_writer.write(client_frame(OP_BINARY, SEALED_LIKE[::-1]))
    async with asyncio.timeout(10):
        assert await read_frame(go_reader) == (OP_TEXT, SEALED_LIKE[::-1])
    for writer in (go_writer, browser_writer):
        writer.close()


async def test_a_utf8_checking_client_with_an_origin_reads_sealed_messages(
    signaler: SignalerProcess,
) -> None:
    """``websockets`` fails the connection on a text frame that is not UTF-8, as browsers do."""
    own = f"http://127.0.0.1:{signaler.port}"
    url = signaler.join_url("strict", "pw")
    async with connect(url, origin=own) as strict:  # type: ignore[arg-type]
        _, go_writer, _ = await raw_join(signaler.port, "strict", "pw")
        go_writer.write(client_frame(OP_TEXT, SEALED_LIKE))
        async with asyncio.timeout(10):
            assert await strict.recv() == SEALED_LIKE
        go_writer.close()


async def test_frame_types_across_signalers_sharing_redis(cluster: Cluster) -> None:
    first, second = cluster.start(), cluster.start()
    own = f"http://127.0.0.1:{first.port}"
    browser_reader, browser_writer, _ = await raw_join(first.port, "spread", "pw", origin=own)
    go_reader, go_writer, _ = await raw_join(second.port, "spread", "pw")
    browser_writer.write(client_frame(OP_BINARY, SEALED_LIKE))
    async with asyncio.timeout(10):
        assert await read_frame(go_reader) == (OP_TEXT, SEALED_LIKE)
    go_writer.write(client_frame(OP_TEXT, SEALED_LIKE[::-1]))
    async with asyncio.timeout(10):
        assert await read_frame(browser_reader) == (OP_BINARY, SEALED_LIKE[::-1])
    for writer in (go_writer, browser_writer):
        writer.close()


async def test_our_signaling_client_sends_no_origin() -> None:
    heads: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(record, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        client = SignalingClient(f"ws://127.0.0.1:{port}/", "c", "pw", "key", timeout=5)
        with pytest.raises(SignalingError):
            await client.connect()
    assert len(heads) == 1
    assert b"\r\nupgrade: websocket" in heads[0].lower()
    assert b"\r\norigin:" not in heads[0].lower()
