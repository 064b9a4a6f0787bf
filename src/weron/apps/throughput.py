"""`weron utility throughput`: "iperf for WebRTC" (docs/wire-protocol.md#throughput).

The client sends ``packet_count`` messages of ``packet_length`` random bytes; the server reads
that many messages and answers with a 100-byte acknowledgement; the client reports bytes per
second for the batch and starts the next one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Final, TextIO

from weron.apps.peering import PeerAppError, serve_each_peer
from weron.apps.report import go_duration
from weron.peers import Peer
from weron.peers.adapter import Adapter, AdapterConfig
from weron.webrtc import Backend

CHANNEL: Final = "weron/throughput/primary"
ACK_LENGTH: Final = 100


@dataclass(slots=True)
class ThroughputConfig:
    raddr: str
    community: str
    password: str
    key: str
    server: bool = False
    packet_length: int = 50_000
    packet_count: int = 1_000
    json: bool = False
    adapter: AdapterConfig = field(default_factory=AdapterConfig)


@dataclass(slots=True)
class ThroughputTotals:
    bytes_written: int = 0
    seconds: float = 0.0
    batch_speeds: list[float] = field(default_factory=list)  # MB/s


def _line(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


async def _acknowledge(peer: Peer, packet_count: int) -> None:
    while True:
        for _ in range(packet_count):
            await peer.conn.receive()
        await peer.conn.send(bytes(ACK_LENGTH))


async def run(
    config: ThroughputConfig, backend: Backend, out: TextIO | None = None
) -> ThroughputTotals:
    """Measure until cancelled (Ctrl-C); the totals are printed on the way out."""
    stream = out or sys.stdout
    totals = ThroughputTotals()

    async def measure(peer: Peer) -> None:
        maximum = peer.conn.max_message_size
        if config.packet_length > maximum:
            raise PeerAppError(
                f"--packet-length {config.packet_length} is larger than the largest message "
                f"this connection can carry ({maximum} bytes)"
            )
        # Random bytes, drawn once: generating 50 MB per batch would measure os.urandom.
        payload = os.urandom(config.packet_length)
        while True:
            started = time.perf_counter()
            for _ in range(config.packet_count):
                await peer.conn.send(payload)
            await peer.conn.receive()  # the acknowledgement
            seconds = time.perf_counter() - started
            written = config.packet_length * config.packet_count
            speed = written / seconds / 1e6
            totals.bytes_written += written
            totals.seconds += seconds
            totals.batch_speeds.append(speed)
            if config.json:
                _line(
                    stream,
                    json.dumps(
                        {
                            "type": "batch",
                            "peer": peer.peer_id,
                            "bytes": written,
                            "seconds": round(seconds, 9),
                            "mb_per_s": round(speed, 3),
                        },
                        separators=(",", ":"),
                    ),
                )
            else:
                _line(
                    stream,
                    f"{speed:.3f} MB/s ({speed * 8:.3f} Mb/s) "
                    f"({written // 1_000_000} MB read in {go_duration(seconds)})",
                )

    adapter = Adapter(
        config.raddr,
        config.community,
        config.password,
        config.key,
        [CHANNEL],
        backend,
        config.adapter,
    )
    try:
        await serve_each_peer(
            adapter,
            (lambda peer: _acknowledge(peer, config.packet_count)) if config.server else measure,
        )
    finally:
        _print_totals(stream, totals, config.json)
    return totals


def _print_totals(out: TextIO, totals: ThroughputTotals, as_json: bool) -> None:
    if not totals.batch_speeds:
        return
    average = totals.bytes_written / totals.seconds / 1e6
    low, high = min(totals.batch_speeds), max(totals.batch_speeds)
    if as_json:
        _line(
            out,
            json.dumps(
                {
                    "type": "totals",
                    "bytes": totals.bytes_written,
                    "seconds": round(totals.seconds, 9),
                    "mb_per_s": round(average, 3),
                    "min_mb_per_s": round(low, 3),
                    "max_mb_per_s": round(high, 3),
                    "batches": len(totals.batch_speeds),
                },
                separators=(",", ":"),
            ),
        )
        return
    _line(
        out,
        f"Average throughput: {average:.3f} MB/s ({average * 8:.3f} Mb/s) "
        f"({totals.bytes_written // 1_000_000} MB written in {go_duration(totals.seconds)}) "
        f"Min: {low:.3f} MB/s Max: {high:.3f} MB/s",
    )
