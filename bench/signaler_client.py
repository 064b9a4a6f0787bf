"""The clients of bench/signaler.py: a hand-rolled WebSocket client on a bare asyncio Protocol
(about a tenth of the parsing cost of websockets' sans-I/O parser, so the latencies stay the
server's)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
import urllib.parse
from collections.abc import Callable
from typing import Final, cast

from websockets.frames import Frame, Opcode

HOST: Final = "127.0.0.1"
PASSWORD: Final = "bench-password"
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CLOSE_1000: Final = Frame(Opcode.CLOSE, b"\x03\xe8")


class JoinError(Exception):
    """The server refused the join (no 101, wrong accept key) or broke the protocol."""


MessageSink = Callable[[bytes, int], None]  # (payload, receive time in monotonic ns)


class BenchClient(asyncio.Protocol):
    """Just enough RFC 6455 for a client that measures: opening handshake, unmasked frame
    reader, pong and close answers. Receive times are taken on entry to ``data_received``,
    before any parsing."""

    def __init__(self, port: int, path: str, on_message: MessageSink | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._key = base64.b64encode(os.urandom(16))
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self._on_message = on_message
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._buffer = b""
        self._open = False
        self._failed = False
        self._close_sent = False
        self._fragments: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self._failed:
            return
        if not self._open:
            data = self._read_handshake(data)
        if self._buffer:
            data, self._buffer = self._buffer + data, b""
        size = len(data)
        position = 0
        while size - position >= 2:
            first, second = data[position], data[position + 1]
            length = second & 0x7F
            start = position + 2
            if length == 126:
                if size - start < 2:
                    break
                length = int.from_bytes(data[start : start + 2])
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                length = int.from_bytes(data[start : start + 8])
                start += 8
            if second & 0x80:
                self._fail(JoinError("server sent a masked frame"))
                return
            end = start + length
            if end > size:
                break
            self._on_frame(first, data[start:end], now)
            position = end
        if position < size:
            self._buffer = data[position:]

    def _read_handshake(self, data: bytes) -> bytes:
        """Consume the response head; return the bytes after it (frames, if any)."""
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return b""
        head, rest = self._head[:end], self._head[end + 4 :]
        self._head = b""
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or status[1] != b"101":
            self._fail(JoinError(lines[0].decode("latin-1")))
            return b""
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest())
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(b":") for line in lines[1:])
        }
        if headers.get(b"sec-websocket-accept") != accept:
            self._fail(JoinError("wrong Sec-WebSocket-Accept"))
            return b""
        self._open = True
        self.opened.set_result(None)
        return rest

    def _on_frame(self, first: int, payload: bytes, now: int) -> None:
        opcode = first & 0x0F
        fin = first & 0x80
        if opcode in (0x1, 0x2):
            if fin:
                if self._on_message is not None:
                    self._on_message(payload, now)
            else:
                self._fragments = [payload]
        elif opcode == 0x0:
            self._fragments.append(payload)
            if fin and self._on_message is not None:
                self._on_message(b"".join(self._fragments), now)
        elif opcode == 0x9:
            self._write(Frame(Opcode.PONG, payload))
        elif opcode == 0x8 and not self._close_sent:
            self._close_sent = True  # echo the close; the server then closes TCP
            self._write(Frame(Opcode.CLOSE, payload[:2]))

    def _write(self, frame: Frame) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame.serialize(mask=True))

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        self._open = False
        self._failed = True
        if self._transport is not None:
            self._transport.close()

    def send_text(self, payload: bytes) -> None:
        self._write(Frame(Opcode.TEXT, payload))

    def close(self) -> None:
        """Start the closing handshake (the server closes the TCP connection after it)."""
        if not self._close_sent:
            self._close_sent = True
            self._write(_CLOSE_1000)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)


def join_path(community: str, password: str = PASSWORD) -> str:
    return "/?" + urllib.parse.urlencode({"community": community, "password": password})


async def connect(port: int, path: str, on_message: MessageSink | None = None) -> BenchClient:
    """An open client; raises JoinError or OSError when the join fails."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: BenchClient(port, path, on_message), HOST, port
    )
    try:
        await client.opened
    except BaseException:
        client.abort()
        raise
    return client
