"""The libdatachannel backend between two real peer connections in this process (host
candidates, no signaler): configuration, message delivery and wake-ups, thread states."""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from tests.unit.webrtc import pairs
from tests.unit.webrtc.pairs import WAIT

from weron.webrtc import ChannelClosedError, ChannelSpec, DataChannel, PeerConfig

pytest.importorskip("libdatachannel", reason="needs the libdatachannel-py wheel")
from weron.webrtc import libdatachannel_backend as rtc_backend
from weron.webrtc.thread_state import kept_threads, thread_name


@asynccontextmanager
async def channel_pair(
    config: PeerConfig = pairs.DEFAULTS,
) -> AsyncIterator[tuple[DataChannel, DataChannel, rtc_backend.LibdatachannelPeerConnection]]:
    async with pairs.channel_pair(rtc_backend.LibdatachannelBackend(), config) as (
        ours,
        theirs,
        pair,
    ):
        assert isinstance(pair.offerer, rtc_backend.LibdatachannelPeerConnection)
        yield ours, theirs, pair.offerer


def _thread_states() -> int:
    """How many thread states this interpreter has right now (C API, read with the GIL)."""
    api = ctypes.pythonapi
    api.PyInterpreterState_Get.restype = ctypes.c_void_p
    api.PyInterpreterState_ThreadHead.argtypes = [ctypes.c_void_p]
    api.PyInterpreterState_ThreadHead.restype = ctypes.c_void_p
    api.PyThreadState_Next.argtypes = [ctypes.c_void_p]
    api.PyThreadState_Next.restype = ctypes.c_void_p
    count, state = 0, api.PyInterpreterState_ThreadHead(api.PyInterpreterState_Get())
    while state:
        count += 1
        state = api.PyThreadState_Next(state)
    return count


async def test_mtu_reaches_the_library() -> None:
    async with channel_pair(PeerConfig(mtu=4096)) as (_, _, offerer):
        assert offerer._pc.config().mtu == 4096
    async with channel_pair() as (_, _, offerer):
        assert offerer._pc.config().mtu is None  # the library's default


async def test_messages_arrive_whole_and_in_order_whether_or_not_the_reader_waits() -> None:
    messages = [os.urandom(size) for size in (1, 1200, 50_000, 0, 65_000) * 40]
    async with channel_pair() as (ours, theirs, _):
        for message in messages[:100]:  # queued before anyone reads
            await ours.send(message)
        async with asyncio.timeout(WAIT):
            received = [await theirs.receive() for _ in range(100)]
            reader = asyncio.create_task(_receive(theirs, len(messages) - 100))
            await asyncio.sleep(0.05)  # the reader is now waiting for the rest
            for message in messages[100:]:
                await ours.send(message)
            received += await reader
    assert received == messages


async def _receive(channel: DataChannel, count: int) -> list[bytes]:
    return [await channel.receive() for _ in range(count)]


async def test_ping_pong_never_loses_a_wake_up() -> None:
    """Every receive here waits for a message that arrives while it waits."""
    async with channel_pair() as (ours, theirs, _):

        async def echo() -> None:
            while True:
                await theirs.send(await theirs.receive())

        echoing = asyncio.create_task(echo())
        async with asyncio.timeout(WAIT):
            for index in range(2000):
                await ours.send(index.to_bytes(4))
                assert await ours.receive() == index.to_bytes(4)
        echoing.cancel()


async def test_library_threads_keep_one_thread_state_each() -> None:
    for _ in range(3):  # connections come and go; the pool's states stay, no more appear
        async with channel_pair() as (ours, theirs, _), asyncio.timeout(WAIT):
            for _ in range(50):
                await ours.send(b"x")
                await theirs.receive()
        kept = kept_threads()
        assert kept, "no callback thread kept its state"
        # Between callbacks: one state per Python thread, plus one per kept library thread
        # (none left behind by other threads, none rebuilt per callback).
        assert _thread_states() == len(threading.enumerate()) + len(kept)


def test_other_threads_are_left_alone() -> None:
    names: list[str | None] = []

    def look() -> None:
        names.append(thread_name())
        rtc_backend._keep_thread_state()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    assert names and names[0] != "RTC worker"
    assert thread.ident not in kept_threads()


async def test_a_closed_channel_ends_here_at_once_and_there_once_quiet() -> None:
    """Ours ends at once; the library's is reset once nothing arrived for a moment (closing it
    at once could deadlock: see the module docstring), and the remote peer's ends then."""
    async with pairs.channel_pair(rtc_backend.LibdatachannelBackend()) as (ours, theirs, _):
        theirs.close()
        with pytest.raises(ChannelClosedError):
            await theirs.receive()
        with pytest.raises(ChannelClosedError):
            await theirs.send(b"late")
        async with asyncio.timeout(WAIT):
            with pytest.raises(ChannelClosedError):
                await ours.receive()


