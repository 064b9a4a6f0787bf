"""The ordinary IP packets inside the tunnel: minimal IPv4/IPv6 + UDP building and parsing
(pure code), and the overlay address each peer derives from its public key.

A stock WireGuard peer hands these packets to its kernel, so they must be real packets: valid
header checksums, UDP checksums (mandatory over IPv6), and lengths that let the receiver cut
off WireGuard's padding.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

from weron.net.packets import internet_checksum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

UDP: Final = 17
IPV4_HEADER_SIZE: Final = 20
IPV6_HEADER_SIZE: Final = 40
UDP_HEADER_SIZE: Final = 8
OVERLAY_PREFIX: Final = ipaddress.IPv6Network("fd00::/8")
_OVERLAY_LABEL: Final = b"weron gonet overlay address v1"
_IPV4: Final = struct.Struct("!BBHHHBBH4s4s")
_IPV6: Final = struct.Struct("!IHBB16s16s")
_UDP: Final = struct.Struct("!HHHH")


class PacketError(ValueError):
    """Bytes that are not an IP packet carrying one whole, valid UDP datagram."""


@dataclass(frozen=True, slots=True)
class UdpPacket:
    source: IPAddress
    source_port: int
    destination: IPAddress
    destination_port: int
    payload: bytes


def overlay_address(public_key: bytes) -> ipaddress.IPv6Address:
    """fd00::/8 plus 120 bits of a hash of the key: every peer computes everyone's address."""
    digest = hashlib.blake2s(_OVERLAY_LABEL + public_key).digest()
    return ipaddress.IPv6Address(b"\xfd" + digest[:15])


def build_udp(
    source: IPAddress,
    source_port: int,
    destination: IPAddress,
    destination_port: int,
    payload: bytes,
    *,
    ttl: int = 64,
) -> bytes:
    """One IPv4 or IPv6 packet carrying ``payload`` in a UDP datagram."""
    if source.version != destination.version:
        raise PacketError("source and destination must both be IPv4 or both IPv6")
    udp_length = UDP_HEADER_SIZE + len(payload)
    if udp_length > 0xFFFF:
        raise PacketError(f"UDP payload too large: {len(payload)} bytes")
    if source.version == 4:
        pseudo = source.packed + destination.packed + struct.pack("!BBH", 0, UDP, udp_length)
    else:
        pseudo = source.packed + destination.packed + struct.pack("!I3xB", udp_length, UDP)
    header = _UDP.pack(source_port, destination_port, udp_length, 0)
    checksum = internet_checksum(pseudo + header + payload) or 0xFFFF
    udp = _UDP.pack(source_port, destination_port, udp_length, checksum) + payload
    if source.version == 6:
        return _IPV6.pack(6 << 28, udp_length, UDP, ttl, source.packed, destination.packed) + udp
    fields = [0x45, 0, IPV4_HEADER_SIZE + udp_length, 0, 0x4000, ttl, UDP, 0]
    ip_header = _IPV4.pack(*fields, source.packed, destination.packed)
    fields[7] = internet_checksum(ip_header)
    return _IPV4.pack(*fields, source.packed, destination.packed) + udp


def source_address(packet: bytes) -> IPAddress | None:
    """The source of an IPv4/IPv6 packet (for cryptokey routing), None for anything else."""
    version = packet[0] >> 4 if packet else 0
    if version == 4 and len(packet) >= IPV4_HEADER_SIZE:
        return ipaddress.IPv4Address(packet[12:16])
    if version == 6 and len(packet) >= IPV6_HEADER_SIZE:
        return ipaddress.IPv6Address(packet[8:24])
    return None


def parse_udp(packet: bytes) -> UdpPacket:
    """The UDP datagram in an IP packet (trailing padding ignored); checksums verified."""
    source: IPAddress
    destination: IPAddress
    version = packet[0] >> 4 if packet else 0
    if version == 4:
        source, destination, segment, pseudo_length = _ipv4_segment(packet)
        pseudo = source.packed + destination.packed + struct.pack("!BBH", 0, UDP, pseudo_length)
    elif version == 6:
        source, destination, segment = _ipv6_segment(packet)
        pseudo = source.packed + destination.packed + struct.pack("!I3xB", len(segment), UDP)
    else:
        raise PacketError(f"not an IPv4 or IPv6 packet ({len(packet)} bytes)")
    if len(segment) < UDP_HEADER_SIZE:
        raise PacketError("UDP header truncated")
    source_port, destination_port, length, checksum = _UDP.unpack_from(segment)
    if length != len(segment):
        raise PacketError(f"UDP length {length} does not match the IP payload ({len(segment)})")
    if (checksum or version == 6) and internet_checksum(pseudo + segment) != 0:
        raise PacketError("UDP checksum mismatch")
    return UdpPacket(source, source_port, destination, destination_port, segment[8:])


def _ipv4_segment(
    packet: bytes,
) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address, bytes, int]:
    if len(packet) < IPV4_HEADER_SIZE:
        raise PacketError("IPv4 header truncated")
    header_length = (packet[0] & 0x0F) * 4
    total_length = int.from_bytes(packet[2:4], "big")
    if header_length < IPV4_HEADER_SIZE or not header_length <= total_length <= len(packet):
        raise PacketError("IPv4 lengths are inconsistent")
    if internet_checksum(packet[:header_length]) != 0:
        raise PacketError("IPv4 header checksum mismatch")
    if packet[9] != UDP:
        raise PacketError(f"IP protocol {packet[9]} is not UDP")
    if int.from_bytes(packet[6:8], "big") & 0x3FFF:
        raise PacketError("IPv4 fragments are not reassembled")
    source = ipaddress.IPv4Address(packet[12:16])
    destination = ipaddress.IPv4Address(packet[16:20])
    segment = packet[header_length:total_length]
    return source, destination, segment, len(segment)


def _ipv6_segment(packet: bytes) -> tuple[ipaddress.IPv6Address, ipaddress.IPv6Address, bytes]:
    if len(packet) < IPV6_HEADER_SIZE:
        raise PacketError("IPv6 header truncated")
    _, payload_length, next_header, _, source, destination = _IPV6.unpack_from(packet)
    if IPV6_HEADER_SIZE + payload_length > len(packet):
        raise PacketError("IPv6 payload length beyond the packet")
    if next_header != UDP:
        raise PacketError(f"IPv6 next header {next_header} is not UDP")
    segment = packet[IPV6_HEADER_SIZE : IPV6_HEADER_SIZE + payload_length]
    return ipaddress.IPv6Address(source), ipaddress.IPv6Address(destination), segment
