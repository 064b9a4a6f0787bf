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

from weron.webrtc import (
    ChannelClosedError,
    ChannelLimitError,
    ChannelSpec,
    DataChannel,
    PeerConfig,
)

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
    # Threads the threading module does not list (pytest-xdist's, made with _thread) count too.
    unlisted = _thread_states() - len(threading.enumerate()) - len(kept_threads())
    for _ in range(3):  # connections come and go; the pool's states stay, no more appear
        async with channel_pair() as (ours, theirs, _), asyncio.timeout(WAIT):
            for _ in range(50):
                await ours.send(b"x")
                await theirs.receive()
        kept = kept_threads()
        assert kept, "no callback thread kept its state"
        # Between callbacks: one state per Python thread, plus one per kept library thread
        # (none left behind by other threads, none rebuilt per callback).
        assert _thread_states() == len(threading.enumerate()) + len(kept) + unlisted


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


class _CloseSpy:
    """A library channel that counts the ``close`` calls made on it from Python."""

    def __init__(self, channel: object) -> None:
        self._channel = channel
        self.closes = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._channel, name)

    def close(self) -> None:
        self.closes += 1


async def test_a_closed_channel_drops_its_arrivals_and_closes_with_the_connection() -> None:
    """Closing the library's channel from Python could deadlock with a worker reporting an
    arrival (see the module docstring), so nothing does, not even once the channel seems
    quiet (a peer can time a message for that moment): ours ends at once and drops what still
    comes, in bursts and pauses, and the remote peer's ends when the connection closes."""
    async with pairs.channel_pair(rtc_backend.LibdatachannelBackend()) as (ours, theirs, pair):
        assert isinstance(theirs, rtc_backend.LibdatachannelChannel)
        spy = _CloseSpy(theirs._channel)
        theirs._channel = spy  # type: ignore[assignment]
        theirs.close()
        with pytest.raises(ChannelClosedError):
            await theirs.receive()
        with pytest.raises(ChannelClosedError):
            await theirs.send(b"late")
        for _ in range(3):
            for _ in range(100):
                await ours.send(b"dropped over there")
            await asyncio.sleep(0.5)
        assert spy.available_amount() == 0  # type: ignore[operator]
        assert spy.closes == 0
        await ours.send(b"still open over here")
        await pair.answerer.close()
        async with asyncio.timeout(WAIT):
            with pytest.raises(ChannelClosedError):
                await ours.receive()
        assert spy.closes == 0


async def test_a_channel_beyond_the_streams_left_is_refused_and_the_others_still_work() -> None:
    """Closed channels keep their stream until the connection closes: the one past the limit
    raises ChannelLimitError, which names it, and the connection carries on."""
    async with pairs.channel_pair(rtc_backend.LibdatachannelBackend()) as (ours, theirs, pair):
        opened = 1  # the pair's own channel
        with pytest.raises(ChannelLimitError, match="512 a side"):
            while opened <= 512:
                pair.offerer.create_channel(ChannelSpec(f"test/{opened}")).close()
                opened += 1
        assert opened == 512
        await ours.send(b"after")
        async with asyncio.timeout(WAIT):
            assert await theirs.receive() == b"after"


async def test_a_channel_the_remote_peer_reset_ends_here_and_is_not_held() -> None:
    """A remote peer's close (aiortc's stream reset; here the library's own, made by the test
    with nothing in flight) is done on a worker: ours ends, and the connection stops holding
    it once the next channel comes (a peer may open and close channels all day)."""
    async with pairs.channel_pair(rtc_backend.LibdatachannelBackend()) as (_, _, pair):
        answerer = pair.answerer
        assert isinstance(answerer, rtc_backend.LibdatachannelPeerConnection)
        mine = pair.offerer.create_channel(ChannelSpec("test/reset"))
        async with asyncio.timeout(WAIT):
            assert await pair.offering.channels.get() is mine
            theirs = await pair.answering.channels.get()
        assert isinstance(mine, rtc_backend.LibdatachannelChannel)
        assert isinstance(theirs, rtc_backend.LibdatachannelChannel)
        mine._channel.close()
        async with asyncio.timeout(WAIT):
            with pytest.raises(ChannelClosedError):
                await theirs.receive()
        assert theirs.ended
        assert theirs in answerer._channels
        pair.offerer.create_channel(ChannelSpec("test/next"))
        async with asyncio.timeout(WAIT):
            await pair.answering.channels.get()
        assert theirs not in answerer._channels


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
    """Messages queued before ``set_receiver`` and bursts in flight reach the receiver in order,
    arrivals on the library's threads without the loop; once ``set_receiver`` switched to another
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
        theirs.set_receiver(receiver, any_thread=True)
        for message in messages[10:]:
            await ours.send(message)
        await done.wait()
        assert got == messages
        assert threads - {threading.current_thread().name}, "never called on a library thread"
        later: list[bytes] = []
        for index in range(50):
            await ours.send(index.to_bytes(4))
        theirs.set_receiver(later.append)
        switched = True
        while len(got) + len(later) < len(messages) + 50:
            await asyncio.sleep(0.01)
        assert got[len(messages) :] + later == [index.to_bytes(4) for index in range(50)]
        assert late == 0
