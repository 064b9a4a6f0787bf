"""`utility throughput` without WebRTC: the server's batches and acknowledgements, the client's
batches, speeds and lines, and how each tells a different ``--packet-count``. Fake channels
and clock."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from tests.unit.fakes import FakeChannel, FakeClock

from weron.apps import throughput
from weron.apps.join import JoinConfig
from weron.apps.peering import PeerAppError
from weron.peers import Peer
from weron.peers.adapter import AdapterConfig
from weron.webrtc import ChannelClosedError


def config(**fields: object) -> throughput.ThroughputConfig:
    join = JoinConfig("ws://unused", "c", "p", "k", AdapterConfig(timeout=0.05))
    return throughput.ThroughputConfig(join, **fields)  # type: ignore[arg-type]


def peer(channel: FakeChannel) -> Peer:
    return Peer("other", throughput.CHANNEL, channel)


class AcknowledgingServer(FakeChannel):
    """Acknowledges every ``every`` messages, ``batches`` times; then stays silent (open)."""

    def __init__(self, every: int, batches: int) -> None:
        super().__init__(linger=True, max_size=1 << 20)
        self.every = every
        self.batches = batches
        self.count = 0

    async def send(self, message: bytes) -> None:
        await super().send(message)
        self.count += 1
        if self.count % self.every == 0 and self.batches > 0:
            self.batches -= 1
            self.push(bytes(throughput.ACK_LENGTH))
        for _ in range(3):  # as a real send does, the loop runs (the receiver sees the ack)
            await asyncio.sleep(0)


async def test_the_server_acknowledges_each_batch_and_counts_what_it_read() -> None:
    totals = throughput.ThroughputTotals()
    readings = iter([1.0, 1.5, 3.0, 9.0])  # first message, acknowledged, acknowledged
    server = throughput.ThroughputServer(config(packet_count=3), totals, clock=readings.__next__)
    channel = FakeChannel(*[bytes(10)] * 6, bytes(10))  # two batches and one message more
    with pytest.raises(ChannelClosedError):
        await server.acknowledge(peer(channel))
    assert channel.sent == [bytes(throughput.ACK_LENGTH)] * 2
    assert totals.bytes_written == 60
    # The first batch from its first message, the next from the first acknowledgement.
    assert totals.seconds == pytest.approx(2.0)
    assert totals.batch_speeds == pytest.approx([30 / 0.5 / 1e6, 30 / 1.5 / 1e6])


async def test_the_server_warns_when_only_part_of_a_batch_arrives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    totals = throughput.ThroughputTotals()
    server = throughput.ThroughputServer(config(packet_count=3), totals, clock=FakeClock(0.5))
    channel = FakeChannel(bytes(10), bytes(10), linger=True)
    with caplog.at_level(logging.WARNING):
        acknowledging = asyncio.create_task(server.acknowledge(peer(channel)))
        await asyncio.sleep(0.2)  # four timeouts: one warning, and it keeps waiting
    assert caplog.text.count("Only part of a batch arrived") == 1
    assert not channel.sent
    channel.push(bytes(10))  # the batch completes after all: acknowledged
    await asyncio.sleep(0.02)
    assert channel.sent == [bytes(throughput.ACK_LENGTH)]
    channel.close()
    with pytest.raises(ChannelClosedError):
        await acknowledging


class Client:
    def __init__(self, **fields: object) -> None:
        self.out = io.StringIO()
        self.totals = throughput.ThroughputTotals()
        self.client = throughput.ThroughputClient(
            config(**fields), self.totals, self.out, clock=FakeClock(0.25)
        )


async def test_the_client_counts_and_prints_each_acknowledged_batch() -> None:
    client = Client(packet_count=4, packet_length=1_000_000)
    server = AcknowledgingServer(every=4, batches=2)
    with pytest.raises(PeerAppError, match="no acknowledgement 50ms after our --packet-count 4"):
        await client.client.measure(peer(server))  # the third batch is never acknowledged
    assert len(server.sent) == 12
    assert client.totals.bytes_written == 8_000_000
    assert client.totals.batch_speeds == pytest.approx([16.0, 16.0])  # 4 MB in 0.25 s
    assert (
        client.out.getvalue().splitlines()
        == ["16.000 MB/s (128.000 Mb/s) (4 MB read in 250ms)"] * 2
    )


async def test_the_client_prints_json_batches() -> None:
    client = Client(packet_count=2, packet_length=10, json=True)
    with pytest.raises(PeerAppError):
        await client.client.measure(peer(AcknowledgingServer(every=2, batches=1)))
    (line,) = client.out.getvalue().splitlines()
    assert json.loads(line) == {
        "type": "batch",
        "peer": "other",
        "bytes": 20,
        "seconds": 0.25,
        "mb_per_s": 0.0,
    }


async def test_an_acknowledgement_before_the_batch_is_sent_means_a_smaller_server_count() -> None:
    client = Client(packet_count=5, packet_length=10)
    server = AcknowledgingServer(every=2, batches=1)
    with pytest.raises(PeerAppError, match=r"acknowledged a batch before all .* 5 messages"):
        await client.client.measure(peer(server))
    assert len(server.sent) < 5
    assert not client.totals.batch_speeds


async def test_a_packet_larger_than_the_connection_carries_is_the_user_s_error() -> None:
    client = Client(packet_length=1 << 17)
    with pytest.raises(PeerAppError, match=r"--packet-length 131072 is larger"):
        await client.client.measure(peer(FakeChannel()))
