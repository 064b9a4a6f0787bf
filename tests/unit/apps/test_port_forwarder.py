"""`weron forward` without WebRTC (``PortForwarder`` over a fake adapter). Serving: what a
peer's channel gets for a label or a port it may not use, for an exposed port nobody listens
on, and for a connection carried to a local TCP server. Listening: a channel that comes late
(its open, or the peer's CLOSE after a reset) is kept for the next connection. The frames
themselves are weron.net.port_forward's (tests/unit/net/test_port_forward.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest
from tests.unit.fakes import FakeAdapter, FakeChannel, until

from weron.apps import port_forward
from weron.apps.join import JoinConfig
from weron.log import LogQuota
from weron.net import port_forward as proto
from weron.peers import Peer
from weron.peers.adapter import AdapterConfig
from weron.webrtc import ChannelClosedError, ChannelSpec, DataChannel


def free_port() -> int:
    """A local port nobody listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Serving:
    """A forwarder exposing ``expose``; peers arrive through its fake adapter."""

    def __init__(self, *expose: str, most: int = port_forward.DEFAULT_MAX_CONNECTIONS) -> None:
        join = JoinConfig("ws://unused", "c", "p", "k", AdapterConfig(timeout=0.2))
        config = port_forward.ForwardConfig(
            join, names=["home"], expose=expose, max_connections=most
        )
        self.adapter = FakeAdapter()
        self.forwarder = port_forward.PortForwarder(
            config,
            cast(port_forward.ForwardPeers, self.adapter),
            proto.parse_exposed(expose),
        )

    def arrive(self, label: str, *messages: bytes) -> FakeChannel:
        channel = FakeChannel(*messages, linger=True)
        self.adapter.arriving.put_nowait(Peer("bob", label, channel))
        return channel


@pytest.fixture
async def serving() -> AsyncIterator[Callable[..., Serving]]:
    made: list[tuple[Serving, asyncio.Task[None]]] = []

    def make(*expose: str, most: int = port_forward.DEFAULT_MAX_CONNECTIONS) -> Serving:
        each = Serving(*expose, most=most)
        made.append((each, asyncio.create_task(each.forwarder.accept_peers())))
        return each

    yield make
    for each, accepting in made:
        accepting.cancel()
        await each.forwarder.close()


def frames(channel: FakeChannel) -> list[proto.Frame]:
    return [proto.decode(message) for message in channel.sent]


async def test_a_channel_whose_label_is_not_a_forward_is_refused_and_closed(
    serving: Callable[..., Serving],
) -> None:
    home = serving("22")
    channel = home.arrive("weron/forward/tcp/not-a-number")
    await until(lambda: channel.closed)
    assert home.forwarder.counters.refused == 1
    assert home.adapter.forgotten == [channel]


async def test_a_port_not_exposed_gets_an_error_and_nothing_is_connected(
    serving: Callable[..., Serving],
) -> None:
    home = serving("22")
    channel = home.arrive(proto.tcp_label(1), proto.open_frame(8080))
    await until(lambda: bool(channel.sent))
    error = frames(channel)[0]
    assert isinstance(error, proto.Error) and error.code is proto.ErrorCode.NOT_EXPOSED
    assert (home.forwarder.counters.refused, home.forwarder.counters.served) == (1, 0)
    await asyncio.sleep(0.4)  # past --timeout: the peer's CLOSE frees the channel for its next
    assert not channel.closed  # stream, so it is awaited for as long as the channel is open


async def test_an_exposed_port_nobody_listens_on_is_unreachable(
    serving: Callable[..., Serving],
) -> None:
    port = free_port()
    home = serving(str(port))
    channel = home.arrive(proto.tcp_label(1), proto.open_frame(port))
    await until(lambda: bool(channel.sent))
    error = frames(channel)[0]
    assert isinstance(error, proto.Error) and error.code is proto.ErrorCode.UNREACHABLE
    assert home.forwarder.counters.unreachable == 1


