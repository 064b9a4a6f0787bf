"""`weron forward`'s serving side without WebRTC (``PortForwarder`` over a fake adapter): what
a peer's channel gets for a label or a port it may not use, for an exposed port nobody listens
on, and for a connection carried to a local TCP server. The frames themselves are
weron.net.port_forward's (tests/unit/net/test_port_forward.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest
from tests.unit.fakes import FakeAdapter, FakeChannel, until

from weron.apps import port_forward
from weron.apps.join import JoinConfig
from weron.net import port_forward as proto
from weron.peers import Peer
from weron.peers.adapter import AdapterConfig


def free_port() -> int:
    """A local port nobody listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Serving:
    """A forwarder exposing ``expose``; peers arrive through its fake adapter."""

    def __init__(self, *expose: str) -> None:
        join = JoinConfig("ws://unused", "c", "p", "k", AdapterConfig(timeout=0.2))
        config = port_forward.ForwardConfig(join, names=["home"], expose=expose)
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

    def make(*expose: str) -> Serving:
        each = Serving(*expose)
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
