"""`utility latency` without WebRTC: the client's round trips, what it prints and counts, and
how it gives up on a silent server; the server echoes. Fake channel, clock and pause."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from tests.unit.fakes import FakeChannel, FakeClock

from weron.apps import latency
from weron.apps.join import JoinConfig
from weron.apps.peering import PeerAppError
from weron.peers import Peer
from weron.peers.adapter import AdapterConfig
from weron.webrtc import ChannelClosedError


class EchoingServer(FakeChannel):
    """Echoes the first ``echoes`` messages sent to it, then is silent (but open)."""

    def __init__(self, echoes: int, **options: int) -> None:
        super().__init__(linger=True, **options)
        self.echoes = echoes

    async def send(self, message: bytes) -> None:
        await super().send(message)
        if self.echoes > 0:
            self.echoes -= 1
            self.push(message)


def config(**fields: object) -> latency.LatencyConfig:
    join = JoinConfig("ws://unused", "c", "p", "k", AdapterConfig(timeout=0.05))
    return latency.LatencyConfig(join, **fields)  # type: ignore[arg-type]


class Client:
    def __init__(self, as_json: bool = False, **fields: object) -> None:
        self.out = io.StringIO()
        self.totals = latency.LatencyTotals()
        self.dropped: list[str] = []
        self.pauses: list[float] = []
        self.client = latency.LatencyClient(
            config(json=as_json, **fields),
            self.totals,
            latency._Printer(self.out, as_json),
            drop=self.dropped.append,
            clock=FakeClock(0.002),
            sleep=self.pause,
        )

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


async def test_the_client_times_each_echo_then_pauses_and_drops_a_silent_server() -> None:
    client = Client(pause=0.5, packet_length=32)
    server = EchoingServer(echoes=2)
    with pytest.raises(ChannelClosedError):
        await client.client.measure(Peer("server", latency.CHANNEL, server))
    assert [len(sent) for sent in server.sent] == [32, 32, 32]  # the third got no echo
    assert client.totals.round_trips == pytest.approx([0.002, 0.002])
    assert client.pauses == [0.5, 0.5]
    assert client.out.getvalue().splitlines() == ["32 B written and acknowledged in 2ms"] * 2
    assert client.dropped == ["server"]  # at once, not when WebRTC notices


async def test_the_client_prints_json_lines_with_the_peer() -> None:
    client = Client(as_json=True, packet_length=8)
    with pytest.raises(ChannelClosedError):
        await client.client.measure(Peer("server", latency.CHANNEL, EchoingServer(echoes=1)))
    (line,) = client.out.getvalue().splitlines()
    assert json.loads(line) == {
        "type": "packet",
        "peer": "server",
        "bytes": 8,
        "round_trip_us": 2000.0,
    }


async def test_a_packet_larger_than_the_connection_carries_is_the_user_s_error() -> None:
    client = Client(packet_length=100)
    with pytest.raises(PeerAppError, match=r"--packet-length 100 is larger .*\(99 bytes\)"):
        await client.client.measure(Peer("server", latency.CHANNEL, EchoingServer(1, max_size=99)))


async def test_the_server_echoes_every_message() -> None:
    channel = FakeChannel(b"one", b"two")
    with pytest.raises(ChannelClosedError):
        await asyncio.wait_for(latency.echo(Peer("client", latency.CHANNEL, channel)), 5)
    assert channel.sent == [b"one", b"two"]
