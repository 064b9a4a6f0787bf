"""The signaler's side of the browser peer, against a real signaler process: the page under
/web/, origins checked on real handshakes, binary frames for browsers and text for Go peers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.devtools import chromium, chromium_missing
from tests.e2e.chat import ChatProcess
from tests.e2e.conftest import Cluster, StartSignaler
from tests.e2e.processes import SignalerProcess, free_port, run_weron
from tests.e2e.wsclient import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    client_frame,
    raw_http,
    raw_join,
    read_frame,
    upgrade_request,
)
from weron.signaler_client.client import SignalingClient, SignalingError
from weron.signaler_client.envelope import Envelope
from weron.signaler_client.messages import (
    Exchange,
    Introduction,
    MessageType,
    decode_message,
    encode_message,
)

SEALED_LIKE = b"\xff\xfe\x00\xc3(" + bytes(range(256))  # what a sealed message looks like


async def next_message(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next frame that is not one of the signaler's heartbeat pings."""
    while True:
        opcode, payload = await read_frame(reader)
        if opcode != OP_PING:
            return opcode, payload


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


async def test_browsers_get_binary_frames_and_go_peers_text(
    signaler_factory: StartSignaler,
) -> None:
    """Raw frames: what a Go peer sends and expects, what a browser must get."""
    signaler = signaler_factory("--heartbeat", "1m")  # raw members answer no pings
    own = f"http://127.0.0.1:{signaler.port}"
    go_reader, go_writer, go_head = await raw_join(signaler.port, "mixed", "pw")
    browser_reader, browser_writer, browser_head = await raw_join(
        signaler.port, "mixed", "pw", origin=own
    )
    assert go_head.startswith(b"HTTP/1.1 101") and browser_head.startswith(b"HTTP/1.1 101")
    go_writer.write(client_frame(OP_TEXT, SEALED_LIKE))
    async with asyncio.timeout(10):
        assert await next_message(browser_reader) == (OP_BINARY, SEALED_LIKE)
    browser_writer.write(client_frame(OP_BINARY, SEALED_LIKE[::-1]))
    async with asyncio.timeout(10):
        assert await next_message(go_reader) == (OP_TEXT, SEALED_LIKE[::-1])
    for writer in (go_writer, browser_writer):
        writer.close()


async def test_a_utf8_checking_client_with_an_origin_reads_sealed_messages(
    signaler_factory: StartSignaler,
) -> None:
    """``websockets`` fails the connection on a text frame that is not UTF-8, as browsers do."""
    signaler = signaler_factory("--heartbeat", "1m")  # raw members answer no pings
    own = f"http://127.0.0.1:{signaler.port}"
    url = signaler.join_url("strict", "pw")
    async with connect(url, origin=own) as strict:  # type: ignore[arg-type]
        _, go_writer, _ = await raw_join(signaler.port, "strict", "pw")
        go_writer.write(client_frame(OP_TEXT, SEALED_LIKE))
        async with asyncio.timeout(10):
            assert await strict.recv() == SEALED_LIKE
        go_writer.close()


async def test_frame_types_across_signalers_sharing_redis(cluster: Cluster) -> None:
    first, second = cluster.start("--heartbeat", "1m"), cluster.start("--heartbeat", "1m")
    own = f"http://127.0.0.1:{first.port}"
    browser_reader, browser_writer, _ = await raw_join(first.port, "spread", "pw", origin=own)
    go_reader, go_writer, _ = await raw_join(second.port, "spread", "pw")
    browser_writer.write(client_frame(OP_BINARY, SEALED_LIKE))
    async with asyncio.timeout(10):
        assert await next_message(go_reader) == (OP_TEXT, SEALED_LIKE)
    go_writer.write(client_frame(OP_TEXT, SEALED_LIKE[::-1]))
    async with asyncio.timeout(10):
        assert await next_message(browser_reader) == (OP_BINARY, SEALED_LIKE[::-1])
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


async def test_hostile_browser_member(signaler_factory: StartSignaler) -> None:
    """A member with an accepted origin sending what the protocol allows but no page would:
    fragments, text frames that are not UTF-8, an oversized message, twice the Origin header."""
    signaler = signaler_factory("--heartbeat", "1m")  # raw members answer no pings
    own = f"http://127.0.0.1:{signaler.port}"
    doubled = upgrade_request(signaler.port, "hostile", "pw", own).replace(
        b"\r\n\r\n", f"\r\nOrigin: {own}\r\n\r\n".encode(), 1
    )
    response = await raw_http(signaler.port, doubled)
    assert response.startswith(b"HTTP/1.1 403"), response[:200]
    go_reader, go_writer, _ = await raw_join(signaler.port, "hostile", "pw")
    peer_reader, peer_writer, _ = await raw_join(signaler.port, "hostile", "pw", origin=own)
    hostile_reader, hostile_writer, head = await raw_join(
        signaler.port, "hostile", "pw", origin=own
    )
    assert head.startswith(b"HTTP/1.1 101")
    hostile_writer.write(client_frame(OP_BINARY, b"\xff" * 3, fin=False))
    hostile_writer.write(client_frame(OP_CONT, b"\xfe" * 3))
    hostile_writer.write(client_frame(OP_TEXT, b"\xc3("))
    async with asyncio.timeout(10):
        assert await next_message(go_reader) == (OP_TEXT, b"\xff\xff\xff\xfe\xfe\xfe")
        assert await next_message(go_reader) == (OP_TEXT, b"\xc3(")
        assert await next_message(peer_reader) == (OP_BINARY, b"\xff\xff\xff\xfe\xfe\xfe")
        assert await next_message(peer_reader) == (OP_BINARY, b"\xc3(")
    hostile_writer.write(client_frame(OP_BINARY, bytes((1 << 20) + 1)))
    async with asyncio.timeout(10):
        opcode, payload = await next_message(hostile_reader)
    assert (opcode, int.from_bytes(payload[:2], "big")) == (OP_CLOSE, 1009)
    go_writer.write(client_frame(OP_TEXT, SEALED_LIKE))
    async with asyncio.timeout(10):
        assert await next_message(peer_reader) == (OP_BINARY, SEALED_LIKE)
    for writer in (go_writer, peer_writer, hostile_writer):
        writer.close()


