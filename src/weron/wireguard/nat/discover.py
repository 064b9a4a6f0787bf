"""RFC 5780 NAT behaviour discovery against a STUN server with two addresses (`gonet nat`).

Two sockets of their own: the mapping tests send to the server's other address, which would
open our NAT's filter to the very answers the filtering tests wait for, so those run on a
socket that only ever sent to the primary address. Both series run at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import cast

from weron.log import get_logger
from weron.net.endpoints import Endpoint
from weron.wireguard.nat.behavior import Behavior, NatReport, filtering, mapping
from weron.wireguard.nat.stun import CHANGE_IP, CHANGE_PORT, StunAgent, StunError, binding, is_stun

log = get_logger(__name__)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.agent = StunAgent(self._send)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass

    def _send(self, data: bytes, address: Endpoint) -> None:
        if self.transport is not None:
            self.transport.sendto(data, address)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_stun(data):
            self.agent.datagram_received(data, (addr[0], addr[1]))
        else:
            log.debug("Dropped a datagram that is not STUN", source=addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error", error=str(exc))


@contextlib.asynccontextmanager
async def stun_socket(host: str = "0.0.0.0") -> AsyncIterator[tuple[StunAgent, int]]:
    """A UDP socket of its own with a STUN agent on it; yields the agent and the port."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Protocol, local_addr=(host, 0))
    try:
        yield protocol.agent, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


def resolve(host: str, port: int) -> Endpoint:
    """An IPv4 address for ``host`` (the WireGuard socket is IPv4)."""
    address = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4][0]
    return str(address), port


def local_address_toward(server: Endpoint) -> str:
    """The address this host sends from toward ``server`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(server)
        return str(probe.getsockname()[0])


async def _answered(
    agent: StunAgent, server: Endpoint, change: int, other: Endpoint | None
) -> bool:
    try:
        await binding(agent, server, change=change, other=other)
    except StunError:
        return False
    return True


async def _mapping_tests(server: Endpoint) -> tuple[Endpoint, Endpoint, Behavior, Endpoint | None]:
    async with stun_socket() as (agent, port):
        first = await binding(agent, server)
        local = (local_address_toward(server), port)
        other = first.other
        if other is None:
            log.info("The STUN server did not give its other address (no RFC 5780 support)")
            return local, first.mapped, Behavior.UNKNOWN, None
        second = third = None
        with contextlib.suppress(StunError):
            second = (await binding(agent, (other[0], server[1]))).mapped
        if second is not None and second != first.mapped:
            with contextlib.suppress(StunError):
                third = (await binding(agent, other)).mapped
        return local, first.mapped, mapping(first.mapped, second, third), other


async def _filtering_tests(server: Endpoint) -> tuple[bool, bool]:
    async with stun_socket() as (agent, _):
        other = (await binding(agent, server)).other
        if await _answered(agent, server, CHANGE_IP | CHANGE_PORT, other):
            return True, True
        return False, await _answered(agent, server, CHANGE_PORT, other)


async def discover(host: str, port: int) -> NatReport:
    """Run the mapping and filtering tests against ``host:port``; StunError if the server
    does not answer at all."""
    server = await asyncio.to_thread(resolve, host, port)
    (local, public, mapped, other), (from_other, from_other_port) = await asyncio.gather(
        _mapping_tests(server), _filtering_tests(server)
    )
    filtered = Behavior.UNKNOWN if other is None else filtering(from_other, from_other_port)
    return NatReport(local, public, mapped, filtered)
