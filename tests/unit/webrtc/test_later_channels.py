"""Both backends: a channel created on a connection that is already up opens on both sides,
and its creator gets back the very object that ``on_channel`` reports (so that it tells its
own channel from one the remote peer opened with the same label) — what `weron forward`
opens a channel per TCP connection with."""

from __future__ import annotations

import asyncio

import pytest
from tests.unit.webrtc.pairs import WAIT, channel_pair

from weron.webrtc import Backend, ChannelSpec
from weron.webrtc.aiortc_backend import AiortcBackend

rtc = pytest.importorskip("weron.webrtc.libdatachannel_backend")

BACKENDS = [rtc.LibdatachannelBackend(), AiortcBackend()]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
async def test_a_channel_created_later_opens_on_both_sides(backend: Backend) -> None:
    async with channel_pair(backend) as (_, _, pair), asyncio.timeout(WAIT):
        created = [pair.offerer.create_channel(ChannelSpec("later/same")) for _ in range(2)]
        answered = pair.answerer.create_channel(ChannelSpec("later/same"))
        reported = {await pair.offering.channels.get() for _ in range(3)}
        assert set(created) <= reported  # the objects created are those reported
        (theirs,) = reported - set(created)  # and the answerer's one, same label
        assert theirs.label == "later/same"
        mine = {await pair.answering.channels.get() for _ in range(3)}
        assert answered in mine
        for number, channel in enumerate(created):
            await channel.send(b"hello %d" % number)
        received = {await channel.receive() for channel in mine - {answered}}
        assert received == {b"hello 0", b"hello 1"}
        await answered.send(b"back")
        assert await theirs.receive() == b"back"
