"""What the VPNs tell the adapter (their overlay networks) and whom they refuse as a peer."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from weron.apps import vpn_ip
from weron.apps.vpn_ethernet import mac_refusal
from weron.net import claims
from weron.net.device import Device, DeviceKind, _networks_of, address_networks
from weron.net.packets import parse_mac
from weron.webrtc import IpNetwork


def test_vpn_ip_overlay_networks_follow_the_claim_and_the_device() -> None:
    overlay = claims.Overlay(claims.parse_networks(["10.77.0.1/24", "fd00:77::1/64"]))
    routes = vpn_ip._Routes()
    on_device: list[IpNetwork] = []
    networks = vpn_ip.overlay_networks(overlay, routes, lambda: on_device)
    assert networks() == [
        ipaddress.ip_network("10.77.0.0/24"),
        ipaddress.ip_network("fd00:77::/64"),
    ]
    routes.claimed(claims.Claim.of('["10.77.0.9/16"]'))
    on_device.append(ipaddress.ip_network("10.99.0.0/24"))  # added by hand: asked every time
    assert networks()[2:] == [
        ipaddress.ip_network("10.77.0.0/16"),
        ipaddress.ip_network("10.99.0.0/24"),
    ]


@pytest.mark.parametrize(
    ("mac", "reason"),
    [
        ("ff:ff:ff:ff:ff:ff", "group"),
        ("33:33:00:00:00:01", "group"),
        ("00:00:00:00:00:00", "all zeros"),
        ("3a:f8:de:7b:ef:52", "ours"),
    ],
)
def test_a_peer_may_not_have_a_group_zero_or_our_mac(mac: str, reason: str) -> None:
    refusal = mac_refusal(parse_mac(mac), {parse_mac("3a:f8:de:7b:ef:52")})
    assert refusal is not None and reason in refusal


def test_a_peer_may_have_another_unicast_mac() -> None:
    assert mac_refusal(parse_mac("3a:f8:de:7b:ef:53"), {parse_mac("3a:f8:de:7b:ef:52")}) is None


def _newaddr(family: int, prefixlen: int, scope: int, index: int, *addresses: bytes) -> bytes:
    attributes = b"".join(
        struct.pack("=HH", 4 + len(address), kind) + address + bytes(-len(address) % 4)
        for kind, address in zip((1, 2), addresses, strict=False)
    )
    return struct.pack("=BBBBI", family, prefixlen, 0, scope, index) + attributes


def test_netlink_address_messages_give_the_networks_of_global_addresses_of_the_device() -> None:
    v4 = _newaddr(socket.AF_INET, 24, 0, 7, bytes([10, 90, 0, 1]), bytes([10, 90, 0, 1]))
    v6 = _newaddr(socket.AF_INET6, 64, 0, 7, ipaddress.ip_address("fd00:90::1").packed)
    assert _networks_of(v4, 7) == [ipaddress.ip_network("10.90.0.0/24")] * 2
    assert _networks_of(v6, 7) == [ipaddress.ip_network("fd00:90::/64")]
    assert _networks_of(v4, 8) == []  # another device's
    link_local = ipaddress.ip_address("fe80::1").packed
    assert _networks_of(_newaddr(socket.AF_INET6, 64, 253, 7, link_local), 7) == []


def test_the_loopback_device_has_no_global_address_networks() -> None:
    """A real dump (no root needed): it ends, and host-scope addresses are left out."""
    loopback = Device(-1, "lo", DeviceKind.TUN, socket.if_nametoindex("lo"), 65536)
    assert address_networks(loopback) == ()
