"""The aiortc backend at its limits: 512 channels of ours at a time, refused at once beyond
(aiortc itself would number the next one past the negotiated streams, where it never opens);
a remote peer's channel past the streams closed; nothing kept that arrives on a closed
channel."""

from __future__ import annotations

import asyncio
import logging

import pytest
from tests.unit.webrtc import pairs
from tests.unit.webrtc.pairs import WAIT

from weron.webrtc import Backend, ChannelClosedError, ChannelLimitError, ChannelSpec
from weron.webrtc.aiortc_backend import AiortcBackend, AiortcChannel, AiortcPeerConnection

rtc = pytest.importorskip("weron.webrtc.libdatachannel_backend")

PER_SIDE = 512


async def mixed_pair(answering: Backend) -> pairs.Pair:
    """An aiortc offerer and an ``answering`` answerer, negotiated (one channel each side)."""
    offering_events, answering_events = pairs.Events(), pairs.Events()
    offerer = AiortcBackend().peer_connection(pairs.DEFAULTS, offering_events)
    answerer = answering.peer_connection(pairs.DEFAULTS, answering_events)
    offering_events.other, answering_events.other = answerer, offerer
    offerer.create_channel(ChannelSpec(pairs.LABEL))
    offer = await offerer.create_offer()
    answer = await answerer.accept_offer(offer)
    offering_events.other_described.set()
    await offerer.accept_answer(answer)
    answering_events.other_described.set()
    pair = pairs.Pair(offerer, answerer, offering_events, answering_events, offer, answer)
    await pair.channels()
    return pair


@pytest.mark.parametrize(
    "answering", [rtc.LibdatachannelBackend(), AiortcBackend()], ids=lambda each: each.name
)
async def test_the_channel_past_512_is_refused_at_once_and_the_others_open(
    answering: Backend,
) -> None:
    """Against libdatachannel the 513th channel used to stay "connecting" for ever (its
    stream is past the 1,024 negotiated); against aiortc there was no limit at all."""
    pair = await mixed_pair(answering)
    try:
        made = [pair.offerer.create_channel(ChannelSpec(f"test/{n}")) for n in range(PER_SIDE - 1)]
        with pytest.raises(ChannelLimitError, match="512 a side"):
            pair.offerer.create_channel(ChannelSpec("test/one too many"))
        async with asyncio.timeout(WAIT):
            for _ in made:
                await pair.offering.channels.get()
                await pair.answering.channels.get()
        made[0].close()  # aiortc frees the stream once both directions are reset
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    again = pair.offerer.create_channel(ChannelSpec("test/again"))
                    break
                except ChannelLimitError:
                    await asyncio.sleep(0.05)
            assert await pair.offering.channels.get() is again
    finally:
        await pair.close()


async def test_a_remote_channel_past_the_streams_is_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A peer that ignores the stream count (aiortc's own numbering, past our wrapper's
    limit) gets its channels past the 1,024 streams closed, with a warning."""
    caplog.set_level(logging.WARNING)
    pair = await mixed_pair(AiortcBackend())
    try:
        offerer = pair.offerer
        assert isinstance(offerer, AiortcPeerConnection)
        raw = [offerer._pc.createDataChannel(f"test/{n}") for n in range(PER_SIDE + 9)]
        async with asyncio.timeout(WAIT):
            for _ in range(PER_SIDE - 1):
                await pair.answering.channels.get()
            while sum(channel.readyState == "closed" for channel in raw) < 10:
                await asyncio.sleep(0.05)
        assert pair.answering.channels.empty()
        assert "Closing a channel beyond the connection's streams" in caplog.text
    finally:
        await pair.close()


async def test_what_arrives_on_a_closed_channel_is_not_kept() -> None:
    """aiortc reports arrivals on a channel we closed until the peer has reset its stream
    too, which a hostile peer need never do: nobody reads them, so none is kept."""
    async with pairs.channel_pair(AiortcBackend()) as (ours, theirs, _):
        assert isinstance(theirs, AiortcChannel)
        theirs.close()
        for _ in range(100):  # sent before our reset reaches the peer
            await ours.send(b"after the close")
        async with asyncio.timeout(WAIT):
            with pytest.raises(ChannelClosedError):  # the reset went both ways
                await ours.receive()
        assert theirs._inbox.qsize() == 1  # only the end of the channel