async def test_closed_channels_give_their_streams_back_on_both_sides() -> None:
    """More channels opened and closed than a connection has streams (512 a side): each
    close frees its stream id here and there, and the connection holds no ended channel."""
    async with pairs.channel_pair(rtc_backend.LibdatachannelBackend()) as (_, _, pair):
        for round_ in range(7):
            labels = [f"test/{round_}/{number}" for number in range(100)]
            mine = [pair.offerer.create_channel(ChannelSpec(label)) for label in labels]
            async with asyncio.timeout(WAIT):
                for _ in labels:
                    assert await pair.offering.channels.get() in mine
                theirs = [await pair.answering.channels.get() for _ in labels]
            assert sorted(channel.label for channel in theirs) == sorted(labels)
            for channel in mine:
                await channel.send(b"last")
                channel.close()
            async with asyncio.timeout(WAIT):
                for channel in theirs:
                    assert await channel.receive() == b"last"
                    with pytest.raises(ChannelClosedError):
                        await channel.receive()
        for each in (pair.offerer, pair.answerer):
            assert isinstance(each, rtc_backend.LibdatachannelPeerConnection)
            assert len(each._channels) <= 1 + 100  # the first channel, and the last round's


@pytest.mark.parametrize("high_water", [rtc_backend._HIGH_WATER, 1])
async def test_an_echo_from_the_library_threads_answers_every_message_in_order(
    high_water: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages queued before ``echo()`` and bursts in flight; with a high-water mark of one
    byte, the send buffer is "full" at once and the loop takes over, waiting for room."""
    monkeypatch.setattr(rtc_backend, "_HIGH_WATER", high_water)
    messages = [os.urandom(size) for size in (1, 1200, 50_000, 0, 65_000) * 40]
    async with channel_pair() as (ours, theirs, _), asyncio.timeout(WAIT):
        for message in messages[:10]:
            await ours.send(message)
        echoing = asyncio.create_task(theirs.echo())
        replies = asyncio.create_task(_receive(ours, len(messages)))
        for message in messages[10:]:
            await ours.send(message)
        assert await replies == messages
        for index in range(500):  # one at a time: each arrives while nothing is queued
            await ours.send(index.to_bytes(4))
            assert await ours.receive() == index.to_bytes(4)
        assert not echoing.done()
        echoing.cancel()


async def test_an_echo_ends_when_the_connection_closes() -> None:
    async with pairs.channel_pair(rtc_backend.LibdatachannelBackend()) as (ours, theirs, pair):
        echoing = asyncio.create_task(theirs.echo())
        async with asyncio.timeout(WAIT):
            await ours.send(b"ping")
            assert await ours.receive() == b"ping"
            await pair.offerer.close()
            with pytest.raises(ChannelClosedError):
                await echoing


async def test_delivery_on_any_thread_hands_over_every_message_in_order() -> None:
    """Messages queued before ``deliver`` and bursts in flight reach the receiver in order,
    arrivals on the library's threads without the loop; once ``deliver`` switched to another
    receiver, the first one is never called again."""
    messages = [os.urandom(size) for size in (1, 1200, 50_000, 0, 65_000) * 40]
    got: list[bytes] = []
    threads: set[str] = set()
    switched = False
    late = 0
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def receiver(message: bytes) -> None:
        nonlocal late
        late += switched
        got.append(message)
        threads.add(threading.current_thread().name)
        if len(got) == len(messages):
            loop.call_soon_threadsafe(done.set)

    async with channel_pair() as (ours, theirs, _), asyncio.timeout(WAIT):
        for message in messages[:10]:
            await ours.send(message)
        await asyncio.sleep(0.2)  # queued in the library before anyone takes them
        theirs.deliver(receiver, any_thread=True)
        for message in messages[10:]:
            await ours.send(message)
        await done.wait()
        assert got == messages
        assert threads - {threading.current_thread().name}, "never called on a library thread"
        later: list[bytes] = []
        for index in range(50):
            await ours.send(index.to_bytes(4))
        theirs.deliver(later.append)
        switched = True
        while len(got) + len(later) < len(messages) + 50:
            await asyncio.sleep(0.01)
        assert got[len(messages) :] + later == [index.to_bytes(4) for index in range(50)]
        assert late == 0