async def test_a_cli_peer_answers_a_browser_that_sends_binary_frames(
    signaler: SignalerProcess, chat_factory: Callable[..., ChatProcess]
) -> None:
    """A member speaking as a browser does (Origin, binary frames, a UTF-8 checking library)
    introduces itself to a real `weron chat` peer, which offers to it: our peers take what a
    browser sends, and the browser can read what they send."""
    chat = chat_factory(signaler.ws_url)
    chat.wait_for_log("Connected to signaler")
    envelope = Envelope("mykey")
    own = f"http://127.0.0.1:{signaler.port}"
    url = signaler.join_url("chatroom", "pw")
    async with connect(url, origin=own) as browser:  # type: ignore[arg-type]
        await browser.send(envelope.seal(encode_message(Introduction("browser-id"))))
        async with asyncio.timeout(60):
            while True:
                data = await browser.recv()
                assert isinstance(data, bytes)  # a binary frame: a text one would fail here
                message = decode_message(envelope.open(data))
                if isinstance(message, Exchange) and message.recipient == "browser-id":
                    break
        assert message.type is MessageType.OFFER
        assert b"webrtc-datachannel" in message.payload


# In the page the signaler serves: join with the page's own origin, report the first message's
# type and bytes, send binary bytes back.
_JOIN_SCRIPT = """
new Promise((resolve) => {
  const ws = new WebSocket(`ws://${location.host}/?community=%s&password=pw`);
  ws.binaryType = 'arraybuffer';
  window.socket = ws;
  ws.onopen = () => resolve('open');
  ws.onclose = (event) => resolve(`closed ${event.code}`);
})
"""
_RECEIVE_SCRIPT = """
new Promise((resolve) => {
  window.socket.onmessage = (event) => resolve(JSON.stringify({
    binary: event.data instanceof ArrayBuffer,
    bytes: Array.from(new Uint8Array(event.data)),
  }));
  window.socket.onclose = (event) => resolve(`closed ${event.code}`);
})
"""


async def test_chromium_on_the_page_reads_and_sends_sealed_bytes(
    signaler_factory: StartSignaler,
) -> None:
    """Real Chromium: the page from /web/ joins (its own origin), a Go peer's non-UTF-8 text
    frame reaches it as binary (a text one would end its connection), and its binary frame
    reaches the Go peer as a text frame."""
    signaler = signaler_factory("--heartbeat", "1m")  # raw members answer no pings
    if (missing := chromium_missing()) is not None:
        pytest.skip(missing)
    go_reader, go_writer, _ = await raw_join(signaler.port, "page", "pw")
    async with chromium(f"{signaler.http_url}web/", free_port()) as page:
        assert await page.evaluate(_JOIN_SCRIPT % "page") == "open"
        receiving = asyncio.ensure_future(page.evaluate(_RECEIVE_SCRIPT))
        async with asyncio.timeout(30):  # sent until the page's handler is there to get it
            while not receiving.done():
                go_writer.write(client_frame(OP_TEXT, SEALED_LIKE))
                await asyncio.wait({receiving}, timeout=1)
        received = json.loads(receiving.result())
        assert received == {"binary": True, "bytes": list(SEALED_LIKE)}
        await page.evaluate("window.socket.send(new Uint8Array([0xff, 0x00, 0xc3, 0x28])); 1")
        async with asyncio.timeout(30):
            assert await next_message(go_reader) == (OP_TEXT, b"\xff\x00\xc3\x28")
    go_writer.close()


async def test_chromium_on_a_foreign_page_is_refused(signaler_factory: StartSignaler) -> None:
    """A page served by another origin (here: another signaler) cannot join."""
    if (missing := chromium_missing()) is not None:
        pytest.skip(missing)
    target, foreign = signaler_factory(), signaler_factory()
    script = _JOIN_SCRIPT.replace("${location.host}", f"127.0.0.1:{target.port}") % "c"
    async with chromium(f"{foreign.http_url}web/", free_port()) as page:
        assert await page.evaluate(script) == "closed 1006"
    rejected = [
        r for r in target.log_records() if r.get("message") == "Rejected client: origin not allowed"
    ]
    assert len(rejected) == 1
    assert f"127.0.0.1:{foreign.port}" in str(rejected[0].get("origin"))
