"""`weron forward`: rootless TCP and UDP port forwarding over a community (docs/forwarding.md).

A member exposes local ports (``--expose 22,8080``: nothing else is reachable) and listens on
local addresses whose connections go to a named member's exposed port (``--listen
127.0.0.1:2222 --to NAME:22``); either side, or both. Members are named through the name
negotiation on ``weron/forward/id``. Each TCP connection has a data channel to itself (opened on
the existing peer connection, or an idle one reused: see weron.net.port_forward); the UDP flows
to one port of one peer share an unordered channel.

Backpressure both ways, each direction on its own: nothing more is read from a socket while
the channel's send buffer is full or the peer's window is used up (TCP then slows the local
sender); the peer's bytes wait for a slow local reader in a queue that the window bounds, and
the window granted back grows only as bytes reach the socket (so the peer stops sending long
before the engine's queue of unread messages could stall its threads). Frames are received
as they come, so a reader that does not read in one direction never holds back the WINDOWs
of the other. UDP drops datagrams when a buffer is full, as a congested link would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import secrets
import socket
import struct
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol, cast

from weron.apps.join import JoinConfig
from weron.apps.peering import PeerAppError
from weron.log import LogQuota, get_logger
from weron.net import port_forward as proto
from weron.peers import Peer
from weron.peers.named import NamedAdapter
from weron.webrtc import (
    Backend,
    ChannelClosedError,
    ChannelLimitError,
    ChannelOptions,
    ChannelSpec,
    DataChannel,
)

log = get_logger(__name__)

ID_CHANNEL: Final = proto.ID_CHANNEL

DEFAULT_MAX_CONNECTIONS: Final = 256
UDP_IDLE: Final = 120.0  # seconds without a datagram either way before a UDP flow ends
UDP_CHANNEL: Final = ChannelOptions(ordered=False, max_retransmits=0)
_CHUNK: Final = 65_535  # bytes read from a socket at a time: one DATA frame
_UDP_WAITING: Final = 64  # datagrams kept while the UDP channel opens
_FAREWELL: Final = 5.0  # seconds a last frame gets to leave before its channel closes
# What a peer may have sent on a TCP channel that we have not handled yet: the window's DATA
# (2 MiB in 512 frames at most) and as much again of others; a peer with more breaks the
# protocol.
_UNHANDLED: Final = 2 * proto.WINDOW // proto.MIN_COST  # frames
_UNHANDLED_BYTES: Final = 2 * proto.WINDOW


@dataclass(slots=True)
class ForwardConfig:
    join: JoinConfig
    names: Sequence[str]
    expose: Sequence[str] = ()
    listen: Sequence[str] = ()
    to: Sequence[str] = ()
    id_channel: str = proto.ID_CHANNEL
    kicks: float = 5.0
    max_connections: int = DEFAULT_MAX_CONNECTIONS


@dataclass(slots=True)
class Counters:
    """Connections and flows by fate; logged when the forwarder stops."""

    served: int = 0  # channels from peers that reached an exposed target
    refused: int = 0  # channels from peers refused (not exposed, too many, malformed)
    unreachable: int = 0  # exposed target refused the connection
    forwarded: int = 0  # local connections and flows carried to a peer
    failed: int = 0  # local connections and flows that could not reach the peer
    reset: int = 0  # connections ended by a reset (either side, or the peer gone)
    dropped: int = 0  # UDP datagrams dropped (buffer full, too big, channel opening)


@dataclass(slots=True)
class Outcome:
    """How a stream ended: the peer's ERROR if it sent one (or broke the protocol), and
    whether the channel is free for the next stream (both CLOSEs went through)."""

    error: proto.Error | None = None
    reusable: bool = False


class ReadAhead:
    """A TCP channel read as its frames arrive, whatever its user is doing (connecting to the
    exposed target, or sending to a peer that does not read): unread, they would pile up in
    aiortc's queue without bound, or stall libdatachannel's worker threads, which every
    connection shares, past 1,024. A peer that has more than _UNHANDLED frames or
    _UNHANDLED_BYTES waiting breaks the protocol: the channel is closed (logged)."""

    def __init__(self, channel: DataChannel, peer: str, log_quota: LogQuota) -> None:
        self.channel = channel
        self._peer = peer
        self._quota = log_quota
        self._frames: asyncio.Queue[bytes | None] = asyncio.Queue()  # None: the channel closed
        self._bytes = 0  # in _frames

    async def read(self) -> None:
        """Until the channel closes (run as a task). The engine hands over each frame as it
        arrives (a burst at one wake-up of the loop); only the close comes through receive()."""
        self.channel.set_receiver(self._arrived)
        try:
            while True:
                await self.channel.receive()
        except ChannelClosedError:
            pass
        finally:
            self._frames.put_nowait(None)

    def _arrived(self, message: bytes) -> None:
        if self._frames.qsize() < _UNHANDLED and self._bytes + len(message) <= _UNHANDLED_BYTES:
            self._bytes += len(message)
            self._frames.put_nowait(message)
            return
        _peer_log(
            self._quota,
            logging.WARNING,
            "Closing a forward channel: the peer sent more than the protocol allows",
            self._peer,
            frames=self._frames.qsize(),
            bytes=self._bytes,
        )
        self.channel.close()  # later arrivals are discarded

    @property
    def label(self) -> str:
        return self.channel.label

    @property
    def max_message_size(self) -> int:
        return self.channel.max_message_size

    async def send(self, message: bytes) -> None:
        await self.channel.send(message)

    async def drain(self) -> None:
        await self.channel.drain()

    def send_nowait(self, message: bytes) -> bool:
        return self.channel.send_nowait(message)

    async def receive(self) -> bytes:
        message = await self._frames.get()
        if message is None:
            self._frames.put_nowait(None)  # every later receive() sees the end too
            raise ChannelClosedError(f"channel {self.label!r} is closed")
        self._bytes -= len(message)
        return message

    def close(self) -> None:
        self.channel.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close the local socket with a reset (RST), so that its user sees the failure."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _say_last(conn: DataChannel, frame: bytes) -> None:
    """Send a last frame and let it leave; a peer already gone changes nothing."""
    with contextlib.suppress(ChannelClosedError, TimeoutError):
        async with asyncio.timeout(_FAREWELL):
            await conn.send(frame)
            await conn.drain()


async def finish(conn: ReadAhead, stream: proto.Stream) -> bool:
    """Read the rest of a stream whose local side is gone, up to the peer's CLOSE, however
    late it comes (the channel then carries the next stream: closing it would free nothing
    with libdatachannel); False if the channel closed first."""
    try:
        while not stream.done:
            reaction = stream.receive(await conn.receive())
            for frame in reaction.send:
                await conn.send(frame)
    except ChannelClosedError:
        return False
    return True


async def splice(
    conn: ReadAhead,
    stream: proto.Stream,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> Outcome:
    """Carry a TCP connection over its channel both ways until both CLOSEs went through, then
    close the socket (with a reset if the stream was aborted either way). Raises
    ``ChannelClosedError`` when the peer is gone (the caller resets the socket).

    Three tasks: socket to channel, channel to socket, and this one, which receives every
    frame as it comes. So a local reader that does not read stops only the peer's sender (we
    grant no WINDOW), never our own: the peer's WINDOWs keep arriving. What waits for the
    socket is bounded by the window."""
    outcome = Outcome()
    lock = asyncio.Lock()  # frames leave in the order the stream made them
    chunk = max(1, min(conn.max_message_size - 1, _CHUNK))
    socket_gone = False
    credit = asyncio.Event()  # a WINDOW came
    pending: asyncio.Queue[bytes | None] = asyncio.Queue()  # the peer's DATA; None: its END

    async def send(frames: list[bytes]) -> None:
        async with lock:
            for frame in frames:
                await conn.send(frame)

    def local_failure(exc: OSError) -> list[bytes]:
        nonlocal socket_gone
        socket_gone = True
        _reset(writer)
        return stream.local_error(proto.ErrorCode.RESET, str(exc) or type(exc).__name__)

    async def upstream() -> None:
        try:
            while True:
                while not stream.room():  # the peer's socket is slow: wait for its WINDOW
                    credit.clear()
                    await credit.wait()
                data = await reader.read(min(chunk, stream.room()))
                async with lock:
                    if not stream.sending:
                        return
                    for frame in [stream.data(data)] if data else stream.local_eof():
                        await conn.send(frame)
                    if not data:
                        return
        except OSError as exc:
            if isinstance(exc, ChannelClosedError):
                raise
            await send(local_failure(exc))

    async def downstream() -> None:
        while (payload := await pending.get()) is not None:
            if socket_gone:  # upstream told the failure (it may be sending it): nothing to add
                return
            try:
                if writer.transport.is_closing():  # uvloop raises RuntimeError on a write
                    raise ConnectionResetError("the connection closed")
                writer.write(payload)
                await writer.drain()
            except OSError as exc:
                if socket_gone:
                    return
                await _stop(up)  # before an abort's frames: nothing of ours may follow them
                await send(local_failure(exc))
                return
            await send(stream.written(len(payload)))
        if writer.can_write_eof() and not writer.transport.is_closing():
            with contextlib.suppress(OSError):
                writer.write_eof()

    up = asyncio.create_task(upstream())
    down = asyncio.create_task(downstream())
    try:
        while not stream.done:
            _raise_from(up)  # the peer gone while we were sending
            _raise_from(down)
            if socket_gone:
                outcome.reusable = await finish(conn, stream)
                return outcome
            reaction = stream.receive(await _receive_or_fail(conn, (up, down)))
            if reaction.reset is not None:
                outcome.error = reaction.reset
                await _stop(up)
                await _stop(down)
                socket_gone = True
                _reset(writer)
            await send(reaction.send)
            if reaction.credit:
                credit.set()
            if reaction.write:
                pending.put_nowait(reaction.write)
            if reaction.shutdown:
                pending.put_nowait(None)
        await down  # what the peer sent reaches the socket before it closes
        outcome.reusable = True
    finally:
        await _stop(up)
        await _stop(down)
    if not socket_gone:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return outcome


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for its end. Its failure (the channel or the socket gone) is
    not raised again: the stream loop raised it already (``_raise_from``), and raising it
    from splice's cleanup left the other task running, never stopped or awaited."""
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, OSError):
        await task


