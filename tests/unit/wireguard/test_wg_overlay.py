"""Two overlays on loopback sockets: handshake, datagrams both ways, roaming, foreign sources."""

from __future__ import annotations

import asyncio
import os
import socket

from weron.wireguard.crypto import PrivateKey
from weron.wireguard.device import Timers, WireGuardPeer
from weron.wireguard.ip import UdpPacket, build_udp, overlay_address
from weron.wireguard.overlay import UdpOverlay

PORT = 4242


class Inbox:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[WireGuardPeer, UdpPacket]] = asyncio.Queue()

    def __call__(self, peer: WireGuardPeer, datagram: UdpPacket) -> None:
        self.queue.put_nowait((peer, datagram))

    async def next(self) -> tuple[WireGuardPeer, UdpPacket]:
        return await asyncio.wait_for(self.queue.get(), 10)


async def test_datagrams_both_ways_and_roaming() -> None:
    psk = os.urandom(32)
    key_a, key_b = PrivateKey.generate(), PrivateKey.generate()
    inbox_a, inbox_b = Inbox(), Inbox()
    a, b = UdpOverlay(key_a, inbox_a), UdpOverlay(key_b, inbox_b)
    moved = UdpOverlay(key_a, inbox_a)  # a's key on another socket: a "roamed" a
    try:
        address_a = await a.open("127.0.0.1")
        address_b = await b.open("127.0.0.1")
        peer_b = a.add_peer(key_b.public, psk=psk, endpoint=address_b)
        peer_a = b.add_peer(key_a.public, psk=psk)  # b learns a's endpoint from the handshake
        a.sendto(b"hello b", peer_b, PORT)
        peer, datagram = await inbox_b.next()
        assert peer is peer_a and peer_a.endpoint == address_a
        assert datagram.payload == b"hello b" and datagram.source == a.address
        assert datagram.destination_port == PORT
        b.sendto(b"hello a", peer_a, PORT)
        _, datagram = await inbox_a.next()
        assert datagram.payload == b"hello a" and datagram.source == b.address

        # The peer may only use its own overlay address as the source.
        spoofed = build_udp(overlay_address(os.urandom(32)), PORT, b.address, PORT, b"spoof")
        a.endpoint.send(peer_b, spoofed)
        a.sendto(b"after spoof", peer_b, PORT)
        _, datagram = await inbox_b.next()
        assert datagram.payload == b"after spoof"

        # a moves to a new socket (same key, new port): b follows authenticated packets. (Wait
        # past the timestamp granularity, or b rightly takes the new initiation for a replay.)
        await asyncio.sleep(0.05)
        new_address = await moved.open("127.0.0.1")
        moved_peer_b = moved.add_peer(key_b.public, psk=psk, endpoint=address_b)
        moved.sendto(b"from elsewhere", moved_peer_b, PORT)
        _, datagram = await inbox_b.next()
        assert datagram.payload == b"from elsewhere" and peer_a.endpoint == new_address
        b.sendto(b"follows", peer_a, PORT)
        _, datagram = await inbox_a.next()
        assert datagram.payload == b"follows"
    finally:
        for overlay in (a, b, moved):
            overlay.close()


async def test_wrong_psk_delivers_nothing() -> None:
    key_a, key_b = PrivateKey.generate(), PrivateKey.generate()
    inbox_b = Inbox()
    a, b = UdpOverlay(key_a, Inbox()), UdpOverlay(key_b, inbox_b)
    try:
        await a.open("127.0.0.1")
        address_b = await b.open("127.0.0.1")
        peer_b = a.add_peer(key_b.public, psk=os.urandom(32), endpoint=address_b)
        b.add_peer(key_a.public, psk=os.urandom(32))
        a.sendto(b"secret", peer_b, PORT)
        for _ in range(50):
            await asyncio.sleep(0.02)
            if b.endpoint.rejected or a.endpoint.rejected:
                break
        assert a.endpoint.rejected >= 1  # the response did not decrypt
        assert peer_b.current is None and inbox_b.queue.empty()
    finally:
        a.close()
        b.close()


async def test_a_dual_stack_socket_shows_ipv4_peers_as_plain_ipv4_and_reaches_ipv6_ones() -> None:
    psk = os.urandom(32)
    key_a, key_b = PrivateKey.generate(), PrivateKey.generate()
    inbox_a, inbox_b = Inbox(), Inbox()
    a, b = UdpOverlay(key_a, inbox_a), UdpOverlay(key_b, inbox_b)
    try:
        host_a, port_a = await a.open("::")
        host_b, port_b = await b.open("::")
        assert host_a == host_b == "::"
        peer_b = a.add_peer(key_b.public, psk=psk, endpoint=("127.0.0.1", port_b))
        peer_a = b.add_peer(key_a.public, psk=psk)
        a.sendto(b"over IPv4", peer_b, PORT)
        _, datagram = await inbox_b.next()
        assert datagram.payload == b"over IPv4" and peer_a.endpoint == ("127.0.0.1", port_a)
        b.sendto(b"back over IPv4", peer_a, PORT)
        assert (await inbox_a.next())[1].payload == b"back over IPv4"
        assert peer_b.endpoint == ("127.0.0.1", port_b)

        peer_b.endpoint = ("::1", port_b)
        a.sendto(b"over IPv6", peer_b, PORT)
        _, datagram = await inbox_b.next()
        assert datagram.payload == b"over IPv6" and peer_a.endpoint == ("::1", port_a)
    finally:
        a.close()
        b.close()


async def test_the_endpoint_sends_again_on_the_core_deadline_and_idles_without_one() -> None:
    """No polling: the one loop timer the endpoint arms for the core's next deadline carries
    the handshake retransmissions to a peer that never answers."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.setblocking(False)
    overlay = UdpOverlay(PrivateKey.generate(), Inbox(), timers=Timers(rekey_timeout=0.2))
    loop = asyncio.get_running_loop()
    try:
        await overlay.open("127.0.0.1")
        assert overlay.device.next_deadline() is None  # nothing to wake up for
        peer = overlay.add_peer(os.urandom(32), endpoint=silent.getsockname())
        overlay.sendto(b"anyone?", peer, PORT)
        for _ in range(3):  # the first initiation, then two sent again by the timer alone
            data = await asyncio.wait_for(loop.sock_recv(silent, 2048), 10)
            assert data[0] == 1 and len(data) == 148
    finally:
        overlay.close()
        silent.close()
