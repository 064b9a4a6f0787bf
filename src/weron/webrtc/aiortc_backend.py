"""The aiortc backend: pure Python, portable, and the only one with TURN over TCP/TLS.

aiortc gathers every candidate before it produces an offer or answer, so its candidates travel
inside the SDP (nothing is trickled out); trickled candidates from the other side are accepted.

Channels: aiortc offers 65,535 SCTP streams and numbers a new channel past the negotiated count
without a word (libdatachannel, offering 1,024, drops what comes on such a stream, so the channel
stays "connecting" for ever), nor does it check the streams of a remote peer's channels. So the
connection offers 1,024 streams, as libdatachannel does, and holds each side to half of them:
512 of ours at a time (``create_channel`` raises ``ChannelLimitError`` for the next one, at
once) and a remote channel on a stream beyond the count is closed. aiortc frees a closed
channel's stream once both directions are reset.

Excluded networks (``PeerConfig.excluded_networks``): aioice binds one socket per local
address and pairs remote candidates with each, so a candidate on an excluded address is removed
from its connection (socket closed) right after gathering, before the description is made and
before any pair forms: it is neither sent nor used. Remote ones are dropped on arrival.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aioice import Candidate, Connection
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp

from weron.log import get_logger
from weron.webrtc import (
    ChannelClosedError,
    ChannelLimitError,
    ChannelSpec,
    ConnectionState,
    LinkStats,
    PeerConfig,
    PeerEvents,
    candidate_line,
    candidates,
    echo_on_loop,
    endpoint,
    message_bytes,
)

log = get_logger(__name__)

_HIGH_WATER: Final = 1 << 20  # bytes buffered in SCTP before send() waits
_LOW_WATER: Final = 256 << 10
_DRAIN_POLL: Final = (0.001, 0.05)  # first and longest pause between looks at the queues
_MID: Final = re.compile(r"^a=mid:(\S+)", re.MULTILINE)
_STREAMS: Final = 1024  # SCTP streams offered each way: libdatachannel's count


@dataclass(slots=True)
class _Counted:
    """Message bytes each way over a connection's channels: aiortc keeps its counters private."""

    sent: int = 0
    received: int = 0


class AiortcChannel:
    def __init__(self, channel: RTCDataChannel, max_message_size: int, counted: _Counted) -> None:
        self._channel = channel
        self._counted = counted
        self._max_message_size = max_message_size
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = False
        self._receiver: Callable[[bytes], None] | None = None
        channel.bufferedAmountLowThreshold = _LOW_WATER
        channel.on("message", self._on_message)
        channel.on("close", self._on_close)
        channel.on("bufferedamountlow", self._writable.set)

    @property
    def label(self) -> str:
        return self._channel.label

    @property
    def max_message_size(self) -> int:
        return self._max_message_size

    def _on_message(self, message: bytes | str) -> None:
        if self._closed:  # aiortc reports arrivals until the peer resets its stream too
            return
        data = message_bytes(message)
        self._counted.received += len(data)
        if self._receiver is not None:
            self._receiver(data)
        else:
            self._inbox.put_nowait(data)

    def set_receiver(self, receiver: Callable[[bytes], None], *, any_thread: bool = False) -> None:
        """aiortc runs on the loop: every message arrives there, whatever ``any_thread``."""
        self._receiver = receiver
        while self._inbox.qsize() and (queued := self._inbox.get_nowait()) is not None:
            receiver(queued)
        if self._closed:
            self._inbox.put_nowait(None)

    async def echo(self) -> None:
        await echo_on_loop(self)

    def _on_close(self) -> None:
        if not self._closed:
            self._closed = True
            self._inbox.put_nowait(None)
            self._writable.set()

    async def send(self, message: bytes) -> None:
        self.send_nowait(message)
        if self._channel.bufferedAmount > _HIGH_WATER:
            self._writable.clear()
            await self._writable.wait()

    async def drain(self) -> None:
        """Until SCTP has nothing queued or unacknowledged either: aiortc aborts the
        association on close, discarding what is in flight (its queues are private)."""
        pause = _DRAIN_POLL[0]
        while not self._closed and self._channel.readyState == "open" and self._pending():
            await asyncio.sleep(pause)
            pause = min(pause * 2, _DRAIN_POLL[1])

    def _pending(self) -> bool:
        sctp = self._channel.transport
        queues = ("_data_channel_queue", "_outbound_queue", "_sent_queue")
        return self._channel.bufferedAmount > 0 or any(getattr(sctp, q, ()) for q in queues)

    def send_nowait(self, message: bytes) -> bool:
        if self._closed or self._channel.readyState != "open":
            raise ChannelClosedError(f"channel {self.label!r} is closed")
        if self._channel.bufferedAmount > _HIGH_WATER:
            return False
        self._channel.send(message)
        self._counted.sent += len(message)
        return True

    async def receive(self) -> bytes:
        message = await self._inbox.get()
        if message is None:
            self._inbox.put_nowait(None)  # every later receive() sees the end too
            raise ChannelClosedError(f"channel {self.label!r} is closed")
        return message

    def close(self) -> None:
        self._channel.close()
        self._on_close()