def _raise_from(task: asyncio.Task[None]) -> None:
    """Raise what ended ``task``, if it failed."""
    if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
        raise exc


async def _receive_or_fail(conn: ReadAhead, tasks: tuple[asyncio.Task[None], ...]) -> bytes:
    """The next message, or the failure of one of ``tasks`` (the channel closed under it) if
    first."""
    receiving = asyncio.ensure_future(conn.receive())
    try:
        while True:
            running = {task for task in tasks if not task.done()}
            await asyncio.wait({receiving, *running}, return_when=asyncio.FIRST_COMPLETED)
            if receiving.done():
                return receiving.result()
            for task in tasks:
                _raise_from(task)
    finally:
        receiving.cancel()


def _replier(conn: DataChannel, flow: int, counters: Counters) -> Callable[[bytes], None]:
    def reply(data: bytes) -> None:
        _send_datagram(conn, flow, data, counters)

    return reply


class _UdpFlow(asyncio.DatagramProtocol):
    """The serving side's socket of one UDP flow: what it receives goes back to the peer."""

    def __init__(self, reply: Callable[[bytes], None]) -> None:
        self.reply = reply
        self.last = asyncio.get_running_loop().time()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.last = asyncio.get_running_loop().time()
        self.reply(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error", error=str(exc))


def _peer_log(
    quota: LogQuota, level: int, message: str, peer: str, kind: object = None, **fields: Any
) -> None:
    """A line that a peer's messages cause, within ``quota`` for the peer, the message and its
    ``kind`` (lines held back are counted)."""
    held = quota.take((peer, message, kind), asyncio.get_running_loop().time())
    if held is None:
        return
    if held:
        fields["held_back"] = held
    log.at(level, message, peer=peer, **fields)


async def _udp_frames(conn: DataChannel, peer: str, quota: LogQuota) -> AsyncIterator[proto.Frame]:
    """The frames of a UDP channel until it closes; one that does not decode is logged and
    skipped, as a datagram that fails its checksum would be."""
    while True:
        try:
            yield proto.decode(await conn.receive())
        except proto.ForwardError as exc:
            _peer_log(quota, logging.INFO, "Ignoring UDP frame", peer, reason=str(exc))


def _send_datagram(conn: DataChannel, flow: int, data: bytes, counters: Counters) -> None:
    frame = proto.datagram_frame(flow, data)
    try:
        if len(frame) > conn.max_message_size or not conn.send_nowait(frame):
            counters.dropped += 1
    except ChannelClosedError:
        counters.dropped += 1


class ForwardPeers(Protocol):
    """What forwarding asks of the :class:`~weron.peers.named.NamedAdapter` (a fake in tests)."""

    def peers(self) -> AsyncIterator[Peer]: ...

    async def until_named(self, name: str) -> str: ...

    async def open_channel(
        self, name: str, spec: ChannelSpec, late: Callable[[DataChannel], None] | None = None
    ) -> Peer: ...

    def forget_channel(self, channel: DataChannel) -> None: ...


class PortForwarder:
    """Both roles of one `weron forward`: serving peers' channels, and the local listeners.
    The adapter comes in: tests give a fake one."""

    def __init__(
        self,
        config: ForwardConfig,
        adapter: ForwardPeers,
        exposed: dict[tuple[proto.Transport, int], proto.Exposed],
    ) -> None:
        self._config = config
        self._adapter = adapter
        self._admission = proto.Admission(exposed, config.max_connections)
        self.max_flows = config.max_connections
        # How long a UDP listener drops datagrams after the peer refused its flows.
        self.refusal_pause = config.join.adapter.timeout
        self.counters = Counters()
        self.quota = LogQuota()  # of the lines a peer's messages cause
        self._serial = secrets.randbits(31)  # labels need not be guessable by anyone
        # TCP channels free for a stream, by peer id (not name: a member restarted under its
        # name is another peer, its old connection dead), each with the task that watches it.
        self._idle: dict[str, dict[ReadAhead, asyncio.Task[None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: list[_UdpListener] = []
        # A member's name takes --timeout + --kicks to be claimed after it reaches the
        # signaler: a connection accepted meanwhile waits that long for it.
        self._wait = 2 * config.join.adapter.timeout + config.kicks

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for listener in self._udp:
            listener.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def done_with(self, conn: DataChannel | ReadAhead) -> None:
        """Close a channel that cannot carry another stream; never one that is merely free
        (with libdatachannel a closed channel keeps its stream until the connection closes)."""
        conn.close()
        self._adapter.forget_channel(conn.channel if isinstance(conn, ReadAhead) else conn)

    def read_ahead(self, peer: str, channel: DataChannel) -> ReadAhead:
        """A TCP channel, read from now on as its frames arrive (see ReadAhead)."""
        reading = ReadAhead(channel, peer, self.quota)
        self.spawn(reading.read())
        return reading

    # Serving: channels peers open to our exposed ports

    async def accept_peers(self) -> None:
        async for peer in self._adapter.peers():
            self.spawn(self._serve(peer))

    async def _serve(self, peer: Peer) -> None:
        try:
            request = proto.parse_label(peer.channel_id)
        except proto.ForwardError as exc:
            self._refuse_channel(peer, str(exc))
            return
        try:
            if request.transport is proto.Transport.TCP:
                await self._serve_streams(peer, self.read_ahead(peer.peer_id, peer.conn))
            else:
                await self._serve_datagrams(peer, request.number)
        except ChannelClosedError:
            pass
        finally:
            self.done_with(peer.conn)

    def _warn(self, message: str, peer: str, kind: object = None, **fields: Any) -> None:
        _peer_log(self.quota, logging.WARNING, message, peer, kind, **fields)

    def _refuse_channel(self, peer: Peer, reason: str) -> None:
        self.counters.refused += 1
        self._warn(
            "Refusing a forward channel", peer.peer_id, channel=peer.channel_id[:80], reason=reason
        )
        self.done_with(peer.conn)

    async def _serve_streams(self, peer: Peer, conn: ReadAhead) -> None:
        """One stream after another on a peer's TCP channel, until it closes."""
        while True:
            message = await conn.receive()
            try:
                frame = proto.decode(message)
                if not isinstance(frame, proto.Open):
                    raise proto.ForwardError(f"{type(frame).__name__.upper()} outside a stream")
            except proto.ForwardError as exc:
                self._refuse_channel(peer, str(exc))
                return
            stream = proto.Stream()
            exposed = self._admission.admit(peer.peer_id, proto.Transport.TCP, frame.port)
            if isinstance(exposed, proto.Refusal):
                self.counters.refused += 1
                self._warn(
                    "Refusing a connection",
                    peer.peer_id,
                    exposed.code,
                    port=frame.port,
                    reason=exposed.reason,
                )
                reusable = await self._refuse(conn, stream, exposed.code, exposed.reason)
            else:
                try:
                    reusable = await self._serve_tcp(peer.peer_id, conn, stream, exposed)
                finally:
                    self._admission.release(peer.peer_id)
            if not reusable:
                return

    async def _refuse(
        self, conn: ReadAhead, stream: proto.Stream, code: proto.ErrorCode, reason: str
    ) -> bool:
        for frame in stream.local_error(code, reason):
            await conn.send(frame)
        return await finish(conn, stream)

    async def _serve_tcp(
        self, peer: str, conn: ReadAhead, stream: proto.Stream, exposed: proto.Exposed
    ) -> bool:
        target = exposed.target
        try:
            async with asyncio.timeout(self._config.join.adapter.timeout):
                reader, writer = await asyncio.open_connection(target.host, target.port)
        except (OSError, TimeoutError) as exc:
            self.counters.unreachable += 1
            reason = f"cannot connect to {target}: {exc or 'timed out'}"
            self._warn("Exposed port unreachable", peer, reason=reason)
            return await self._refuse(conn, stream, proto.ErrorCode.UNREACHABLE, reason)
        self.counters.served += 1
        log.debug("Serving a connection", peer=peer, target=str(target))
        outcome = await self._carry(peer, conn, stream, reader, writer)
        return outcome.reusable

    async def _carry(
        self,
        peer: str,
        conn: ReadAhead,
        stream: proto.Stream,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> Outcome:
        """Splice; a peer gone resets the socket."""
        try:
            outcome = await splice(conn, stream, reader, writer)
        except BaseException as exc:
            _reset(writer)
            if isinstance(exc, ChannelClosedError):
                self.counters.reset += 1
                log.info("Connection reset: peer gone", peer=peer)
                return Outcome()
            raise
        if outcome.error is not None or stream.aborted is not None:
            self.counters.reset += 1
            if stream.aborted is not None:
                reason = stream.aborted.reason
                log.debug(
                    "Connection reset",
                    peer=peer,
                    code=stream.aborted.code.name.lower(),
                    reason=reason,
                )
        return outcome

    async def _serve_datagrams(self, peer: Peer, port: int) -> None:
        """A peer's UDP channel to ``port``: a socket per flow, each ended after UDP_IDLE."""
        exposed = self._admission.admit(peer.peer_id, proto.Transport.UDP, port)
        if isinstance(exposed, proto.Refusal):
            self.counters.refused += 1
            self._warn("Refusing a UDP channel", peer.peer_id, port=port, reason=exposed.reason)
            await _say_last(peer.conn, proto.error_frame(exposed.code, exposed.reason))
            return
        conn, target = peer.conn, exposed.target
        loop = asyncio.get_running_loop()
        flows: dict[int, tuple[asyncio.DatagramTransport, _UdpFlow]] = {}
        self.counters.served += 1
        release = functools.partial(self._admission.release_flow, peer.peer_id)
        sweeper = asyncio.create_task(_sweep_flows(flows, release))
        try:
            async for frame in _udp_frames(conn, peer.peer_id, self.quota):
                if not isinstance(frame, proto.Datagram):
                    continue
                entry = flows.get(frame.flow)
                if entry is None:
                    if not self._admission.admit_flow(peer.peer_id):
                        self.counters.dropped += 1
                        self._warn(
                            "Dropping new UDP flows: too many from the peer",
                            peer.peer_id,
                            port=port,
                            most=self.max_flows,
                        )
                        continue
                    try:
                        entry = await loop.create_datagram_endpoint(
                            functools.partial(_UdpFlow, _replier(conn, frame.flow, self.counters)),
                            remote_addr=(target.host, target.port),
                        )
                    except OSError as exc:
                        release()
                        self.counters.unreachable += 1
                        self._warn(
                            "Exposed port unreachable",
                            peer.peer_id,
                            reason=f"cannot reach {target}: {exc}",
                        )
                        continue
                    flows[frame.flow] = entry
                entry[1].last = loop.time()
                entry[0].sendto(frame.payload)
        finally:
            sweeper.cancel()
            for transport, _ in flows.values():
                transport.close()
                release()
            self._admission.release(peer.peer_id)

    # Listening: local connections and flows to a named peer's port

    async def listen(self, forwards: Sequence[proto.Forward]) -> None:
        """Bind every ``--listen`` address; a bind that fails ends the app (a user mistake)."""
        loop = asyncio.get_running_loop()
        for forward in forwards:
            where = f"{forward.listen}/{forward.transport}"
            try:
                if forward.transport is proto.Transport.TCP:
                    server = await asyncio.start_server(
                        self._tcp_handler(forward), forward.listen.host, forward.listen.port
                    )
                    self._servers.append(server)
                else:
                    _, listener = await loop.create_datagram_endpoint(
                        functools.partial(_UdpListener, self, forward),
                        local_addr=(forward.listen.host, forward.listen.port),
                    )
                    self._udp.append(listener)
            except OSError as exc:
                raise PeerAppError(f"cannot listen on {where}: {exc.strerror or exc}") from None
            log.info("Forwarding", listen=where, to=f"{forward.peer}:{forward.port}")

    def _tcp_handler(
        self, forward: proto.Forward
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:  # cancelled on the way out, with the other tasks
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            try:
                await self._forward_tcp(forward, reader, writer)
            except asyncio.CancelledError:
                # The way out (close()): ended here, not raised. asyncio before 3.12.x asks a
                # cancelled handler task for its exception and logs it with a traceback.
                _reset(writer)
            except BaseException:
                _reset(writer)
                raise

        return handle

    async def _forward_tcp(
        self, forward: proto.Forward, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        opened = await self._start_stream(forward)
        if opened is None:
            _reset(writer)
            return
        peer_id, conn = opened
        stream = proto.Stream()
        outcome = await self._carry(forward.peer, conn, stream, reader, writer)
        if outcome.reusable:
            self._keep(peer_id, conn)
        else:
            self.done_with(conn)
        error = outcome.error
        if error is not None and error.code is not proto.ErrorCode.RESET:
            log.warning(
                "Peer refused the connection",
                peer=forward.peer,
                port=forward.port,
                code=error.code.name.lower(),
                reason=error.reason,
            )

    async def _start_stream(self, forward: proto.Forward) -> tuple[str, ReadAhead] | None:
        """The id of the peer named in ``forward`` and a channel to it with our OPEN sent on
        it: an idle one, else a new one; None (with a warning) if the peer is unknown or
        gone."""
        peer_id = await self.member(forward)
        if peer_id is None:
            return None
        idle = self._idle.get(peer_id, {})
        while idle:
            conn, watcher = idle.popitem()
            watcher.cancel()
            try:
                await conn.send(proto.open_frame(forward.port))
            except ChannelClosedError:
                self.done_with(conn)
                continue
            self.counters.forwarded += 1
            return peer_id, conn
        late = functools.partial(self._opened_late, peer_id)
        peer = await self.open(forward, ChannelSpec(self._next_tcp_label()), late)
        if peer is None:
            return None
        conn = self.read_ahead(forward.peer, peer.conn)
        try:
            await conn.send(proto.open_frame(forward.port))
        except ChannelClosedError:
            self.counters.failed += 1
            self.done_with(conn)
            return None
        return peer_id, conn

    def _keep(self, peer_id: str, conn: ReadAhead) -> None:
        """Keep a free channel for the next stream to ``peer_id``. Every one is kept, however
        many: a peer connection then has as many as the most connections ever open to the
        peer at once (at most 512 a side, the engines' limit)."""
        self._idle.setdefault(peer_id, {})[conn] = self.spawn(self._watch_idle(peer_id, conn))

    def _opened_late(self, peer_id: str, conn: DataChannel) -> None:
        """A TCP channel that opened after its connection gave up waiting (reset, logged):
        unused, it is free for the next one."""
        log.debug("A forward channel opened late: kept for the next connection", peer=peer_id)
        self._keep(peer_id, self.read_ahead(peer_id, conn))

    async def _watch_idle(self, peer_id: str, conn: ReadAhead) -> None:
        """An idle channel carries nothing until our next OPEN: a peer that writes on it
        breaks the protocol (and, unread, would fill the engine's queue), so it goes."""
        try:
            await conn.receive()
            self._warn("Dropping a forward channel the peer wrote on between streams", peer_id)
        except ChannelClosedError:
            pass
        idle = self._idle.get(peer_id, {})
        idle.pop(conn, None)
        if not idle:  # the peer's connection is gone, or it had no other
            self._idle.pop(peer_id, None)
        self.done_with(conn)

    def _next_tcp_label(self) -> str:
        self._serial += 1
        return proto.tcp_label(self._serial)

    async def member(self, forward: proto.Forward) -> str | None:
        """The id of the member named in ``forward``, waiting for one that answers (at
        startup, or while a member restarted after a crash claims its name again); None,
        with a warning, if none comes in time."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._wait):
                return await self._adapter.until_named(forward.peer)
        self.counters.failed += 1
        log.warning(
            "Cannot forward: unknown peer or peer gone",
            peer=forward.peer,
            port=forward.port,
            reason=f"no connected member is named {forward.peer!r} and answers "
            f"(waited {self._wait:g}s)",
        )
        return None

    async def open(
        self, forward: proto.Forward, spec: ChannelSpec, late: Callable[[DataChannel], None]
    ) -> Peer | None:
        """A channel to the peer named in ``forward``, once one answers (see member); None,
        with a warning, if none does or the channel does not open in time (``late`` then
        takes it if it opens later)."""
        if await self.member(forward) is None:
            return None
        try:
            peer = await self._adapter.open_channel(forward.peer, spec, late)
        except ChannelLimitError as exc:
            self.counters.failed += 1
            log.warning(
                "Cannot forward: no data channel left on the connection to the peer",
                peer=forward.peer,
                port=forward.port,
                reason=str(exc),
            )
            return None
        except ConnectionError as exc:
            self.counters.failed += 1
            log.warning(
                "Cannot forward: unknown peer or peer gone",
                peer=forward.peer,
                port=forward.port,
                reason=str(exc),
            )
            return None
        self.counters.forwarded += 1
        return peer


async def _sweep_flows(
    flows: dict[int, tuple[asyncio.DatagramTransport, _UdpFlow]], release: Callable[[], None]
) -> None:
    """End the flows idle for UDP_IDLE, each ``release``d."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(UDP_IDLE / 4)
        for flow, (transport, protocol) in list(flows.items()):
            if loop.time() - protocol.last > UDP_IDLE:
                transport.close()
                del flows[flow]
                release()


class _UdpListener(asyncio.DatagramProtocol):
    """A ``--listen .../udp`` socket: its flows (one per source address) share one channel to
    the peer, opened with the first datagram (and again after the peer went)."""

    def __init__(self, forwarder: PortForwarder, forward: proto.Forward) -> None:
        self._forwarder = forwarder
        self._forward = forward
        self._transport: asyncio.DatagramTransport | None = None
        self._conn: DataChannel | None = None
        self._opening = False
        self._refused_until = 0.0
        self._waiting: list[tuple[int, bytes]] = []
        self._flows: dict[tuple[str | Any, int], int] = {}  # source address -> flow id
        self._sources: dict[int, tuple[tuple[str | Any, int], float]] = {}  # and back, last use
        self._next_flow = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A DatagramTransport, though uvloop's does not say so by inheritance.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._conn is not None:
            self._forwarder.done_with(self._conn)

    def _flow(self, addr: tuple[str | Any, int], now: float) -> int | None:
        flow = self._flows.get(addr)
        if flow is None:
            if len(self._flows) >= self._forwarder.max_flows:
                self._expire(now)
                if len(self._flows) >= self._forwarder.max_flows:
                    return None
            flow = self._next_flow = (self._next_flow + 1) % (proto.MAX_FLOW + 1)
            self._flows[addr] = flow
        self._sources[flow] = (addr, now)
        return flow

    def _expire(self, now: float) -> None:
        for flow, (addr, last) in list(self._sources.items()):
            if now - last > UDP_IDLE:
                del self._sources[flow]
                self._flows.pop(addr, None)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        counters = self._forwarder.counters
        now = asyncio.get_running_loop().time()
        flow = self._flow(addr, now)
        if flow is None or now < self._refused_until:
            counters.dropped += 1
            return
        if self._conn is not None:
            _send_datagram(self._conn, flow, data, counters)
            return
        if len(self._waiting) < _UDP_WAITING:
            self._waiting.append((flow, data))
        else:
            counters.dropped += 1
        if not self._opening:
            self._opening = True
            self._forwarder.spawn(self._relay())

    async def _relay(self) -> None:
        """Open the channel, then carry the flows on it."""
        forward = self._forward
        try:
            peer = await self._forwarder.open(
                forward,
                ChannelSpec(proto.udp_label(forward.port), UDP_CHANNEL),
                self._opened_late,
            )
        finally:
            self._opening = False
        if peer is None:
            self._waiting.clear()
            return
        self._conn = peer.conn
        await self._carry(peer.conn)

    def _opened_late(self, conn: DataChannel) -> None:
        """A channel that opened after we gave up waiting: it carries the flows if no other
        channel does or is opening (else it is closed)."""
        if self._conn is not None or self._opening:
            self._forwarder.done_with(conn)
            return
        self._conn = conn
        self._forwarder.spawn(self._carry(conn))

    async def _carry(self, conn: DataChannel) -> None:
        """Send what waited, then hand the peer's datagrams to their sources until the channel
        closes or the peer refuses."""
        forward, counters = self._forward, self._forwarder.counters
        for flow, data in self._waiting:
            _send_datagram(conn, flow, data, counters)
        self._waiting.clear()
        try:
            async for frame in _udp_frames(conn, forward.peer, self._forwarder.quota):
                if isinstance(frame, proto.Error):
                    log.warning(
                        "Peer refused the UDP flows",
                        peer=forward.peer,
                        port=forward.port,
                        code=frame.code.name.lower(),
                        reason=frame.reason,
                    )
                    pause = self._forwarder.refusal_pause
                    self._refused_until = asyncio.get_running_loop().time() + pause
                    return
                if isinstance(frame, proto.Datagram):
                    source = self._sources.get(frame.flow)
                    if source is not None and self._transport is not None:
                        self._transport.sendto(frame.payload, source[0])
        except ChannelClosedError:
            pass
        finally:
            self._conn = None
            self._forwarder.done_with(conn)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error", error=str(exc))


async def _follow_names(adapter: NamedAdapter) -> None:
    """Our name is logged by the adapter; this only notices when the adapter fails."""
    while True:
        await adapter.next_name()


async def run(config: ForwardConfig, backend: Backend) -> None:
    """Forward until cancelled (Ctrl-C)."""
    try:
        forwards = proto.parse_forwards(config.listen, config.to)
        exposed = proto.parse_exposed(config.expose)
    except proto.ForwardError as exc:
        raise PeerAppError(str(exc)) from None
    if not forwards and not exposed:
        raise PeerAppError(
            "nothing to forward: set --expose (e.g. --expose 22) and/or --listen and --to "
            "(e.g. --listen 127.0.0.1:2222 --to NAME:22)"
        )
    adapter = NamedAdapter(
        config.join.raddr,
        config.join.community,
        config.join.password,
        config.join.key,
        [],
        backend,
        names=config.names,
        id_channel=config.id_channel,
        kicks=config.kicks,
        config=dataclasses.replace(config.join.adapter, later_labels=proto.is_forward_label),
    )
    forwarder = PortForwarder(config, adapter, exposed)
    for each in exposed.values():
        log.info("Exposing", port=f"{each.port}/{each.transport}", target=str(each.target))
    try:
        await forwarder.listen(forwards)
        await adapter.open()
        jobs = [
            asyncio.create_task(_follow_names(adapter)),
            asyncio.create_task(forwarder.accept_peers()),
        ]
        try:
            done, _ = await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
            for job in done:
                job.result()
        finally:
            for job in jobs:
                job.cancel()
    finally:
        await forwarder.close()
        await adapter.close()
        log.info("Stopped", **asdict(forwarder.counters))
