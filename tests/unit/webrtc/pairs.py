"""Two real peer connections of one backend in this process, negotiated without a signaler
(candidates trickled straight across): shared by the backends' tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from weron.webrtc import (
    Backend,
    ChannelSpec,
    ConnectionState,
    DataChannel,
    PeerConfig,
    PeerConnection,
)

LABEL = "test/primary"
DEFAULTS = PeerConfig()
WAIT = 20.0  # seconds: only to turn a hang (a lost wake-up) into a failure


class Events:
    """PeerEvents that record what was reported and trickle candidates to the other
    connection once it is described."""

    def __init__(self) -> None:
        self.other: PeerConnection | None = None
        self.other_described = asyncio.Event()
        self.channels: asyncio.Queue[DataChannel] = asyncio.Queue()
        self.candidates: list[str] = []
        self.states: list[ConnectionState] = []
        self.trickles: set[asyncio.Task[None]] = set()

    def on_candidate(self, candidate: str) -> None:
        self.candidates.append(candidate)
        task = asyncio.create_task(self._trickle(candidate))
        self.trickles.add(task)
        task.add_done_callback(self.trickles.discard)

    async def _trickle(self, candidate: str) -> None:
        await self.other_described.wait()
        assert self.other is not None
        await self.other.add_candidate(candidate)

    def on_channel(self, channel: DataChannel) -> None:
        self.channels.put_nowait(channel)

    def on_state(self, state: ConnectionState) -> None:
        self.states.append(state)


@dataclass
class Pair:
    offerer: PeerConnection
    answerer: PeerConnection
    offering: Events
    answering: Events
    offer: str
    answer: str

    async def channels(self) -> tuple[DataChannel, DataChannel]:
        """The offerer's channel and the answerer's, once both are open."""
        async with asyncio.timeout(WAIT):
            return await self.offering.channels.get(), await self.answering.channels.get()

    async def close(self) -> None:
        for task in self.offering.trickles | self.answering.trickles:
            task.cancel()
        await self.offerer.close()
        await self.answerer.close()


async def negotiate(
    backend: Backend, config: PeerConfig = DEFAULTS, answer_config: PeerConfig | None = None
) -> Pair:
    """Two connections of ``backend``, offered and answered (one channel, ``LABEL``); the
    channels open later (see :meth:`Pair.channels`)."""
    offering, answering = Events(), Events()
    offerer = backend.peer_connection(config, offering)
    answerer = backend.peer_connection(answer_config or config, answering)
    offering.other, answering.other = answerer, offerer
    offerer.create_channel(ChannelSpec(LABEL))
    offer = await offerer.create_offer()
    answer = await answerer.accept_offer(offer)
    offering.other_described.set()
    await offerer.accept_answer(answer)
    answering.other_described.set()
    return Pair(offerer, answerer, offering, answering, offer, answer)


@asynccontextmanager
async def channel_pair(
    backend: Backend, config: PeerConfig = DEFAULTS
) -> AsyncIterator[tuple[DataChannel, DataChannel, Pair]]:
    """The two open channels of a negotiated pair; both connections closed on exit."""
    pair = await negotiate(backend, config)
    try:
        ours, theirs = await pair.channels()
        yield ours, theirs, pair
    finally:
        await pair.close()
