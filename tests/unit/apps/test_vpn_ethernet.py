"""`vpn ethernet`'s peers: a peer's id is its MAC address, routed to it while it stays,
unless it may not have it (then it is closed). A forwarder on a socket pair stands in for the
TAP device (never started: tests/unit/apps/test_forwarding.py moves the frames)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from tests.unit.fakes import FakeChannel

from weron.apps import vpn_ethernet
from weron.apps.forwarding import Forwarder
from weron.net.device import Device, DeviceKind
from weron.net.packets import is_mac_group, mac_destination, mac_endpoints, parse_mac
from weron.peers import Peer
from weron.webrtc import ChannelClosedError

OURS = "02:00:00:00:00:01"


@pytest.fixture
async def forwarder() -> AsyncIterator[Forwarder]:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    device = Device(ours.detach(), "fake0", DeviceKind.TAP, 0, 1420, parse_mac(OURS))
    forwarder = Forwarder(device, mac_destination, mac_endpoints, is_mac_group)
    forwarder.local = frozenset({parse_mac(OURS)})
    yield forwarder
    device.close()
    kernel.close()


async def test_a_peer_gets_its_mac_address_while_it_stays(forwarder: Forwarder) -> None:
    mac = "02:00:00:00:00:02"
    channel = FakeChannel(linger=True)
    serving = asyncio.create_task(vpn_ethernet.serve(forwarder, Peer(mac, "f", channel)))
    async with asyncio.timeout(5):
        while forwarder.owner(parse_mac(mac)) != mac:
            await asyncio.sleep(0.005)
    channel.close()
    with pytest.raises(ChannelClosedError):
        await asyncio.wait_for(serving, 5)
    assert forwarder.owner(parse_mac(mac)) is None


@pytest.mark.parametrize("peer_id", ["not a mac", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", OURS])
async def test_a_peer_that_may_not_have_its_id_is_closed(
    forwarder: Forwarder, peer_id: str
) -> None:
    channel = FakeChannel(linger=True)
    await asyncio.wait_for(vpn_ethernet.serve(forwarder, Peer(peer_id, "f", channel)), 5)
    assert channel.closed
