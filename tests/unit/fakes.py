"""Fakes for the unit tests of what sits on channels and adapters: a message channel without a
network, an adapter without a signaler, a peer connection and a backend without an engine, a
DHT without libtorrent; and the wait for what they make happen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from weron.peers import Peer
from weron.rendezvous.dht import RoomKeys
from weron.rendezvous.slots import preferred_slot
from weron.webrtc import (
    ChannelClosedError,
    ChannelSpec,
    DataChannel,
    LinkStats,
    PeerConfig,
    PeerConnection,
    PeerEvents,
    echo_on_loop,
)
from weron.wireguard.crypto import PrivateKey


class FakeChannel:
    """Receives ``messages`` (and those ``push``ed later), then reports closed (or, with
    ``linger``, waits for more until closed); records what is sent. ``room`` is how many more
    messages ``send_nowait`` accepts before the send buffer counts as full."""

    def __init__(
        self,
        *messages: bytes,
        room: int = 1 << 30,
        max_size: int = 1 << 16,
        linger: bool = False,
    ) -> None:
        self.inbox = list(messages)
        self.linger = linger
        self._arrived = asyncio.Event()  # a message pushed, or closed
        self.sent: list[bytes] = []
        self.room = room
        self.max_size = max_size
        self.closed = False
        self.receiver: Callable[[bytes], None] | None = None

    @property
    def label(self) -> str:
        return "fake"

    @property
    def max_message_size(self) -> int:
        return self.max_size

    async def send(self, message: bytes) -> None:
        self.sent.append(message)

    async def drain(self) -> None:
        """Everything is sent at once."""

    def send_nowait(self, message: bytes) -> bool:
        if self.closed:
            raise ChannelClosedError("closed")
        if self.room <= 0:
            return False
        self.room -= 1
        self.sent.append(message)
        return True

    def set_receiver(self, receiver: Callable[[bytes], None], *, any_thread: bool = False) -> None:
        while self.inbox:
            receiver(self.inbox.pop(0))
        self.receiver = receiver

    async def echo(self) -> None:
        await echo_on_loop(self)

    def push(self, message: bytes) -> None:
        """A message that arrives while the channel is open (to the receiver, if set)."""
        if self.receiver is not None:
            if not self.closed:
                self.receiver(message)
            return
        self.inbox.append(message)
        self._arrived.set()

    async def receive(self) -> bytes:
        await asyncio.sleep(0)
        while not self.inbox and self.linger and not self.closed:
            self._arrived.clear()
            await self._arrived.wait()
        if not self.inbox:
            raise ChannelClosedError("closed")
        return self.inbox.pop(0)

    def close(self) -> None:
        self.closed = True
        self.inbox.clear()
        self._arrived.set()


class FakeConnection:
    """A peer connection that negotiates at once and carries nothing; a test overrides what it
    looks at (channels created, candidates added)."""

    def create_channel(self, spec: ChannelSpec) -> DataChannel:
        raise AssertionError(f"no channel expected here, got {spec.label!r}")

    async def create_offer(self) -> str:
        return "offer"

    async def accept_offer(self, sdp: str) -> str:
        return "answer"

    async def accept_answer(self, sdp: str) -> None:
        pass

    async def add_candidate(self, candidate: str) -> None:
        pass

    async def close(self) -> None:
        pass

    def stats(self) -> LinkStats:
        return LinkStats()


class OneConnectionBackend:
    """A backend whose every peer connection is ``connection``."""

    def __init__(self, connection: PeerConnection) -> None:
        self.connection = connection

    @property
    def name(self) -> str:
        return "fake"

    def peer_connection(self, config: PeerConfig, events: PeerEvents) -> PeerConnection:
        return self.connection


class FakeAdapter:
    """An adapter without a signaler or WebRTC: hands out the peers a test puts in
    ``arriving`` and the names (or the error to raise) it puts in ``names``; records the
    peers dropped. Stands in for an :class:`~weron.peers.adapter.Adapter` (under a
    ``NamedAdapter``, or under an app) and for a ``NamedAdapter`` (under an app)."""

    def __init__(self) -> None:
        self.arriving: asyncio.Queue[Peer] = asyncio.Queue()
        self.names: asyncio.Queue[str | BaseException] = asyncio.Queue()
        self.dropped: list[str] = []
        self.forgotten: list[object] = []  # channels the app is done with
        self.ids: asyncio.Queue[str] = asyncio.Queue()
        self.ids.put_nowait("our-uuid")  # the signaler is reached once
        self.opened = self.closed = False

    async def open(self) -> None:
        self.opened = True

    async def peers(self) -> AsyncIterator[Peer]:
        while True:
            yield await self.arriving.get()

    async def next_id(self) -> str:
        return await self.ids.get()

    async def next_name(self) -> str:
        name = await self.names.get()
        if isinstance(name, BaseException):
            raise name
        return name

    def negotiating(self) -> int:
        return 0

    def drop(self, peer_id: str) -> None:
        self.dropped.append(peer_id)

    def forget_channel(self, channel: object) -> None:
        self.forgotten.append(channel)

    def raise_if_failed(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True


class FakeClock:
    """A clock for apps that time things: each reading is ``step`` seconds after the last."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def __call__(self) -> float:
        now = self.now
        self.now += self.step
        return now


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition``: what a fake was given has been handled (a hang fails at 5 s)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.005)


class FakeDht:
    """The DHT items of a room in a dict: gets and puts answer at once, reads are counted."""

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}
        self.gets = 0

    async def get(self, public_key: bytes, salt: bytes) -> bytes:
        self.gets += 1
        await asyncio.sleep(0)
        return self.values.get(salt, b"")

    async def put(self, keys: RoomKeys, salt: bytes, value: bytes) -> int:
        self.values[salt] = value
        return 1

    async def close(self) -> None:
        pass


def key_preferring(slot: int) -> PrivateKey:
    """A WireGuard key whose DHT record goes to ``slot`` while that slot is free."""
    while preferred_slot((key := PrivateKey.generate()).public) != slot:
        pass
    return key
