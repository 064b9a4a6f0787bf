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

from weron.webrtc import ChannelSpec, ConnectionState, DataChannel, PeerConfig

pytest.importorskip("libdatachannel", reason="needs the libdatachannel-py wheel")
from weron.webrtc import libdatachannel_backend as rtc_backend
from weron.webrtc.thread_state import kept_threads, thread_name

LABEL = "test/primary"
DEFAULTS = PeerConfig()
WAIT = 20.0  # seconds: only to turn a hang (a lost wake-up) into a failure


class _Events:
    """PeerEvents that trickle candidates to the other connection once it is described."""

    def __init__(self) -> None:
        self.other: rtc_backend.LibdatachannelPeerConnection | None = None
        self.other_described = asyncio.Event()
        self.channels: asyncio.Queue[DataChannel] = asyncio.Queue()
        self.pending: set[asyncio.Task[None]] = set()

    def on_candidate(self, candidate: str) -> None:
        task = asyncio.create_task(self._trickle(candidate))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _trickle(self, candidate: str) -> None:
        await self.other_described.wait()
        assert self.other is not None
        await self.other.add_candidate(candidate)

    def on_channel(self, channel: DataChannel) -> None:
        self.channels.put_nowait(channel)

    def on_state(self, state: ConnectionState) -> None:
        pass


@asynccontextmanager
async def channel_pair(
    config: PeerConfig = DEFAULTS,
) -> AsyncIterator[tuple[DataChannel, DataChannel, rtc_backend.LibdatachannelPeerConnection]]:
    backend = rtc_backend.LibdatachannelBackend()
    offering, answering = _Events(), _Events()
    offerer = backend.peer_connection(config, offering)
    answerer = backend.peer_connection(config, answering)
    offering.other, answering.other = answerer, offerer
    try:
        offerer.create_channel(ChannelSpec(LABEL))
        answer = await answerer.accept_offer(await offerer.create_offer())
        offering.other_described.set()
        await offerer.accept_answer(answer)
        answering.other_described.set()
        async with asyncio.timeout(WAIT):
            ours, theirs = await offering.channels.get(), await answering.channels.get()
        yield ours, theirs, offerer
    finally:
        await offerer.close()
        await answerer.close()


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
