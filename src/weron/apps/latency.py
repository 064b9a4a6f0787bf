"""`weron utility latency`: "ping for WebRTC" (docs/wire-protocol.md#latency).

The client sends ``packet_length`` random bytes, the server echoes the message back, the client
times the round trip, sleeps ``pause`` and repeats. The server serves any number of clients,
one after another or at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TextIO

from weron.apps.join import JoinConfig
from weron.apps.peering import PeerAppError, serve_each_peer
from weron.apps.report import go_duration, percentile
from weron.log import get_logger
from weron.peers import Peer
from weron.peers.adapter import Adapter
from weron.webrtc import Backend, ChannelClosedError

log = get_logger(__name__)
CHANNEL = "weron/latency/primary"


@dataclass(slots=True)
class LatencyConfig:
    join: JoinConfig
    server: bool = False
    packet_length: int = 128
    pause: float = 1.0
    json: bool = False


@dataclass(slots=True)
class LatencyTotals:
    round_trips: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        ordered = sorted(self.round_trips)
        return {
            "packets": len(ordered),
            "average": sum(ordered) / len(ordered),
            "min": ordered[0],
            "max": ordered[-1],
            "p50": percentile(ordered, 0.50),
            "p90": percentile(ordered, 0.90),
            "p99": percentile(ordered, 0.99),
        }


class _Printer:
    def __init__(self, out: TextIO, as_json: bool) -> None:
        self._out = out
        self._json = as_json

    def packet(self, peer: str, size: int, round_trip: float) -> None:
        if self._json:
            self._emit(
                {
                    "type": "packet",
                    "peer": peer,
                    "bytes": size,
                    "round_trip_us": round(round_trip * 1e6, 3),
                }
            )
        else:
            self._line(f"{size} B written and acknowledged in {go_duration(round_trip)}")

    def totals(self, totals: LatencyTotals) -> None:
        if not totals.round_trips:
            return
        summary = totals.summary()
        if self._json:
            self._emit(
                {
                    "type": "totals",
                    **{
                        key: value if key == "packets" else round(float(value) * 1e6, 3)
                        for key, value in summary.items()
                    },
                    "unit": "us",
                }
            )
            return
        self._line(
            f"Average latency: {go_duration(float(summary['average']))} "
            f"({summary['packets']} packets written) Min: {go_duration(float(summary['min']))} "
            f"Max: {go_duration(float(summary['max']))}"
        )
        self._line(
            f"Percentiles: p50 {go_duration(float(summary['p50']))} "
            f"p90 {go_duration(float(summary['p90']))} p99 {go_duration(float(summary['p99']))}"
        )

    def _emit(self, document: dict[str, object]) -> None:
        self._line(json.dumps(document, separators=(",", ":")))

    def _line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()


async def echo(peer: Peer) -> None:
    """The server's side: every message goes back as it came."""
    await peer.conn.echo()


class LatencyClient:
    """The client's side with one server: send ``packet_length`` random bytes, time the echo,
    count and print it, wait ``pause``, again. The clock, the pause and the random bytes come
    in, and so does ``drop`` (the adapter's: a server silent for ``timeout`` is dropped at once,
    as WebRTC would take 15-30 s to notice it is gone)."""

    def __init__(
        self,
        config: LatencyConfig,
        totals: LatencyTotals,
        printer: _Printer,
        *,
        drop: Callable[[str], None],
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._config = config
        self._totals = totals
        self._printer = printer
        self._drop = drop
        self._clock = clock
        self._sleep = sleep
        self._random_bytes = random_bytes

    async def measure(self, peer: Peer) -> None:
        """Round trips with ``peer`` until it is gone (``ChannelClosedError``)."""
        length, timeout = self._config.packet_length, self._config.join.adapter.timeout
        maximum = peer.conn.max_message_size
        if length > maximum:
            raise PeerAppError(
                f"--packet-length {length} is larger than the largest message "
                f"this connection can carry ({maximum} bytes)"
            )
        while True:
            payload = self._random_bytes(length)
            started = self._clock()
            await peer.conn.send(payload)
            try:
                async with asyncio.timeout(timeout):
                    reply = await peer.conn.receive()
            except TimeoutError:
                log.warning(
                    "No echo within the timeout: is the server gone?",
                    id=peer.peer_id,
                    timeout=timeout,
                )
                self._drop(peer.peer_id)
                raise ChannelClosedError("no echo") from None
            round_trip = self._clock() - started
            if len(reply) != len(payload):
                log.warning("Echo of a different size", sent=len(payload), received=len(reply))
            self._totals.round_trips.append(round_trip)
            self._printer.packet(peer.peer_id, len(payload), round_trip)
            await self._sleep(self._config.pause)


async def run(config: LatencyConfig, backend: Backend, out: TextIO | None = None) -> LatencyTotals:
    """Measure until cancelled (Ctrl-C); the totals are printed on the way out."""
    printer = _Printer(out or sys.stdout, config.json)
    totals = LatencyTotals()
    adapter = Adapter(
        config.join.raddr,
        config.join.community,
        config.join.password,
        config.join.key,
        [CHANNEL],
        backend,
        config.join.adapter,
    )
    client = LatencyClient(config, totals, printer, drop=adapter.drop)
    try:
        await serve_each_peer(adapter, echo if config.server else client.measure)
    finally:
        printer.totals(totals)
    return totals
