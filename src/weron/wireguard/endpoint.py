"""One asyncio UDP socket carrying WireGuard for every peer of a device (a thin adapter: all
protocol decisions are the core's, ``device.py``).

Received datagrams go through :meth:`WireGuardDevice.receive` with the loop's clock; what the core
wants sent is sent at once; decrypted packets go to ``on_packet``. One loop timer is armed for
the core's :meth:`~WireGuardDevice.next_deadline` after every call into the core, so an idle
device costs no wake-ups. Calls that change the core's timers therefore go through this class
(``send``, ``initiate``, ``probe``, ``set_persistent_keepalive``...), not to the device.

The socket can be shared (NAT traversal, ``weron.wireguard.nat``): datagrams that are not
WireGuard go to ``on_foreign``, and datagrams for endpoints that are not plain ``(host, port)``
tuples (a ``net.endpoints.Relayed`` peer behind a TURN relay) go to ``send_foreign``, which
wraps them.

Bound to ``::``, the socket is dual-stack (IPv6, and IPv4 as mapped addresses): everything above
it sees plain ``(address, port)`` endpoints, IPv4 ones as ``1.2.3.4``, never ``::ffff:1.2.3.4``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from typing import Final

from weron.log import get_logger
from weron.net.endpoints import Endpoint
from weron.wireguard.device import Datagram, WireGuardDevice, WireGuardPeer
from weron.wireguard.messages import message_type

log = get_logger(__name__)
SOCKET_BUFFER: Final = 4 << 20

MAPPED_PREFIX: Final = "::ffff:"

PacketHandler = Callable[[WireGuardPeer, bytes], None]
DatagramSink = Callable[[bytes, Endpoint], None]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: WireGuardEndpoint) -> None:
        self._endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        host = addr[0]
        if host.startswith(MAPPED_PREFIX) and "." in host:
            host = host.removeprefix(MAPPED_PREFIX)
        self._endpoint.datagram_received(data, (host, addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error", error=str(exc))


class WireGuardEndpoint:
    """The device on a socket: ``open``, then ``send`` packets to peers, ``close`` at the end."""

    def __init__(self, device: WireGuardDevice, on_packet: PacketHandler) -> None:
        self.device = device
        self._on_packet = on_packet
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")  # when the timer fires; inf while none is armed
        self._dual_stack = False
        self.rejected = 0
        self.on_foreign: DatagramSink | None = None
        self.send_foreign: DatagramSink | None = None

    async def open(
        self, host: str = "0.0.0.0", port: int = 0, *, sock: socket.socket | None = None
    ) -> Endpoint:
        """Bind the socket (or use ``sock``, already bound, e.g. in another network
        namespace); returns the local address. ``::`` is both IPv6 and IPv4, or IPv4 alone
        where this host has no IPv6."""
        self._loop = asyncio.get_running_loop()
        if sock is None:
            sock = _bind(host, port)
        self._dual_stack = sock.family == socket.AF_INET6
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        transport, _ = await self._loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self._transport = transport
        self._arm()
        address: Endpoint = transport.get_extra_info("sockname")[:2]
        log.info("WireGuard endpoint listening", addr=f"{address[0]}:{address[1]}")
        return address

    @property
    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def send(self, peer: WireGuardPeer, packet: bytes) -> None:
        """Encrypt ``packet`` for ``peer`` and send it (or stage it behind a handshake)."""
        self._send_all(self.device.send(peer, packet, self.now))
        self._arm()

    def send_many(self, peer: WireGuardPeer, packets: Sequence[bytes]) -> int:
        """Encrypt and send a batch of packets for ``peer``; returns how many."""
        self._send_all(self.device.send_many(peer, packets, self.now))
        self._arm()
        return len(packets)

    @property
    def transport(self) -> asyncio.DatagramTransport:
        assert self._transport is not None, "open() first"
        return self._transport

    def initiate(self, peer: WireGuardPeer) -> None:
        self._send_all(self.device.initiate(peer, self.now))
        self._arm()

    def probe(self, peer: WireGuardPeer) -> bytes | None:
        """The core's probe for ``peer`` (:meth:`WireGuardDevice.probe`), for the caller to
        send along candidate paths."""
        probe = self.device.probe(peer, self.now)
        self._arm()
        return probe

    def set_persistent_keepalive(self, peer: WireGuardPeer, interval: float) -> None:
        self.device.set_persistent_keepalive(peer, interval)
        self._arm()

    def sendto(self, data: bytes, endpoint: Endpoint) -> None:
        """Send raw bytes from the WireGuard socket (STUN, TURN, probes)."""
        self._send_all([(data, endpoint)])

    def datagram_received(self, data: bytes, source: Endpoint) -> None:
        if self.on_foreign is not None and not message_type(data):
            self.on_foreign(data, source)
            return
        self.receive_wireguard(data, source)

    def receive_wireguard(self, data: bytes, source: Endpoint) -> None:
        """A WireGuard datagram from ``source`` (a relay hands over what it unwrapped)."""
        receipt = self.device.receive(data, source, self.now)
        if receipt.replies:
            self._send_all(receipt.replies)
        self._arm()
        if receipt.packet is not None and receipt.peer is not None:
            self._on_packet(receipt.peer, receipt.packet)
        elif receipt.rejected is not None:
            self.rejected += 1
            log.debug("Dropped datagram", source=f"{source[0]}:{source[1]}", why=receipt.rejected)

    def _send_all(self, datagrams: list[Datagram]) -> None:
        transport = self._transport
        if transport is None:
            return
        for data, endpoint in datagrams:
            if endpoint.__class__ is not tuple and self.send_foreign is not None:
                self.send_foreign(data, endpoint)
            elif self._dual_stack and ":" not in endpoint[0]:
                transport.sendto(data, (MAPPED_PREFIX + endpoint[0], endpoint[1]))
            else:
                transport.sendto(data, (endpoint[0], endpoint[1]))

    def _arm(self) -> None:
        """Make the loop timer fire by the core's next deadline (a timer already due sooner
        stays: waking early costs one tick that finds nothing due)."""
        deadline = self.device.next_deadline()
        if deadline is None or self._timer_at <= deadline:
            return
        loop = self._loop
        if loop is None or self._transport is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = max(deadline, loop.time())
        self._timer = loop.call_at(self._timer_at, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        self._timer = None
        self._timer_at = float("inf")
        self._send_all(self.device.tick(self._loop.time()))
        self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = float("inf")
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def _bind(host: str, port: int) -> socket.socket:
    if host == "::":
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        except OSError as exc:  # IPv6 disabled on this host
            log.info("No IPv6 socket: IPv4 only", reason=str(exc))
            host = "0.0.0.0"
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host, port))
            return sock
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, port))
    return sock
