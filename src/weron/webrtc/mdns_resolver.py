"""Resolving ``.local`` names over multicast DNS: a thin UDP adapter around
:mod:`weron.webrtc.mdns` (docs/browser.md#local-candidates).

One socket per resolver, opened on first use: bound to port 5353 with address reuse (next to
Avahi or another resolver) and joined to the IPv4 mDNS group, so it hears the multicast answers
a responder sends to a query from port 5353. A query goes out twice (mDNS is lossy); a name
without an answer within ``timeout`` is ``None``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Final

from weron.log import get_logger
from weron.webrtc import mdns

log = get_logger(__name__)

TIMEOUT: Final = 3.0
_RESEND: Final = 1.0


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, resolver: MdnsResolver) -> None:
        self._resolver = resolver

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            answers = mdns.decode_answers(data)
        except mdns.MdnsError as exc:
            log.debug("Ignoring malformed mDNS packet", source=str(addr[0]), error=str(exc))
            return
        for name, address in answers:
            self._resolver.answered(name, address)

    def error_received(self, exc: Exception) -> None:
        log.debug("mDNS socket error", error=str(exc))


def _socket(group: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("", group[1]))
        membership = socket.inet_aton(group[0]) + socket.inet_aton("0.0.0.0")
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class MdnsResolver:
    """Resolves ``.local`` names; :meth:`close` when done. ``group`` is for tests."""

    def __init__(self, *, timeout: float = TIMEOUT, group: tuple[str, int] = mdns.GROUP) -> None:
        self._timeout = timeout
        self._group = group
        self._transport: asyncio.DatagramTransport | None = None
        self._opening: asyncio.Lock | None = None
        self._unavailable = False
        self._waiting: dict[str, list[asyncio.Future[str]]] = {}

    async def _open(self) -> asyncio.DatagramTransport | None:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._transport is None and not self._unavailable:
                try:
                    sock = _socket(self._group)
                except OSError as exc:
                    self._unavailable = True  # said once; the engines get the names as they are
                    log.warning(
                        "Cannot resolve .local candidates (browsers on this LAN hide their "
                        "addresses behind them): no mDNS socket",
                        error=exc.strerror or str(exc),
                    )
                    return None
                loop = asyncio.get_running_loop()
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Protocol(self), sock=sock
                )
                self._transport = transport
        return self._transport

    def answered(self, name: str, address: str) -> None:
        """An answer arrived (from the socket; also any responder's unsolicited ones)."""
        for future in self._waiting.get(name, []):
            if not future.done():
                future.set_result(address)

    async def resolve(self, host: str) -> str | None:
        """The first address answered for ``host``, or ``None`` when it is no ``.local``
        name, nobody answered in time, or mDNS is unavailable here."""
        name = mdns.mdns_name(host)
        if name is None:
            return None
        transport = await self._open()
        if transport is None:
            return None
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(name, []).append(future)
        query = mdns.encode_query(name)
        try:
            async with asyncio.timeout(self._timeout):
                while True:
                    transport.sendto(query, self._group)
                    with contextlib.suppress(TimeoutError):
                        address = await asyncio.wait_for(asyncio.shield(future), _RESEND)
                        return address
        except TimeoutError:
            log.debug("No mDNS answer", name=name, timeout=self._timeout)
            return None
        finally:
            waiting = self._waiting.get(name, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._waiting.pop(name, None)
            future.cancel()

    async def resolve_candidate(self, candidate: str) -> str:
        """The candidate line with its ``.local`` name replaced by the address, or unchanged
        when it has none or it cannot be resolved: the engine may still know better (aioice
        asks mDNS itself; libdatachannel the system resolver, which knows ``.local`` where
        nss-mdns is set up)."""
        name = mdns.candidate_host(candidate)
        if name is None:
            return candidate
        address = await self.resolve(name)
        if address is None:
            log.info("Could not resolve a candidate's .local name", name=name)
            return candidate
        log.debug("Resolved a candidate's .local name", name=name, address=address)
        return mdns.with_address(candidate, address)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
