"""IP/UDP packets inside the tunnel: round trips, checksums, padding, garbage."""

from __future__ import annotations

import ipaddress
import random

import pytest

from weron.wireguard.crypto import PrivateKey
from weron.wireguard.ip import (
    OVERLAY_PREFIX,
    PacketError,
    build_udp,
    overlay_address,
    parse_udp,
    source_address,
)

V4 = (ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.2"))
V6 = (ipaddress.IPv6Address("fd00::1"), ipaddress.IPv6Address("fd00::2"))


@pytest.mark.parametrize("addresses", [V4, V6], ids=["ipv4", "ipv6"])
def test_round_trip_with_padding_and_checksums(
    addresses: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]
    | tuple[ipaddress.IPv6Address, ipaddress.IPv6Address],
) -> None:
    source, destination = addresses
    for size in (0, 1, 2, 3, 1372):
        payload = random.randbytes(size)
        packet = build_udp(source, 1234, destination, 5678, payload)
        assert source_address(packet) == source
        parsed = parse_udp(packet + bytes(15))  # WireGuard's padding after the packet
        assert (parsed.source, parsed.source_port) == (source, 1234)
        assert (parsed.destination, parsed.destination_port) == (destination, 5678)
        assert parsed.payload == payload
        if size:
            corrupt = bytearray(packet)
            corrupt[-1] ^= 0x40
            with pytest.raises(PacketError, match="checksum"):
                parse_udp(bytes(corrupt))


def rfc1071(data: bytes) -> int:
    """The checksum the slow, obvious way: add 16-bit words with end-around carry."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_checksums_agree_with_the_textbook_algorithm() -> None:
    # The IPv4 header walked through in many textbooks: its checksum field is 0xb861.
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert rfc1071(header) == 0xB861
    packet = build_udp(
        ipaddress.IPv4Address("192.168.0.1"), 1, ipaddress.IPv4Address("192.168.0.199"), 2, b"x"
    )
    assert rfc1071(packet[:20]) == 0 and rfc1071(header[:10] + b"\xb8\x61" + header[12:]) == 0
    for source, destination in (V4, V6):
        for size in range(0, 64):
            packet = build_udp(source, 7, destination, 9, random.randbytes(size))
            udp = packet[20:] if source.version == 4 else packet[40:]
            length = len(udp).to_bytes(2, "big")
            if source.version == 4:
                pseudo = source.packed + destination.packed + b"\x00\x11" + length
            else:
                pseudo = (
                    source.packed + destination.packed + b"\x00\x00" + length + b"\x00\x00\x00\x11"
                )
            assert rfc1071(pseudo + udp) == 0


def test_garbage_is_rejected_with_packet_error_only() -> None:
    rng = random.Random(3)
    good = build_udp(*V6[:1], 1, V6[1], 2, b"hello")
    for length in range(0, 120):
        for first in (0x45, 0x60, 0x00, 0xFF):
            data = bytearray(rng.randbytes(length))
            if data:
                data[0] = first
            with pytest.raises(PacketError):
                parse_udp(bytes(data))
    for cut in range(len(good)):
        with pytest.raises(PacketError):
            parse_udp(good[:cut])
    with pytest.raises(PacketError, match="IPv4 or both IPv6"):
        build_udp(V4[0], 1, V6[1], 2, b"")


def test_overlay_address_is_derived_from_the_public_key() -> None:
    key = PrivateKey.generate().public
    address = overlay_address(key)
    assert address in OVERLAY_PREFIX and address == overlay_address(key)
    assert overlay_address(PrivateKey.generate().public) != address