class AiortcPeerConnection:
    def __init__(self, config: PeerConfig, events: PeerEvents) -> None:
        servers = [
            RTCIceServer(
                urls=server.url,
                username=server.username or None,
                credential=server.credential or None,
            )
            for server in config.ice_servers
        ]
        policy = RTCIceTransportPolicy.RELAY if config.relay_only else RTCIceTransportPolicy.ALL
        self._pc = RTCPeerConnection(
            RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)
        )
        self._events = events
        self._excluded = config.excluded_networks
        self._remote_mid = "0"
        self._counted = _Counted()
        self._ours: list[RTCDataChannel] = []  # channels we created, closed ones pruned
        self._pc.on("connectionstatechange", self._on_state)
        self._pc.on("datachannel", self._on_remote_channel)

    def _on_state(self) -> None:
        try:
            state = ConnectionState(self._pc.connectionState)
        except ValueError:
            return
        self._events.on_state(state)

    def _max_message_size(self) -> int:
        sctp = self._pc.sctp
        size = getattr(sctp, "_remote_max_message_size", 0) if sctp is not None else 0
        return int(size) if size else 65536

    def _limit_streams(self) -> None:
        """Offer _STREAMS streams each way: private attributes, which the association sends
        in its INIT or INIT ACK (set as soon as the transport exists, before it starts)."""
        sctp = self._pc.sctp
        if sctp is not None:
            sctp._inbound_streams_max = min(sctp._inbound_streams_max, _STREAMS)
            sctp._outbound_streams_count = min(sctp._outbound_streams_count, _STREAMS)

    def _per_side(self) -> int:
        sctp = self._pc.sctp
        streams = sctp.maxChannels if sctp is not None else None
        return min(streams or _STREAMS, _STREAMS) // 2

    def _on_remote_channel(self, channel: RTCDataChannel) -> None:
        if channel.id is not None and channel.id >= 2 * self._per_side():
            log.warning(
                "Closing a channel beyond the connection's streams",
                channel=channel.label[:80],
                stream=channel.id,
            )
            channel.close()
            return
        self._watch(channel)

    def _watch(self, channel: RTCDataChannel) -> AiortcChannel:
        wrapped = AiortcChannel(channel, self._max_message_size(), self._counted)
        if channel.readyState == "open":  # on the next turn: after create_channel returns
            asyncio.get_running_loop().call_soon(self._events.on_channel, wrapped)
        else:
            channel.once("open", lambda: self._events.on_channel(wrapped))
        return wrapped

    def stats(self) -> LinkStats:
        """The nominated candidate pair and SCTP's smoothed round trip are aioice's and
        aiortc's private state (read defensively: ``None`` if a release renames them); bytes
        are the channels' message bytes, counted here."""
        pair = _nominated_pair(self._pc)
        local = getattr(pair, "local_candidate", None)
        remote = getattr(pair, "remote_candidate", None)
        rtt = getattr(self._pc.sctp, "_srtt", None)
        return LinkStats(
            local_type=getattr(local, "type", None),
            remote_type=getattr(remote, "type", None),
            local_address=_candidate_address(local),
            remote_address=_candidate_address(remote),
            rtt=float(rtt) if isinstance(rtt, int | float) else None,
            bytes_sent=self._counted.sent,
            bytes_received=self._counted.received,
        )

    def create_channel(self, spec: ChannelSpec) -> AiortcChannel:
        self._ours = [channel for channel in self._ours if channel.readyState != "closed"]
        if len(self._ours) >= (per_side := self._per_side()):
            raise ChannelLimitError(
                f"no data channel left on this connection ({per_side} a side, "
                "closed ones included until their stream is reset)"
            )
        channel = self._pc.createDataChannel(
            spec.label, ordered=spec.options.ordered, maxRetransmits=spec.options.max_retransmits
        )
        self._limit_streams()
        self._ours.append(channel)
        return self._watch(channel)

    async def create_offer(self) -> str:
        return await self._set_local(await self._pc.createOffer())

    async def accept_offer(self, sdp: str) -> str:
        await self._set_remote(sdp, "offer")
        return await self._set_local(await self._pc.createAnswer())

    async def _set_local(self, description: RTCSessionDescription) -> str:
        """Gather first (setLocalDescription would), so that excluded candidates are gone
        from the connection before the description lists its candidates."""
        sctp = self._pc.sctp
        if sctp is not None and self._excluded:
            gatherer = sctp.transport.transport.iceGatherer
            await gatherer.gather()
            await self._forget_excluded(gatherer._connection)
        await self._pc.setLocalDescription(description)
        return self._pc.localDescription.sdp

    async def _forget_excluded(self, connection: Connection) -> None:
        """Remove local candidates inside the excluded networks from aioice's connection: the
        candidates (reflexive ones whose base is excluded too), the sockets they were gathered
        on, and checks that arrived on those early. Private attributes, read in aioice 0.13:
        nothing public removes a candidate."""

        def excluded(candidate: Candidate) -> bool:
            return candidates.candidate_excluded(candidate.to_sdp(), self._excluded)

        for candidate in connection.local_candidates:
            if excluded(candidate):
                candidates.dropped(f"candidate:{candidate.to_sdp()}", "local")
                connection._local_candidates.remove(candidate)
        for protocol in [p for p in connection._protocols if excluded(p.local_candidate)]:
            connection._protocols.remove(protocol)
            await protocol.close()
        early = [check for check in connection._early_checks if check[2] in connection._protocols]
        connection._early_checks.clear()
        connection._early_checks.extend(early)

    async def accept_answer(self, sdp: str) -> None:
        await self._set_remote(sdp, "answer")

    async def _set_remote(self, sdp: str, kind: str) -> None:
        sdp = candidates.remote_description(sdp, self._excluded)
        await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        self._limit_streams()
        if match := _MID.search(sdp):
            self._remote_mid = match.group(1)

    async def add_candidate(self, candidate: str) -> None:
        line = candidate_line(candidate)
        if not candidates.remote_candidate_kept(line, self._excluded):
            return
        parsed = candidate_from_sdp(line.removeprefix("candidate:"))
        parsed.sdpMid = self._remote_mid
        parsed.sdpMLineIndex = 0
        await self._pc.addIceCandidate(parsed)

    async def close(self) -> None:
        await self._pc.close()


def _nominated_pair(pc: RTCPeerConnection) -> Any:
    sctp = pc.sctp
    if sctp is None:
        return None
    connection = getattr(sctp.transport.transport.iceGatherer, "_connection", None)
    nominated = getattr(connection, "_nominated", None)
    return nominated.get(1) if isinstance(nominated, dict) else None


def _candidate_address(candidate: Any) -> str | None:
    host, port = getattr(candidate, "host", None), getattr(candidate, "port", None)
    if host is None or port is None:
        return None
    return endpoint(str(host), int(port))


class AiortcBackend:
    def __init__(self) -> None:
        self._told_mtu = False

    @property
    def name(self) -> str:
        return "aiortc"

    def peer_connection(self, config: PeerConfig, events: PeerEvents) -> AiortcPeerConnection:
        if config.mtu is not None and not self._told_mtu:
            self._told_mtu = True  # aiortc's SCTP chunk size is a module constant
            log.warning("The aiortc backend ignores --webrtc-mtu", mtu=config.mtu)
        return AiortcPeerConnection(config, events)
