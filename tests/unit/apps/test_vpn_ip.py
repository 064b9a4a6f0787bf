"""`vpn ip` between the name negotiation and the packet path (``IpMembership``): where our
claimed addresses go, and which of a peer's claimed addresses are routed to it. A fake adapter
gives the names, a forwarder on a socket pair stands in for the TUN device (never started:
no packet travels here, tests/unit/apps/test_forwarding.py has those)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from tests.unit.fakes import FakeAdapter, FakeChannel, until

from weron.apps import vpn_ip
from weron.apps.forwarding import Forwarder
from weron.apps.peering import PeerAppError
from weron.net import claims
from weron.net.device import Device, DeviceKind
from weron.net.packets import ip_destination, ip_endpoints
from weron.peers import Peer
from weron.peers.names import AllNamesClaimedError
from weron.webrtc import ChannelClosedError


def packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


@dataclass
class Member:
    """One ``IpMembership`` on the overlay 10.0.0.0/24, and what it did to its collaborators."""

    routes: vpn_ip._Routes
    forwarder: Forwarder
    names: FakeAdapter
    addresses: list[list[claims.Interface]] = field(default_factory=list)  # given the device
    remembered: list[str] = field(default_factory=list)  # written to the state file

    def membership(self, static_ips: Sequence[str] | None = None) -> vpn_ip.IpMembership:
        async def set_addresses(interfaces: Sequence[claims.Interface]) -> None:
            self.addresses.append(list(interfaces))

        return vpn_ip.IpMembership(
            claims.Overlay(claims.parse_networks(["10.0.0.1/24"])),
            self.routes,
            self.forwarder,
            set_addresses=set_addresses,
            remember=self.remembered.append,
            static_ips=static_ips,
        )


@pytest.fixture
async def member() -> AsyncIterator[Member]:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    device = Device(ours.detach(), "fake0", DeviceKind.TUN, 0, 1420)
    routes = vpn_ip._Routes()
    forwarder = Forwarder(device, ip_destination, ip_endpoints, routes.is_group)
    yield Member(routes, forwarder, FakeAdapter())
    device.close()
    kernel.close()


async def test_each_claim_of_ours_reaches_routes_forwarder_device_and_state_file(
    member: Member,
) -> None:
    following = asyncio.create_task(member.membership().follow_claims(member.names))
    member.names.names.put_nowait('["10.0.0.7/24"]')
    await until(lambda: len(member.remembered) == 1)
    assert member.forwarder.local == {packed("10.0.0.7")}
    assert member.addresses == [[ipaddress.ip_interface("10.0.0.7/24")]]
    assert member.routes.is_group(packed("10.0.0.255"))  # our network's broadcast
    assert member.remembered == ['["10.0.0.7/24"]']

    # A claim can change (an older member took ours): everything follows the new one.
    member.names.names.put_nowait('["10.0.0.9/25"]')
    await until(lambda: len(member.remembered) == 2)
    assert member.forwarder.local == {packed("10.0.0.9")}
    assert member.addresses[-1] == [ipaddress.ip_interface("10.0.0.9/25")]
    assert member.routes.is_group(packed("10.0.0.127"))
    assert not member.routes.is_group(packed("10.0.0.255"))
    following.cancel()


async def test_static_addresses_claimed_by_another_member_end_the_vpn_naming_them(
    member: Member,
) -> None:
    member.names.names.put_nowait(AllNamesClaimedError())
    with pytest.raises(PeerAppError, match=r"10\.0\.0\.1/24 are already claimed.*--static"):
        await member.membership(static_ips=["10.0.0.1/24"]).follow_claims(member.names)


async def test_no_address_left_to_claim_is_the_negotiation_s_own_error(member: Member) -> None:
    member.names.names.put_nowait(AllNamesClaimedError())
    with pytest.raises(AllNamesClaimedError):
        await member.membership().follow_claims(member.names)


async def test_a_peer_gets_the_addresses_of_its_claim_it_may_have_until_it_leaves(
    member: Member,
) -> None:
    member.forwarder.local = frozenset({packed("10.0.0.1")})
    channel = FakeChannel(linger=True)
    claim = '["10.0.0.2/24","10.0.0.1/24","192.0.2.5/24"]'  # ours and outside: refused
    serving = asyncio.create_task(member.membership().serve(Peer(claim, "p", channel)))
    await until(lambda: member.forwarder.owner(packed("10.0.0.2")) == claim)
    assert member.forwarder.owner(packed("10.0.0.1")) is None
    assert member.forwarder.owner(packed("192.0.2.5")) is None
    channel.close()  # the peer leaves: serve_each_peer hears it as ChannelClosedError
    with pytest.raises(ChannelClosedError):
        await asyncio.wait_for(serving, 5)
    assert member.forwarder.owner(packed("10.0.0.2")) is None


@pytest.mark.parametrize("claim", ['["10.0.0.1/24"]', '["192.0.2.5/24"]', "not a claim"])
async def test_a_peer_that_may_claim_none_of_its_addresses_is_closed(
    member: Member, claim: str
) -> None:
    member.forwarder.local = frozenset({packed("10.0.0.1")})
    channel = FakeChannel(linger=True)
    await asyncio.wait_for(member.membership().serve(Peer(claim, "p", channel)), 5)
    assert channel.closed
