"""`weron utility throughput`: "iperf for WebRTC" (docs/wire-protocol.md#throughput).

The client sends ``packet_count`` messages of ``packet_length`` random bytes; the server reads
that many messages and answers with a 100-byte acknowledgement; the client reports bytes per
second for the batch and starts the next one. Both print their totals when stopped.

The count never travels (Go peers send none), so each side checks what it can: a client whose
acknowledgement comes before its batch is all sent has a larger count than the server, one
that waits longer than ``--timeout`` for it a smaller one (or the server is gone); a server
left with part of a batch for that long says so in a warning.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TextIO

from weron.apps.join import JoinConfig
from weron.apps.peering import PeerAppError, serve_each_peer
from weron.apps.report import go_duration
from weron.log import get_logger
from weron.peers import Peer
from weron.peers.adapter import Adapter
from weron.webrtc import Backend

log = get_logger(__name__)

CHANNEL: Final = "weron/throughput/primary"
ACK_LENGTH: Final = 100
_NOTHING_JSON: Final = '{"type":"totals","bytes":0,"batches":0}'


@dataclass(slots=True)
class ThroughputConfig:
    join: JoinConfig
    server: bool = False
    packet_length: int = 50_000
    packet_count: int = 1_000
    json: bool = False


@dataclass(slots=True)
class ThroughputTotals:
    """Every acknowledged batch: bytes the client wrote, or the server read."""

    bytes_written: int = 0
    seconds: float = 0.0
    batch_speeds: list[float] = field(default_factory=list)  # MB/s

    def add(self, size: int, seconds: float) -> float:
        """Count one batch; its speed in MB/s."""
        seconds = max(seconds, 1e-9)  # a one-message batch on a coarse clock
        speed = size / seconds / 1e6
        self.bytes_written += size
        self.seconds += seconds
        self.batch_speeds.append(speed)
        return speed


def _line(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


class ThroughputServer:
    """The server's side: acknowledge every batch of ``packet_count`` messages, counting what
    was read into the totals. A batch lasts from the previous acknowledgement (the client
    starts the next one at once) or, for the first, from its first message; the clock comes
    in."""

    def __init__(
        self,
        config: ThroughputConfig,
        totals: ThroughputTotals,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._config = config
        self._totals = totals
        self._clock = clock

    async def acknowledge(self, peer: Peer) -> None:
        """Batches from ``peer`` until it is gone (``ChannelClosedError``)."""
        started: float | None = None
        while True:
            size = len(await peer.conn.receive())
            started = self._clock() if started is None else started
            for received in range(1, self._config.packet_count):
                size += len(await self._receive_in_batch(peer, received))
            await peer.conn.send(bytes(ACK_LENGTH))
            ended = self._clock()
            self._totals.add(size, ended - started)
            started = ended

    async def _receive_in_batch(self, peer: Peer, received: int) -> bytes:
        """The next message of a batch, with a warning if it is long in coming: the client may
        use a smaller --packet-count (it then waits for an acknowledgement that never comes)."""
        try:
            async with asyncio.timeout(self._config.join.adapter.timeout):
                return await peer.conn.receive()
        except TimeoutError:
            log.warning(
                "Only part of a batch arrived: does the client use the same --packet-count?",
                id=peer.peer_id,
                received=received,
                packet_count=self._config.packet_count,
            )
            return await peer.conn.receive()


class ThroughputClient:
    """The client's side with one server: send a batch of ``packet_count`` messages, wait for
    its acknowledgement, count and print the batch's speed, again. Checks what it can of the
    server's ``--packet-count`` (module docstring). The clock and the random bytes come in."""

    def __init__(
        self,
        config: ThroughputConfig,
        totals: ThroughputTotals,
        out: TextIO,
        *,
        clock: Callable[[], float] = time.perf_counter,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._config = config
        self._totals = totals
        self._out = out
        self._clock = clock
        self._random_bytes = random_bytes

    async def measure(self, peer: Peer) -> None:
        """Batches to ``peer`` until it is gone (``ChannelClosedError``) or a count differs."""
        config, timeout = self._config, self._config.join.adapter.timeout
        maximum = peer.conn.max_message_size
        if config.packet_length > maximum:
            raise PeerAppError(
                f"--packet-length {config.packet_length} is larger than the largest message "
                f"this connection can carry ({maximum} bytes)"
            )
        # Random bytes, drawn once: generating 50 MB per batch would measure os.urandom.
        payload = self._random_bytes(config.packet_length)
        while True:
            started = self._clock()
            acknowledged = asyncio.ensure_future(peer.conn.receive())
            try:
                for _ in range(config.packet_count):
                    if acknowledged.done():
                        acknowledged.result()  # a closed channel ends the peer as usual
                        raise PeerAppError(
                            "the server acknowledged a batch before all our --packet-count "
                            f"{config.packet_count} messages were sent: its --packet-count is "
                            "smaller (start both with the same)"
                        )
                    await peer.conn.send(payload)
                async with asyncio.timeout(timeout):
                    await acknowledged
            except TimeoutError:
                raise PeerAppError(
                    f"no acknowledgement {go_duration(timeout)} after our --packet-count "
                    f"{config.packet_count} messages: the server's --packet-count is larger "
                    "(start both with the same), or the server is gone"
                ) from None
            finally:
                acknowledged.cancel()
            seconds = self._clock() - started
            written = config.packet_length * config.packet_count
            self._batch(peer, written, seconds, self._totals.add(written, seconds))

    def _batch(self, peer: Peer, written: int, seconds: float, speed: float) -> None:
        if self._config.json:
            document = {
                "type": "batch",
                "peer": peer.peer_id,
                "bytes": written,
                "seconds": round(seconds, 9),
                "mb_per_s": round(speed, 3),
            }
            _line(self._out, json.dumps(document, separators=(",", ":")))
        else:
            _line(
                self._out,
                f"{speed:.3f} MB/s ({speed * 8:.3f} Mb/s) "
                f"({written // 1_000_000} MB read in {go_duration(seconds)})",
            )


async def run(
    config: ThroughputConfig, backend: Backend, out: TextIO | None = None
) -> ThroughputTotals:
    """Measure until cancelled (Ctrl-C); the totals are printed on the way out (the server's
    too: what it read)."""
    stream = out or sys.stdout
    totals = ThroughputTotals()
    adapter = Adapter(
        config.join.raddr,
        config.join.community,
        config.join.password,
        config.join.key,
        [CHANNEL],
        backend,
        config.join.adapter,
    )
    handler = (
        ThroughputServer(config, totals).acknowledge
        if config.server
        else ThroughputClient(config, totals, stream).measure
    )
    try:
        await serve_each_peer(adapter, handler)
    finally:
        _print_totals(stream, totals, config.json, "read" if config.server else "written")
    return totals


def _print_totals(out: TextIO, totals: ThroughputTotals, as_json: bool, verb: str) -> None:
    if not totals.batch_speeds:
        _line(out, _NOTHING_JSON if as_json else "No batch was acknowledged: nothing measured")
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
        f"({totals.bytes_written // 1_000_000} MB {verb} in {go_duration(totals.seconds)}) "
        f"Min: {low:.3f} MB/s Max: {high:.3f} MB/s",
    )
