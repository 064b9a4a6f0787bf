"""Both backends: closing a channel keeps what had arrived readable. The adapter closes a
peer's channels when its connection ends, and a peer's last messages (a piped chat line, its
name claim) come just before that: read, they are not lost."""

from __future__ import annotations

import asyncio

import pytest
from tests.unit.webrtc.pairs import WAIT, channel_pair

from weron.webrtc import Backend, ChannelClosedError, DataChannel
from weron.webrtc.aiortc_backend import AiortcBackend, AiortcChannel

rtc = pytest.importorskip("weron.webrtc.libdatachannel_backend")

BACKENDS = [rtc.LibdatachannelBackend(), AiortcBackend()]


WORDS = [b"last words %d" % number for number in range(3)]


def unread(channel: DataChannel) -> int:
    """Messages arrived and not read yet (each engine keeps them its own way)."""
    if isinstance(channel, AiortcChannel):
        return channel._inbox.qsize()
    assert isinstance(channel, rtc.LibdatachannelChannel)
    return int(channel._channel.available_amount()) // len(WORDS[0])  # bytes queued


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
async def test_what_arrived_before_the_close_is_still_read(backend: Backend) -> None:
    async with channel_pair(backend) as (ours, theirs, _), asyncio.timeout(WAIT):
        for words in WORDS:
            await ours.send(words)
        while unread(theirs) < len(WORDS):
            await asyncio.sleep(0.01)
        theirs.close()
        await ours.send(b"after the close")
        assert [await theirs.receive() for _ in WORDS] == WORDS
        with pytest.raises(ChannelClosedError):
            await theirs.receive()
