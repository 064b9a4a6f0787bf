"""UDP between overlay addresses, over WireGuard: what an app such as gonet's chat uses.

Each peer's overlay address is derived from its public key (``ip.overlay_address``), and that
address is the only one the peer may send from (WireGuard's cryptokey routing): a packet with
another source, or not addressed to us, is dropped with a log line.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from ipaddress import IPv6Address

from weron.log import get_logger
from weron.net.endpoints import Endpoint
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.device import Timers, WireGuardDevice, WireGuardPeer
from weron.wireguard.endpoint import WireGuardEndpoint
from weron.wireguard.ip import PacketError, UdpPacket, build_udp, overlay_address, parse_udp

log = get_logger(__name__)

DatagramHandler = Callable[[WireGuardPeer, UdpPacket], None]


class UdpOverlay:
    """One WireGuard endpoint whose tunnels carry UDP datagrams between overlay addresses."""

    def __init__(
        self,
        private_key: PrivateKey,
        on_datagram: DatagramHandler,
        *,
        timers: Timers | None = None,
    ) -> None:
        self.device = WireGuardDevice(private_key, timers=timers)
        self.address = overlay_address(private_key.public)
        self.endpoint = WireGuardEndpoint(self.device, self._packet_received)
        self._on_datagram = on_datagram
        self._addresses: dict[bytes, IPv6Address] = {}

    async def open(
        self, host: str = "0.0.0.0", port: int = 0, *, sock: socket.socket | None = None
    ) -> Endpoint:
        return await self.endpoint.open(host, port, sock=sock)

    def add_peer(
        self, public_key: bytes, *, psk: bytes | None = None, endpoint: Endpoint | None = None
    ) -> WireGuardPeer:
        peer = self.device.add_peer(public_key, psk=psk, endpoint=endpoint)
        if endpoint is not None:
            peer.endpoint = endpoint
        self._addresses[public_key] = overlay_address(public_key)
        return peer

    def remove_peer(self, public_key: bytes) -> None:
        self.device.remove_peer(public_key)
        self._addresses.pop(public_key, None)

    def sendto(
        self, payload: bytes, peer: WireGuardPeer, port: int, source_port: int | None = None
    ) -> None:
        """One UDP datagram from our overlay address to ``peer``'s, port ``port``."""
        packet = build_udp(
            self.address,
            port if source_port is None else source_port,
            self._addresses[peer.public_key],
            port,
            payload,
        )
        self.endpoint.send(peer, packet)

    def _packet_received(self, peer: WireGuardPeer, packet: bytes) -> None:
        try:
            datagram = parse_udp(packet)
        except PacketError as exc:
            log.debug("Dropped packet from peer", why=str(exc))
            return
        if datagram.source != self._addresses.get(peer.public_key):
            log.debug(
                "Dropped packet with a source the peer may not use", source=str(datagram.source)
            )
            return
        if datagram.destination != self.address:
            log.debug("Dropped packet not addressed to us", destination=str(datagram.destination))
            return
        self._on_datagram(peer, datagram)

    def close(self) -> None:
        self.endpoint.close()