async def test_a_connection_is_carried_to_the_exposed_local_server_and_back(
    serving: Callable[..., Serving],
) -> None:
    async def shout(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((await reader.read()).upper())  # all of it, up to our END
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(shout, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    home = serving(str(port))
    channel = home.arrive(
        proto.tcp_label(1), proto.open_frame(port), proto.data_frame(b"ping"), proto.END_FRAME
    )
    await until(lambda: proto.End() in frames(channel))
    channel.push(proto.CLOSE_FRAME)
    await until(lambda: proto.Close() in frames(channel))
    data = b"".join(f.payload for f in frames(channel) if isinstance(f, proto.Data))
    assert data == b"PING"
    assert home.forwarder.counters.served == 1
    server.close()
    await server.wait_closed()


async def test_a_peer_gets_at_most_max_connections_udp_flows_over_all_its_channels(
    serving: Callable[..., Serving], caplog: pytest.LogCaptureFixture
) -> None:
    """A socket per flow: a member with 3 allowed and 4 flows on each of 2 channels to the
    same port gets 3 sockets (it used to get 3 per channel, up to --max-connections²)."""
    caplog.set_level(logging.WARNING)
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target.setblocking(False)
    port = target.getsockname()[1]
    home = serving(f"{port}/udp", most=3)
    channels = [
        home.arrive(
            proto.udp_label(port),
            *(proto.datagram_frame(flow, b"hi") for flow in range(4 * number, 4 * number + 4)),
        )
        for number in range(2)
    ]
    await until(lambda: home.forwarder.counters.dropped == 5)
    sources = set()
    with contextlib.suppress(BlockingIOError):
        while True:
            sources.add(target.recvfrom(10)[1])
    assert len(sources) == 3
    assert "Dropping new UDP flows: too many from the peer" in caplog.text
    for channel in channels:
        channel.close()
    target.close()


async def test_a_peer_refused_again_and_again_gets_a_few_lines_not_one_each(
    serving: Callable[..., Serving], caplog: pytest.LogCaptureFixture
) -> None:
    """OPEN and CLOSE to a port not exposed, a hundred times without waiting: each is
    refused, ten are logged (the peer's messages must not decide how much we write)."""
    caplog.set_level(logging.WARNING)
    home = serving("22")
    home.arrive(proto.tcp_label(1), *[proto.open_frame(23), proto.CLOSE_FRAME] * 100)
    await until(lambda: home.forwarder.counters.refused == 100)
    assert caplog.text.count("Refusing a connection") == 10


def test_data_for_a_socket_closed_under_the_stream_resets_it_and_keeps_the_channel() -> None:
    """On uvloop (as the CLI runs), writing to a closed transport raises RuntimeError, not an
    OSError: the peer's DATA for a socket that closed under the stream (its reset seen by the
    other direction first) killed the stream's task, and the exposing member closed the
    channel without a word to the opener, which then sent its next OPEN into the void (seen:
    iperf3's second run through `weron forward` hung). Now the stream is reset (ERROR), and
    the channel carries the next one."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> tuple[port_forward.Outcome, list[proto.Frame]]:
        server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        channel = FakeChannel(linger=True)
        conn = port_forward.ReadAhead(channel, "bob", LogQuota())
        reading = asyncio.create_task(conn.read())
        splicing = asyncio.create_task(port_forward.splice(conn, proto.Stream(), reader, writer))
        try:
            writer.transport.abort()  # closed under the stream
            await until(lambda: proto.End() in frames(channel))  # the reader's EOF
            channel.push(proto.data_frame(b"too late"))
            await until(lambda: proto.Close() in frames(channel) or splicing.done())
            channel.push(proto.CLOSE_FRAME)
            async with asyncio.timeout(5):
                return await splicing, frames(channel)
        finally:
            reading.cancel()
            server.close()

    outcome, sent = asyncio.Runner(loop_factory=uvloop.new_event_loop).run(scenario())
    assert outcome.reusable
    assert [type(frame) for frame in sent] == [proto.End, proto.Error, proto.Close]


class Refusing(FakeChannel):
    """A channel whose peer went away (a member suspended past --timeout): sends fail once
    ``gone`` is set."""

    gone = False

    async def send(self, message: bytes) -> None:
        if self.gone:
            raise ChannelClosedError("closed")
        await super().send(message)


async def test_a_peer_gone_mid_stream_leaves_no_task_behind() -> None:
    """The socket-to-channel task failed with the channel, and stopping it in splice's
    cleanup raised that failure again, so the channel-to-socket task was never stopped:
    "Task was destroyed but it is pending!" or "Task exception was never retrieved" with a
    traceback on stderr, after a suspended member came back."""

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x" * 1024)
        await reader.read()  # until our side closes
        writer.close()

    server = await asyncio.start_server(talk, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
    channel = Refusing(linger=True)
    channel.gone = True  # the first DATA fails
    conn = port_forward.ReadAhead(channel, "bob", LogQuota())
    reading = asyncio.create_task(conn.read())
    before = asyncio.all_tasks()
    splicing = asyncio.create_task(port_forward.splice(conn, proto.Stream(), reader, writer))
    with pytest.raises(ChannelClosedError):
        async with asyncio.timeout(5):
            await splicing
    assert asyncio.all_tasks() - before == set()
    reading.cancel()
    writer.close()
    server.close()


class Unread(FakeChannel):
    """A channel whose peer reads nothing: every send waits until the channel closes."""

    async def send(self, message: bytes) -> None:
        while not self.closed:
            await asyncio.sleep(0.01)
        raise ChannelClosedError("closed")


async def test_a_peer_that_floods_a_stream_we_cannot_answer_gets_its_channel_closed(
    serving: Callable[..., Serving], caplog: pytest.LogCaptureFixture
) -> None:
    """It reads nothing and breaks the window: our ERROR cannot leave, so the stream waits
    to send it; meanwhile its frames are still read, and past what the protocol allows
    waiting (1,024) the channel is closed. They used to wait unread: in aiortc's queue
    without bound, in libdatachannel's stalling the worker threads every connection shares."""
    caplog.set_level(logging.WARNING)
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    home = serving(str(port))
    channel = Unread(proto.open_frame(port), *[proto.data_frame(b"")] * 5000, linger=True)
    home.adapter.arriving.put_nowait(Peer("bob", proto.tcp_label(1), channel))
    await until(lambda: channel.closed)
    assert "the peer sent more than the protocol allows" in caplog.text
    await until(lambda: channel in home.adapter.forgotten)
    server.close()


async def test_big_frames_are_held_back_by_bytes_as_well(
    serving: Callable[..., Serving], caplog: pytest.LogCaptureFixture
) -> None:
    """The same with frames of 256 KiB (libdatachannel's largest): 17 of them pass what the
    window allows twice over (4 MiB), long before 1,024 frames would."""
    caplog.set_level(logging.WARNING)
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    home = serving(str(port))
    big = proto.data_frame(b"x" * (256 << 10))
    channel = Unread(proto.open_frame(port), proto.END_FRAME, *[big] * 17, linger=True)
    home.adapter.arriving.put_nowait(Peer("bob", proto.tcp_label(1), channel))
    await until(lambda: channel.closed)
    assert "the peer sent more than the protocol allows" in caplog.text
    server.close()


class OpeningAdapter:
    """Opens the channels a test hands it (``channels``); with ``late``, the next open times
    out instead (as the adapter's does) and the channel goes to ``late`` when the test says."""

    def __init__(self) -> None:
        self.channels: list[FakeChannel] = []
        self.opened: list[str] = []
        self.late: list[Callable[[DataChannel], None]] = []
        self.time_out = False
        self.forgotten: list[DataChannel] = []

    async def until_named(self, name: str) -> str:
        return "bob-id"

    async def open_channel(
        self, name: str, spec: ChannelSpec, late: Callable[[DataChannel], None] | None = None
    ) -> Peer:
        self.opened.append(spec.label)
        if self.time_out:
            assert late is not None
            self.late.append(late)
            raise ConnectionError(f"channel {spec.label!r} not open after 0.2s")
        return Peer(name, spec.label, self.channels.pop(0))

    def forget_channel(self, channel: DataChannel) -> None:
        self.forgotten.append(channel)


@pytest.fixture
async def listening() -> AsyncIterator[tuple[port_forward.PortForwarder, OpeningAdapter, int]]:
    """A forwarder listening on a free port for bob's port 22: it, its adapter, the port."""
    join = JoinConfig("ws://unused", "c", "p", "k", AdapterConfig(timeout=0.2))
    port = free_port()
    listen = [f"127.0.0.1:{port}"]
    config = port_forward.ForwardConfig(join, names=["laptop"], listen=listen, to=["bob:22"])
    adapter = OpeningAdapter()
    forwarder = port_forward.PortForwarder(config, cast(port_forward.ForwardPeers, adapter), {})
    await forwarder.listen(proto.parse_forwards(config.listen, config.to))
    yield forwarder, adapter, port
    await forwarder.close()


async def reset_by_peer(port: int) -> None:
    """A local connection that the peer resets."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    with pytest.raises(ConnectionResetError):
        await reader.read()
    writer.close()


async def test_a_channel_that_opens_after_its_connection_gave_up_carries_the_next(
    listening: tuple[port_forward.PortForwarder, OpeningAdapter, int],
) -> None:
    forwarder, adapter, port = listening
    adapter.time_out = True
    await reset_by_peer(port)  # the channel did not open within --timeout
    assert forwarder.counters.failed == 1
    late = FakeChannel(linger=True)
    adapter.late[0](late)  # now it opens
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    await until(lambda: bool(late.sent))
    assert frames(late) == [proto.Open(22)]  # no new channel: the late one
    assert len(adapter.opened) == 1
    assert not late.closed
    writer.close()


async def test_a_channel_whose_close_comes_after_the_timeout_carries_the_next(
    listening: tuple[port_forward.PortForwarder, OpeningAdapter, int],
) -> None:
    """The peer resets the connection; its CLOSE comes well after --timeout (a slow peer):
    the channel is kept for the next connection, not closed (libdatachannel would hold its
    stream until the connection closes)."""
    _, adapter, port = listening
    channel = FakeChannel(linger=True)
    adapter.channels.append(channel)
    resetting = asyncio.create_task(reset_by_peer(port))
    await until(lambda: bool(channel.sent))
    channel.push(proto.error_frame(proto.ErrorCode.RESET, "target gone"))
    await resetting
    await until(lambda: proto.Close() in frames(channel))  # ours
    await asyncio.sleep(0.4)  # twice --timeout
    channel.push(proto.CLOSE_FRAME)
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    await until(lambda: frames(channel)[-1] == proto.Open(22))
    assert len(adapter.opened) == 1
    assert not channel.closed and not adapter.forgotten
    writer.close()


async def test_a_connection_cut_short_by_the_way_out_prints_no_traceback(
    listening: tuple[port_forward.PortForwarder, OpeningAdapter, int],
) -> None:
    """Ctrl-C while a local connection is carried: its handler is cancelled. asyncio before
    3.12.x (the CLI's 3.12.1, 3.11) asks a cancelled handler task for its exception and logs
    "Exception in callback ... CancelledError" with a traceback."""
    forwarder, adapter, port = listening
    reported: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context))
    channel = FakeChannel(linger=True)
    adapter.channels.append(channel)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await until(lambda: bool(channel.sent))  # carried: our OPEN is out
    await forwarder.close()
    with pytest.raises(ConnectionResetError):  # reset, not left hanging
        await reader.read()
    writer.close()
    await asyncio.sleep(0.05)  # the handler task's done callbacks
    assert reported == []
