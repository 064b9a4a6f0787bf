"""Hand-rolled WebSocket client pieces for sending exactly the bytes a test wants."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import urllib.parse

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """One frame as RFC 6455 lays it out (clients mask their frames)."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return header + payload
    key = os.urandom(4)
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return header + key + masked


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """``(opcode, payload)`` of the next (unmasked, server) frame."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


def upgrade_request(port: int, community: str, password: str, origin: str | None = None) -> bytes:
    """A join's handshake; with ``origin``, as a browser sends it."""
    query = urllib.parse.urlencode({"community": community, "password": password})
    key = base64.b64encode(os.urandom(16)).decode()
    origin_line = "" if origin is None else f"Origin: {origin}\r\n"
    return (
        f"GET /?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{origin_line}\r\n"
    ).encode()


async def raw_join(
    port: int, community: str, password: str, origin: str | None = None, **socket_options: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Join with a bare TCP connection; returns the stream pair and the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, **socket_options)
    writer.write(upgrade_request(port, community, password, origin))
    head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, head


async def raw_http(port: int, request: bytes) -> bytes:
    """Send raw bytes, return everything the server answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        return await reader.read()
    finally:
        writer.close()
