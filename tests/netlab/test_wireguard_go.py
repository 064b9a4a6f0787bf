"""Interop with a stock WireGuard: our Python peer against wireguard-go in network namespaces,
UDP datagrams to and from a socket on wireguard-go's overlay address, both directions, both
handshake roles, a rekey, and a wrong pre-shared key."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator

import pytest

from netlab.wglab import WireGuardGo, WireGuardLab, missing_requirements
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.device import Timers, WireGuardPeer
from weron.wireguard.ip import UdpPacket
from weron.wireguard.overlay import UdpOverlay

pytestmark = pytest.mark.skipif(
    missing_requirements() is not None, reason=f"WireGuard lab: {missing_requirements()}"
)
CHAT_PORT = 5000


class Inbox:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[WireGuardPeer, UdpPacket]] = asyncio.Queue()

    def __call__(self, peer: WireGuardPeer, datagram: UdpPacket) -> None:
        self.queue.put_nowait((peer, datagram))

    async def next(self) -> UdpPacket:
        return (await asyncio.wait_for(self.queue.get(), 15))[1]


@pytest.fixture
def lab() -> Iterator[WireGuardLab]:
    with WireGuardLab() as lab:
        yield lab


async def receive(sock: socket.socket) -> tuple[bytes, tuple[str, int]]:
    data, address = await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(sock, 4096), 15)
    return data, (address[0], address[1])


async def python_peer(
    lab: WireGuardLab, go: WireGuardGo, psk: bytes, go_psk: bytes, timers: Timers | None = None
) -> tuple[UdpOverlay, Inbox, WireGuardPeer, socket.socket]:
    """Our overlay in the left namespace, known to ``go``; and a socket on go's address."""
    key = PrivateKey.generate()
    inbox = Inbox()
    overlay = UdpOverlay(key, inbox, timers=timers)
    ours = await overlay.open(sock=lab.udp_socket(lab.left, lab.left.address))
    lab.add_peer(go, key.public, ours, go_psk)
    peer = overlay.add_peer(go.key.public, psk=psk, endpoint=go.endpoint)
    receiver = lab.udp_socket(lab.right, go.overlay, CHAT_PORT)
    receiver.setblocking(False)
    return overlay, inbox, peer, receiver


async def test_we_initiate_exchange_both_ways_and_survive_a_rekey(lab: WireGuardLab) -> None:
    go = lab.start_wireguard_go(lab.right)
    psk = os.urandom(32)
    overlay, inbox, peer, receiver = await python_peer(
        lab, go, psk, psk, Timers(rekey_after_time=2.0, rekey_timeout=1.0)
    )
    try:
        overlay.sendto(b"hello wireguard-go", peer, CHAT_PORT, source_port=6000)
        data, source = await receive(receiver)
        assert data == b"hello wireguard-go" and source == (str(overlay.address), 6000)
        receiver.sendto(b"hello python", source)
        datagram = await inbox.next()
        assert datagram.payload == b"hello python"
        assert (str(datagram.source), datagram.source_port) == (go.overlay, CHAT_PORT)
        first, handshakes = peer.current, peer.handshakes
        assert lab.latest_handshake(go, overlay.device.public_key) > 0

        await asyncio.sleep(2.1)  # past our (shortened) REKEY_AFTER_TIME and REKEY_TIMEOUT
        overlay.sendto(b"old keys", peer, CHAT_PORT, source_port=6000)  # + a new initiation
        assert (await receive(receiver))[0] == b"old keys"
        for _ in range(150):
            if peer.handshakes > handshakes:
                break
            await asyncio.sleep(0.1)
        assert peer.handshakes == handshakes + 1 and peer.current is not first
        assert peer.current is not None and peer.current.initiator
        for n in range(3):
            overlay.sendto(b"new keys %d" % n, peer, CHAT_PORT, source_port=6000)
            assert (await receive(receiver))[0] == b"new keys %d" % n
            receiver.sendto(b"reply %d" % n, source)
            assert (await inbox.next()).payload == b"reply %d" % n
        assert peer.current.replay.acceptable(0) is False  # go used the new keys to reply
    finally:
        overlay.close()
        receiver.close()


async def test_wireguard_go_initiates_and_we_respond(lab: WireGuardLab) -> None:
    go = lab.start_wireguard_go(lab.right)
    overlay, inbox, peer, receiver = await python_peer(lab, go, b"\x07" * 32, b"\x07" * 32)
    peer.endpoint = None  # we learn go's endpoint from its handshake
    try:
        receiver.sendto(b"go speaks first", (str(overlay.address), 7000))
        datagram = await inbox.next()
        assert datagram.payload == b"go speaks first" and datagram.destination_port == 7000
        assert peer.endpoint == go.endpoint
        assert peer.current is not None and not peer.current.initiator
        overlay.sendto(b"answer", peer, CHAT_PORT, source_port=7000)
        assert (await receive(receiver))[0] == b"answer"
    finally:
        overlay.close()
        receiver.close()


async def test_wrong_preshared_key_gets_nothing_through(lab: WireGuardLab) -> None:
    go = lab.start_wireguard_go(lab.right)
    overlay, inbox, peer, receiver = await python_peer(lab, go, os.urandom(32), os.urandom(32))
    try:
        overlay.sendto(b"must not arrive", peer, CHAT_PORT)
        for _ in range(150):
            if overlay.endpoint.rejected:
                break
            await asyncio.sleep(0.1)
        assert overlay.endpoint.rejected >= 1  # go's response did not decrypt
        assert peer.current is None and inbox.queue.empty()
        with pytest.raises(BlockingIOError):
            receiver.recv(4096)
    finally:
        overlay.close()
        receiver.close()
