"""The byte-stream view over a message channel."""

from __future__ import annotations

import asyncio

from weron.peers.stream import ChannelStream
from weron.webrtc import ChannelClosedError


class FakeChannel:
    def __init__(self, *messages: bytes) -> None:
        self.inbox = list(messages)
        self.sent: list[bytes] = []

    @property
    def label(self) -> str:
        return "fake"

    @property
    def max_message_size(self) -> int:
        return 1 << 16

    async def send(self, message: bytes) -> None:
        self.sent.append(message)

    async def receive(self) -> bytes:
        await asyncio.sleep(0)
        if not self.inbox:
            raise ChannelClosedError("closed")
        return self.inbox.pop(0)

    def close(self) -> None:
        self.inbox.clear()


async def test_lines_span_and_split_messages() -> None:
    stream = ChannelStream(FakeChannel(b"hel", b"lo\nwor", b"ld\n", b"tail"))
    assert [line async for line in stream] == [b"hello\n", b"world\n", b"tail"]
    assert await stream.read() == b""


async def test_read_limits_and_writes_are_messages() -> None:
    channel = FakeChannel(b"abcdef")
    stream = ChannelStream(channel)
    assert await stream.read(2) == b"ab"
    assert await stream.read() == b"cdef"
    await stream.write(b"one")
    await stream.write(b"two")
    assert channel.sent == [b"one", b"two"]
