"""A hostile member of a `weron vpn ip` community (issue 12), for the netlab tests: it joins
with the right key and password through the library's raw :class:`Adapter` (its public API
only) and sends what the protocol allows but no honest member would::

    python -m tests.netlab.hostile --raddr ws://198.51.100.1:1337/ --community lab \\
        --password lab-password --key lab-key --claim '["10.82.0.2/24"]' \\
        --probe 10.82.0.9,198.51.100.2 ...

- on every id channel, ``claimed`` with ``--claim`` at once: no greeting, no negotiation (so it
  can claim another member's exact address, or addresses outside the ``--ips`` networks);
- on every packet channel, each ``--probe SOURCE,DESTINATION`` (an ICMP echo request, any
  source: spoofed ones too) once a second;
- on stdout, one JSON line per packet channel (``"event":"channel"``) and per packet received
  (``"event":"packet"`` with its source, destination and ICMP type).

SIGTERM closes the adapter, so members see it leave at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import signal
import struct
import sys

from weron.apps.vpn_ip import ID_CHANNEL, PACKET_CHANNEL, PACKET_CHANNEL_OPTIONS
from weron.log import configure
from weron.peers import Peer
from weron.peers.adapter import Adapter, AdapterConfig
from weron.signaling import names
from weron.webrtc import ChannelClosedError
from weron.webrtc.backends import load_backend

Probe = tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]


def checksum(data: bytes) -> int:
    data += bytes(len(data) % 2)
    total = sum(int.from_bytes(data[i : i + 2]) for i in range(0, len(data), 2))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(source: ipaddress.IPv4Address, destination: ipaddress.IPv4Address) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x7E12, 1) + b"hostile"
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, source.packed, destination.packed
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + icmp


def report(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def claim(peer: Peer, name: str) -> None:
    await peer.conn.send(names.encode(names.claimed(name)))
    while True:  # what honest members say (greetings, kicks, keepalives) changes nothing
        await peer.conn.receive()


async def probe_and_listen(peer: Peer, probes: list[Probe]) -> None:
    report("channel", peer=peer.peer_id)

    async def probe() -> None:
        while True:
            for source, destination in probes:
                peer.conn.send_nowait(echo_request(source, destination))
            await asyncio.sleep(1.0)

    probing = asyncio.create_task(probe())
    try:
        while True:
            packet = await peer.conn.receive()
            if len(packet) < 20 or packet[0] >> 4 != 4:
                report("packet", peer=peer.peer_id, version=packet[0] >> 4 if packet else 0)
                continue
            length = (packet[0] & 0x0F) * 4
            report(
                "packet",
                peer=peer.peer_id,
                source=str(ipaddress.IPv4Address(packet[12:16])),
                destination=str(ipaddress.IPv4Address(packet[16:20])),
                icmp=packet[length] if packet[9] == 1 and len(packet) > length else None,
            )
    finally:
        probing.cancel()


async def serve(peer: Peer, name: str, probes: list[Probe]) -> None:
    with contextlib.suppress(ChannelClosedError):
        if peer.channel_id == ID_CHANNEL:
            await claim(peer, name)
        else:
            await probe_and_listen(peer, probes)


async def main(arguments: argparse.Namespace) -> None:
    probes = [
        (ipaddress.IPv4Address(source), ipaddress.IPv4Address(destination))
        for source, destination in (probe.split(",") for probe in arguments.probe)
    ]
    config = AdapterConfig(
        timeout=3.0, ice=(), channel_options={PACKET_CHANNEL: PACKET_CHANNEL_OPTIONS}
    )
    adapter = Adapter(
        arguments.raddr,
        arguments.community,
        arguments.password,
        arguments.key,
        [ID_CHANNEL, PACKET_CHANNEL],
        load_backend(),
        config,
    )
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGTERM,
        asyncio.current_task().cancel,  # type: ignore[union-attr]
    )
    tasks: set[asyncio.Task[None]] = set()
    await adapter.open()
    try:
        async for peer in adapter.peers():
            task = asyncio.create_task(serve(peer, arguments.claim, probes))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in list(tasks):
            task.cancel()
        await adapter.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A hostile member of a `weron vpn ip` community")
    for option in ("--raddr", "--community", "--password", "--key", "--claim"):
        parser.add_argument(option, required=True)
    parser.add_argument("--probe", action="append", default=[], help="SOURCE,DESTINATION")
    configure(5, sys.stderr)
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(main(parser.parse_args()))
