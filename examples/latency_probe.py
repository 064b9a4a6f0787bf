"""Latency probe: time round trips to a peer over a data channel with the library's Adapter.

One side echoes every message back (--serve); the other sends --count probes to the first
peer it connects to, prints each round trip, then a summary, and exits.

    .venv/bin/python examples/latency_probe.py --serve --raddr ws://localhost:1337/ \\
        --community mycommunity --password mypassword --key mykey
    .venv/bin/python examples/latency_probe.py --count 10 --raddr ws://localhost:1337/ \\
        --community mycommunity --password mypassword --key mykey
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import struct
import sys
import time

from weron.peers import Peer
from weron.peers.adapter import Adapter, AdapterConfig
from weron.webrtc import ChannelClosedError
from weron.webrtc.backends import load_backend

CHANNEL = "weron/latency-probe/primary"
SEQUENCE = struct.Struct("!Q")  # each probe starts with its number: a stale echo is noticed


async def echo(peer: Peer) -> None:
    print("Echoing for", peer.peer_id, flush=True)
    with contextlib.suppress(ChannelClosedError):
        while True:
            await peer.conn.send(await peer.conn.receive())


async def serve(adapter: Adapter) -> None:
    """Echo for every peer, until interrupted."""
    tasks = set()
    async for peer in adapter.peers():
        task = asyncio.create_task(echo(peer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def probe(peer: Peer, count: int, size: int, pause: float) -> list[float]:
    """``count`` round trips in seconds, one probe in flight at a time."""
    padding = os.urandom(max(0, size - SEQUENCE.size))
    round_trips = []
    for number in range(count):
        message = SEQUENCE.pack(number) + padding
        started = time.perf_counter()
        await peer.conn.send(message)
        reply = await peer.conn.receive()
        round_trip = time.perf_counter() - started
        if reply != message:
            raise ValueError(f"probe {number}: the echo differs from what was sent")
        round_trips.append(round_trip)
        print(f"{len(message)} B to {peer.peer_id} and back in {round_trip * 1e3:.3f} ms")
        await asyncio.sleep(pause)
    return round_trips


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raddr", default="ws://localhost:1337/")
    parser.add_argument("--community", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--serve", action="store_true", help="echo probes instead of sending")
    parser.add_argument("--count", type=int, default=10, help="probes to send")
    parser.add_argument("--size", type=int, default=128, help="bytes per probe")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between probes")
    parser.add_argument("--backend", default=None, help="libdatachannel or aiortc")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")

    adapter = Adapter(
        args.raddr,
        args.community,
        args.password,
        args.key,
        [CHANNEL],
        load_backend(args.backend),
        AdapterConfig(ice=()),
    )
    await adapter.open()
    try:
        print("Connected to signaler as", await adapter.next_id(), flush=True)
        if args.serve:
            await serve(adapter)
            return 0
        peer = await adapter.accept()
        try:
            round_trips = await probe(peer, args.count, args.size, args.pause)
        except (ChannelClosedError, ValueError) as exc:
            print("Probing failed:", exc or "the peer went away", file=sys.stderr)
            return 1
        print(
            f"{len(round_trips)} round trips to {peer.peer_id}: "
            f"min {min(round_trips) * 1e3:.3f} ms, "
            f"median {statistics.median(round_trips) * 1e3:.3f} ms, "
            f"max {max(round_trips) * 1e3:.3f} ms",
            flush=True,
        )
        return 0
    finally:
        await adapter.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
