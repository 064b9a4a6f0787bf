"""Routing keys of raw IP packets and Ethernet frames."""

from __future__ import annotations

import ipaddress

import pytest

from weron.net import packets


def ipv4(source: str, destination: str) -> bytes:
    header = bytearray(20)
    header[0] = 0x45
    header[12:16] = ipaddress.IPv4Address(source).packed
    header[16:20] = ipaddress.IPv4Address(destination).packed
    return bytes(header) + b"payload"


def ipv6(source: str, destination: str) -> bytes:
    header = bytearray(40)
    header[0] = 0x60
    header[8:24] = ipaddress.IPv6Address(source).packed
    header[24:40] = ipaddress.IPv6Address(destination).packed
    return bytes(header)


def test_ip_addresses_of_both_versions() -> None:
    packet = ipv4("10.0.0.1", "10.0.0.2")
    assert packets.ip_endpoints(packet) == (bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    assert packets.ip_destination(packet) == bytes([10, 0, 0, 2])
    packet = ipv6("fd00::1", "ff02::1")
    source, destination = packets.ip_endpoints(packet) or (b"", b"")
    assert source == ipaddress.IPv6Address("fd00::1").packed
    assert destination == ipaddress.IPv6Address("ff02::1").packed
    assert packets.is_ip_multicast(packets.ip_destination(packet) or b"")


@pytest.mark.parametrize(
    "packet", [b"", b"\x45" * 19, b"\x60" * 39, bytes(40), b"\x70" + bytes(60)]
)
def test_short_or_unknown_packets_have_no_addresses(packet: bytes) -> None:
    assert packets.ip_destination(packet) is None
    assert packets.ip_endpoints(packet) is None


@pytest.mark.parametrize(
    ("address", "multicast"),
    [
        ("224.0.0.1", True),
        ("239.255.255.250", True),
        ("10.0.0.1", False),
        ("ff02::1", True),
        ("fd00::1", False),
    ],
)
def test_multicast(address: str, multicast: bool) -> None:
    assert packets.is_ip_multicast(ipaddress.ip_address(address).packed) is multicast


def test_ethernet_addresses_and_groups() -> None:
    frame = bytes.fromhex("ffffffffffff3af8de7bef520806") + b"arp"
    assert packets.mac_destination(frame) == b"\xff" * 6
    source, destination = packets.mac_endpoints(frame) or (b"", b"")
    assert (packets.format_mac(source), destination) == ("3a:f8:de:7b:ef:52", b"\xff" * 6)
    assert packets.is_mac_group(b"\xff" * 6)
    assert packets.is_mac_group(bytes.fromhex("333300000001"))
    assert not packets.is_mac_group(bytes.fromhex("3af8de7bef52"))
    assert packets.mac_destination(b"short") is None
    assert packets.mac_endpoints(b"short") is None


@pytest.mark.parametrize(
    "text", ["", "3a:f8:de:7b:ef", "3a:f8:de:7b:ef:5g", "3af8de7bef52", "3a:f8:de:7b:ef:521"]
)
def test_bad_macs_are_clear_errors(text: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        packets.parse_mac(text)


def test_macs_parse_with_colons_or_dashes() -> None:
    assert packets.parse_mac("3A-F8-DE-7B-EF-52") == bytes.fromhex("3af8de7bef52")
