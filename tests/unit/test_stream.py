"""The byte-stream view over a message channel."""

from __future__ import annotations

from tests.unit.fakes import FakeChannel

from weron.peers.stream import ChannelStream


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
