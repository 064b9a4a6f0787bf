"""Routing keys of raw packets, without I/O: where an IP packet or an Ethernet frame goes, and
where it claims to come from.

Addresses are kept as packed bytes (4 or 16 for IP, 6 for MAC) so that routing a packet is a
slice and a dictionary lookup, with no parsing into objects.
"""

from __future__ import annotations

from typing import Final

ETHERNET_HEADER: Final = 14
_IPV4_HEADER: Final = 20
_IPV6_HEADER: Final = 40
IPV4_LIMITED_BROADCAST: Final = b"\xff\xff\xff\xff"


def ip_version(packet: bytes) -> int:
    """4, 6, or 0 for anything that is not a whole IPv4/IPv6 header."""
    if not packet:
        return 0
    version = packet[0] >> 4
    if version == 4 and len(packet) >= _IPV4_HEADER:
        return 4
    if version == 6 and len(packet) >= _IPV6_HEADER:
        return 6
    return 0


def ip_destination(packet: bytes) -> bytes | None:
    """The packed destination address, or None for a packet too short to carry one."""
    version = ip_version(packet)
    if version == 4:
        return packet[16:20]
    if version == 6:
        return packet[24:40]
    return None


def ip_endpoints(packet: bytes) -> tuple[bytes, bytes] | None:
    """The packed source and destination addresses, or None: what a peer's packet is checked
    by, in one call (it is on the receive path of every packet)."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= _IPV4_HEADER:
        return packet[12:16], packet[16:20]
    if version == 6 and len(packet) >= _IPV6_HEADER:
        return packet[8:24], packet[24:40]
    return None


def is_ip_multicast(address: bytes) -> bool:
    """224.0.0.0/4 or ff00::/8."""
    if len(address) == 4:
        return 224 <= address[0] <= 239
    return len(address) == 16 and address[0] == 0xFF


def mac_destination(frame: bytes) -> bytes | None:
    return frame[0:6] if len(frame) >= ETHERNET_HEADER else None


def mac_endpoints(frame: bytes) -> tuple[bytes, bytes] | None:
    """The source and destination MACs, or None."""
    return (frame[6:12], frame[0:6]) if len(frame) >= ETHERNET_HEADER else None


def is_mac_group(mac: bytes) -> bool:
    """Broadcast and multicast MACs have the group bit (least significant bit of byte 0)."""
    return bool(mac[0] & 1)


def format_mac(mac: bytes) -> str:
    return ":".join(f"{byte:02x}" for byte in mac)


def parse_mac(text: str) -> bytes:
    """``3a:f8:de:7b:ef:52`` (or with ``-``) to 6 bytes; ``ValueError`` otherwise."""
    parts = text.strip().replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(part) == 2 for part in parts):
        raise ValueError(f"not a MAC address: {text!r} (expected e.g. 3a:f8:de:7b:ef:52)")
    try:
        return bytes(int(part, 16) for part in parts)
    except ValueError:
        raise ValueError(f"not a MAC address: {text!r} (expected e.g. 3a:f8:de:7b:ef:52)") from None


def internet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): 2**16 = 1 modulo 0xFFFF, so the one's-complement
    sum of 16-bit words is the big number modulo 0xFFFF, computed in C."""
    if len(data) % 2:
        data += b"\x00"
    total = int.from_bytes(data, "big") % 0xFFFF
    if total == 0 and any(data):
        total = 0xFFFF
    return ~total & 0xFFFF
