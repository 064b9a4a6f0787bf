"""The WebRTC backend interface: what the peer adapters need of a WebRTC engine, and nothing more.

Backends (``libdatachannel``, ``aiortc``) implement :class:`Backend`; the adapters in
``weron.peers`` are written against these protocols only. Everything is called from the event
loop; a backend that runs threads of its own hands their events to the loop.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

# The range --webrtc-mtu accepts. Below about 700 bytes libdatachannel's DTLS handshake failed here;
# above 4,096 its ICE agent (libjuice) truncates received datagrams (a 4,096-byte read buffer),
# so big messages stall.
MIN_MTU: Final = 1000
MAX_MTU: Final = 4096
# How long a shutdown waits for its connections' closes (from each close's start), then goes
# on without them. Over a live path a close takes milliseconds (libdatachannel: SCTP's
# shutdown, a round trip or two). Over a dead one (the TURN server or the network gone) it
# only waits for SCTP to give up retransmitting its SHUTDOWN (about 13 s) and tells the peer
# nothing; the peer notices the silence anyway.
CLOSE_GRACE: Final = 2.0


class ChannelClosedError(ConnectionError):
    """The data channel is closed: nothing more can be sent, everything received was read."""


class ChannelLimitError(ConnectionError):
    """The connection has no SCTP stream left for another channel: 512 opened by each side at
    a time with either engine (libdatachannel: closed ones included until the connection
    closes; aiortc: until their stream is reset both ways)."""


class ConnectionState(enum.StrEnum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    FAILED = "failed"
    CLOSED = "closed"


ENDED_STATES = frozenset(
    {ConnectionState.DISCONNECTED, ConnectionState.FAILED, ConnectionState.CLOSED}
)


@dataclass(frozen=True, slots=True)
class IceServer:
    url: str  # stun:host:port or turn:host:port[?transport=udp|tcp]
    username: str = ""
    credential: str = ""

    @property
    def is_turn(self) -> bool:
        return self.url.startswith(("turn:", "turns:"))


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class PeerConfig:
    ice_servers: tuple[IceServer, ...] = ()
    relay_only: bool = False  # --force-relay: ICE transport policy "relay"
    # Largest IP packet a backend may send (--webrtc-mtu); None: the backend's safe default.
    mtu: int | None = None
    # Overlay networks (a VPN's own addresses): no candidate inside them is gathered, sent or
    # accepted, so the overlay never carries its own underlay (a tunnel through itself).
    excluded_networks: tuple[IpNetwork, ...] = ()


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """Reliable and ordered by default, as the original creates its channels."""

    ordered: bool = True
    max_retransmits: int | None = None


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    label: str
    options: ChannelOptions = field(default_factory=ChannelOptions)


class DataChannel(Protocol):
    """A message-oriented, open data channel."""

    @property
    def label(self) -> str: ...

    @property
    def max_message_size(self) -> int: ...

    async def send(self, message: bytes) -> None:
        """Send one message; waits while the send buffer is full (backpressure)."""

    async def drain(self) -> None:
        """Return once everything sent so far has left for the peer, or the channel closed:
        closing the connection right after a last message could discard it."""

    def send_nowait(self, message: bytes) -> bool:
        """Send one message unless the send buffer is full; ``False`` when nothing was sent.
        For packets, which a full link drops, as a real network does."""

    async def receive(self) -> bytes:
        """The next whole message; :class:`ChannelClosedError` once closed and drained."""

    def set_receiver(self, receiver: Callable[[bytes], None], *, any_thread: bool = False) -> None:
        """From now on hand every message to ``receiver`` (called on the event loop) as it
        arrives, instead of to :meth:`receive`, which then only waits for the close. For packet
        paths: no task wake-up per message, and a burst costs one wake-up of the loop.

        ``any_thread``: the receiver may also be called on the engine's own threads (one call
        at a time, in order), which saves waking the loop for an arrival on an idle channel;
        for receivers that only read what the loop changes and write to a file descriptor (the
        VPNs' devices)."""

    async def echo(self) -> None:
        """Send every message back as it arrives, in order, until the channel closes
        (:class:`ChannelClosedError`); instead of :meth:`receive` and :meth:`set_receiver`. For
        ``weron utility latency``: libdatachannel answers on its own thread, without waking the
        loop (a round trip at a user's pace pays for each thread it wakes)."""

    def close(self) -> None:
        """No more messages either way, from now on; what had arrived is still read (a peer's
        last messages before its connection ended are not lost). The remote peer sees the
        close, and the channel's SCTP stream is free again, at once (aiortc) or when the
        connection closes (libdatachannel: see its module)."""


class PeerEvents(Protocol):
    """What a peer connection reports to its owner (called on the event loop)."""

    def on_candidate(self, candidate: str) -> None:
        """A local ICE candidate line (``candidate:...``) to trickle to the remote peer."""

    def on_channel(self, channel: DataChannel) -> None:
        """A data channel is open, whichever side created it."""

    def on_state(self, state: ConnectionState) -> None: ...


class PathKind(enum.StrEnum):
    """Where a connection's packets go: what `weron status` shows as its path."""

    HOST = "host"  # straight between local addresses
    SRFLX = "srflx"  # through a NAT's mapping, learned from a STUN server
    PRFLX = "prflx"  # to an address learned from the peer's checks (early, or behind a NAT)
    RELAY = "relay"  # through a TURN server, on either side


@dataclass(frozen=True, slots=True)
class LinkStats:
    """What an engine says about one connection now; ``None`` where it cannot tell (not yet
    connected, or the engine does not know)."""

    local_type: str | None = None  # ICE candidate type in use: host, srflx, prflx, relay
    remote_type: str | None = None
    local_address: str | None = None  # host:port in use on each side
    remote_address: str | None = None
    rtt: float | None = None  # seconds
    bytes_sent: int | None = None  # data-channel message bytes, every channel together
    bytes_received: int | None = None

    @property
    def path(self) -> PathKind | None:
        """Relayed if either side's candidate is, else the least direct of the two types."""
        types = {self.local_type, self.remote_type} - {None}
        for kind in (PathKind.RELAY, PathKind.SRFLX, PathKind.PRFLX, PathKind.HOST):
            if kind.value in types:
                return kind
        return None


def endpoint(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class PeerConnection(Protocol):
    def stats(self) -> LinkStats:
        """The connection's figures now (cheap: `weron status` and metrics ask on demand)."""

    def create_channel(self, spec: ChannelSpec) -> DataChannel:
        """Create a channel; this same object is reported through ``on_channel`` once open
        (so that its creator tells it from a channel the remote peer opened with the same
        label). Before negotiating, or later on a connected connection;
        :class:`ChannelLimitError` if the connection has no stream left for it."""

    async def create_offer(self) -> str:
        """Set and return the local offer SDP."""

    async def accept_offer(self, sdp: str) -> str:
        """Set the remote offer; set and return the local answer SDP."""

    async def accept_answer(self, sdp: str) -> None: ...

    async def add_candidate(self, candidate: str) -> None:
        """Add a remote candidate line (with or without an ``a=`` prefix)."""

    async def close(self) -> None:
        """Close the connection, telling the peer if it can be reached. May take long where
        it cannot: a shutdown waits for it at most :data:`CLOSE_GRACE`."""


class Backend(Protocol):
    @property
    def name(self) -> str: ...

    def peer_connection(self, config: PeerConfig, events: PeerEvents) -> PeerConnection: ...


async def echo_on_loop(channel: DataChannel) -> None:
    """:meth:`DataChannel.echo` for backends whose messages arrive on the loop anyway."""
    while True:
        await channel.send(await channel.receive())


def message_bytes(message: bytes | str) -> bytes:
    """A received message as bytes: engines hand over text messages (string channels, which
    Go peers may use) as ``str``."""
    return message.encode() if isinstance(message, str) else message


def candidate_line(candidate: str) -> str:
    """Normalise a trickled candidate to ``candidate:...`` (peers send it with or without
    ``a=``); raises ``ValueError`` for anything that is not a candidate line."""
    line = candidate.strip()
    if line.startswith("a="):
        line = line[2:]
    if not line.startswith("candidate:") or len(line.split()) < 8 or "\n" in line:
        raise ValueError(f"not an ICE candidate line: {candidate[:80]!r}")
    return line
