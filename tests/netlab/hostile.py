"""A hostile member of a `weron vpn ip|ethernet` community (issue 12), for the netlab tests:
it joins with the right key and password through the library's raw :class:`Adapter` (its
public API only) and sends what the protocol allows but no honest member would::

    python -m tests.netlab.hostile --raddr ws://198.51.100.1:1337/ --community lab \\
        --password lab-password --key lab-key --claim '["10.82.0.2/24"]' \\
        --probe 10.82.0.9,198.51.100.2 ...
    python -m tests.netlab.hostile ... --id ff:ff:ff:ff:ff:ff --probe SOURCE_MAC,DESTINATION_MAC

- vpn ip (``--claim``): on every id channel, ``claimed`` with ``--claim`` at once, without
  negotiating (so it can claim another member's exact address, or addresses outside the
  ``--ips`` networks); each ``--probe SOURCE,DESTINATION`` is an ICMP echo request, from any
  source (spoofed ones too);
- vpn ethernet (``--id``): any id (a group MAC, another member's); each probe is an Ethernet
  frame from any source MAC;
- vpn ip with ``--lying-offload``: it greets with the offload feature before claiming, and
  each probe goes with a virtio-net header that calls it a TCP super-packet (it is ICMP);
- vpn ethernet with ``--lying-offload``: it also takes the offload channel, says hello on it
  and sends each probe there with that header (the frame channel gets them plain);
- every probe goes to every peer once a second; stdout gets one JSON line per packet channel
  (``"event":"channel"``) and per packet received (``"event":"packet"`` with its source,
  destination and, for IP, ICMP type).

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

from weron.apps.forwarding import OFFLOAD_HELLO
from weron.apps.vpn_ethernet import FRAME_CHANNEL, FRAME_CHANNEL_OPTIONS, OFFLOAD_CHANNEL
from weron.apps.vpn_ip import ID_CHANNEL, OFFLOAD_FEATURE, PACKET_CHANNEL, PACKET_CHANNEL_OPTIONS
from weron.log import configure
from weron.net import offload
from weron.net.packets import format_mac, internet_checksum, parse_mac
from weron.peers import Peer, names
from weron.peers.adapter import Adapter, AdapterConfig
from weron.webrtc import ChannelClosedError
from weron.webrtc.backends import load_backend

_EXPERIMENTAL_ETHERTYPE = b"\x88\xb5"  # IEEE 802 local experimental


def echo_request(source: ipaddress.IPv4Address, destination: ipaddress.IPv4Address) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x7E12, 1) + b"hostile"
    icmp = icmp[:2] + struct.pack("!H", internet_checksum(icmp)) + icmp[4:]
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, source.packed, destination.packed
    )
    header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
    return header + icmp


def probe_of(text: str, *, ethernet: bool) -> bytes:
    source, destination = text.split(",")
    if ethernet:
        return parse_mac(destination) + parse_mac(source) + _EXPERIMENTAL_ETHERTYPE + b"hostile"
    return echo_request(ipaddress.IPv4Address(source), ipaddress.IPv4Address(destination))


def describe(packet: bytes, *, ethernet: bool) -> dict[str, object]:
    if ethernet:
        return {"source": format_mac(packet[6:12]), "destination": format_mac(packet[0:6])}
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return {"version": packet[0] >> 4 if packet else 0}
    length = (packet[0] & 0x0F) * 4
    return {
        "source": str(ipaddress.IPv4Address(packet[12:16])),
        "destination": str(ipaddress.IPv4Address(packet[16:20])),
        "icmp": packet[length] if packet[9] == 1 and len(packet) > length else None,
    }


def report(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def lying_header() -> bytes:
    """A TCPv4 super-packet of 1,000-byte segments, its checksum to complete at bytes 20-21."""
    return offload.VNET_HEADER.pack(offload.NEEDS_CSUM, offload.GSO_TCPV4, 40, 1000, 20, 16)


async def claim(peer: Peer, name: str, *, lying_offload: bool) -> None:
    if lying_offload:
        features = frozenset({OFFLOAD_FEATURE})
        await peer.conn.send(names.encode(names.Greeting((name,), 0, features)))
    await peer.conn.send(names.encode(names.Claimed(name)))
    while True:  # what honest members say (greetings, kicks, keepalives) changes nothing
        await peer.conn.receive()


async def probe_and_listen(peer: Peer, probes: list[bytes], *, ethernet: bool) -> None:
    report("channel", peer=peer.peer_id)

    async def probe() -> None:
        while True:
            for packet in probes:
                peer.conn.send_nowait(packet)
            await asyncio.sleep(1.0)

    probing = asyncio.create_task(probe())
    try:
        while True:
            packet = await peer.conn.receive()
            report("packet", peer=peer.peer_id, **describe(packet, ethernet=ethernet))
    finally:
        probing.cancel()


async def serve(
    peer: Peer, arguments: argparse.Namespace, probes: list[bytes], lying: list[bytes]
) -> None:
    ethernet = arguments.id is not None
    with contextlib.suppress(ChannelClosedError):
        if peer.channel_id == ID_CHANNEL:
            await claim(peer, arguments.claim, lying_offload=arguments.lying_offload)
        elif peer.channel_id == OFFLOAD_CHANNEL:
            peer.conn.send_nowait(OFFLOAD_HELLO)
            await probe_and_listen(peer, lying, ethernet=ethernet)
        else:
            await probe_and_listen(peer, probes, ethernet=ethernet)


async def main(arguments: argparse.Namespace) -> None:
    ethernet = arguments.id is not None
    probes = [probe_of(probe, ethernet=ethernet) for probe in arguments.probe]
    lying = [lying_header() + probe for probe in probes] if arguments.lying_offload else []
    if lying and not ethernet:
        probes = lying
    if ethernet:
        channels, options = [FRAME_CHANNEL], {FRAME_CHANNEL: FRAME_CHANNEL_OPTIONS}
        if lying:
            channels.append(OFFLOAD_CHANNEL)
            options[OFFLOAD_CHANNEL] = FRAME_CHANNEL_OPTIONS
    else:
        channels, options = [ID_CHANNEL, PACKET_CHANNEL], {PACKET_CHANNEL: PACKET_CHANNEL_OPTIONS}
    config = AdapterConfig(timeout=3.0, id=arguments.id or "", ice=(), channel_options=options)
    adapter = Adapter(
        arguments.raddr,
        arguments.community,
        arguments.password,
        arguments.key,
        channels,
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
            task = asyncio.create_task(serve(peer, arguments, probes, lying))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in list(tasks):
            task.cancel()
        await adapter.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A hostile member of a `weron vpn ip` community")
    for option in ("--raddr", "--community", "--password", "--key"):
        parser.add_argument(option, required=True)
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--claim", help="vpn ip: the name to claim (a JSON list of addresses)")
    kind.add_argument("--id", help="vpn ethernet: the id (a MAC address)")
    parser.add_argument("--probe", action="append", default=[], help="SOURCE,DESTINATION")
    parser.add_argument(
        "--lying-offload", action="store_true", help="probes with a lying offload header"
    )
    configure(5, sys.stderr)
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(main(parser.parse_args()))
