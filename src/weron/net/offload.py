"""TUN/TAP offloads without I/O: the virtio-net header a TUN or TAP opened with
``IFF_VNET_HDR`` puts before every packet or frame, and TCP and UDP super-packets (GSO: TSO
and USO, up to 64 KB) cut into the plain packets a peer without offloads takes.

With offloads on (``TUNSETOFFLOAD``: checksums and TSO for IPv4 and IPv6) the kernel hands the
reader one TCP super-packet where it would have handed ~45 segments, with the checksum left
for the reader to complete, and accepts such super-packets on write: one read, one
data-channel message and one write per 64 KB instead of per segment. Only peers that
advertised it get them whole (docs/wire-protocol.md#vpn-frames); every other peer gets
:func:`segments`, plain IP packets with their checksums filled in.

A TAP's super-frame is the same with an Ethernet header (and maybe one VLAN tag) in front:
the header's offsets count from the frame's start, and every segment gets the frame's Ethernet
header (``ethernet=True``).

UDP super-packets (``GSO_UDP_L4``, TUN_F_USO4/6, Linux >= 6.2) come from senders that use
UDP_SEGMENT (QUIC stacks, wireguard-go): one UDP header for many datagrams of ``gso_size``
bytes each. They are a promise of their own (``udp=True``), since a peer that takes TCP
super-packets need not take them.

A peer's header is not trusted: :func:`refusal` says why one is refused before it reaches the
device (the kernel checks it again, as it checks a virtual machine's).
"""

from __future__ import annotations

import struct
from typing import Final, Never

from weron.net.packets import internet_checksum

# flags, gso_type, hdr_len, gso_size, csum_start, csum_offset; the TUN's byte order is the
# host's (no TUNSETVNETLE/BE): little-endian on every machine Linux runs weron on.
VNET_HEADER: Final = struct.Struct("<BBHHHH")
VNET_HEADER_SIZE: Final = VNET_HEADER.size  # 10
PLAIN_HEADER: Final = bytes(VNET_HEADER_SIZE)  # no checksum to complete, not a super-packet
NEEDS_CSUM: Final = 0x01
DATA_VALID: Final = 0x02
GSO_NONE: Final = 0
GSO_TCPV4: Final = 1
GSO_TCPV6: Final = 4
GSO_UDP_L4: Final = 5
_KNOWN_FLAGS: Final = NEEDS_CSUM | DATA_VALID
_TCP: Final = 6
_UDP: Final = 17
_UDP_HEADER: Final = 8
_IPV6_HEADER: Final = 40
_ETHERNET_HEADER: Final = 14
_VLAN_TAG: Final = 4
_VLAN_TYPES: Final = (0x8100, 0x88A8)  # 802.1Q, 802.1ad: one tag is taken, as the kernel does
_IP_TYPES: Final = {0x0800: 4, 0x86DD: 6}
_MAX_IP_PACKET: Final = 65_535
_FIN_PSH: Final = 0x01 | 0x08  # only on a super-packet's last segment
_CWR: Final = 0x80  # only on its first


class OffloadError(ValueError):
    """A header or super-packet that cannot be completed or cut (the message says why)."""


def refusal(message: bytes, *, ethernet: bool = False, udp: bool = False) -> str | None:
    """Why a peer's header and packet (``ethernet``: frame) must not reach the device, or
    None. Checked: known flags and GSO types only (``udp``: UDP super-packets too), the
    checksum's place inside the packet, and for a super-packet an IPv4/IPv6 TCP (UDP) packet of
    the type the header says (in a frame whose EtherType says that IP version), with a segment
    size."""
    least = _ETHERNET_HEADER if ethernet else 0
    if len(message) < VNET_HEADER_SIZE + least + 20:
        return f"shorter than a header and an IP {'frame' if ethernet else 'packet'}"
    flags, gso_type, _, gso_size, csum_start, csum_offset = VNET_HEADER.unpack_from(message)
    packet_length = len(message) - VNET_HEADER_SIZE
    if flags & ~_KNOWN_FLAGS:
        return f"unknown flags {flags:#x}"
    if flags & NEEDS_CSUM and csum_start + csum_offset + 2 > packet_length:
        return "checksum outside the packet"
    if gso_type == GSO_NONE:
        return None
    try:
        link = _link_header(message, VNET_HEADER_SIZE) if ethernet else 0
    except OffloadError as exc:
        return str(exc)
    version = message[VNET_HEADER_SIZE + link] >> 4
    if gso_type == GSO_UDP_L4 and udp:
        if version not in (4, 6):
            return "UDP super-packet that is not IPv4 or IPv6"
    elif (gso_type, version) not in ((GSO_TCPV4, 4), (GSO_TCPV6, 6)):
        return f"GSO type {gso_type:#x} does not match an IPv{version} packet"
    if gso_size == 0 or not flags & NEEDS_CSUM:
        return "super-packet without a segment size or checksum to complete"
    if packet_length - link > _MAX_IP_PACKET:
        return "super-packet larger than an IP packet"
    packet = memoryview(message)[VNET_HEADER_SIZE + link :]
    try:
        _udp_header(packet) if gso_type == GSO_UDP_L4 else _tcp_headers(packet)
    except OffloadError as exc:
        return str(exc)
    return None


def segments(message: bytes, *, ethernet: bool = False) -> list[bytes]:
    """The plain IP packets (``ethernet``: frames) of one header-and-packet from our device:
    the packet itself with its checksum completed, or a TCP super-packet cut into
    ``gso_size`` segments, each with its own lengths, sequence number, flags and checksums (as
    the kernel would cut it), or a UDP one into datagrams of ``gso_size`` bytes, and in a
    frame each with the super-frame's Ethernet header. ``OffloadError`` for what cannot be
    cut."""
    flags, gso_type, _, gso_size, csum_start, csum_offset = VNET_HEADER.unpack_from(message)
    packet = message[VNET_HEADER_SIZE:]
    if gso_type == GSO_NONE:
        if flags & NEEDS_CSUM:
            return [_complete_checksum(packet, csum_start, csum_offset)]
        return [packet]
    if gso_type not in (GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4) or gso_size == 0:
        raise OffloadError(f"cannot cut GSO type {gso_type:#x}")
    cut = _cut_udp if gso_type == GSO_UDP_L4 else _cut_tcp
    if not ethernet:
        return cut(packet, gso_size)
    link = _link_header(packet, 0)
    return [packet[:link] + each for each in cut(packet[link:], gso_size)]


def _link_header(message: bytes, start: int) -> int:
    """The length of the Ethernet header (with at most one VLAN tag) of the frame at
    ``start``, which must carry IPv4 or IPv6."""
    length = _ETHERNET_HEADER
    if len(message) < start + length:
        return _bad("Ethernet header cut short")
    ether_type = int.from_bytes(message[start + 12 : start + 14], "big")
    if ether_type in _VLAN_TYPES:
        length += _VLAN_TAG
        if len(message) < start + length:
            return _bad("VLAN tag cut short")
        ether_type = int.from_bytes(message[start + 16 : start + 18], "big")
    version = _IP_TYPES.get(ether_type)
    if version is None:
        return _bad(f"super-frame of EtherType {ether_type:#06x}, not IP")
    if len(message) <= start + length or message[start + length] >> 4 != version:
        return _bad(f"EtherType {ether_type:#06x} does not match the packet")
    return length


def _complete_checksum(packet: bytes, start: int, offset: int) -> bytes:
    """The kernel left the pseudo-header's sum in the checksum field (CHECKSUM_PARTIAL): the
    checksum of everything from ``start`` on is the final one (0 written as 0xFFFF, which
    is the same in one's complement and what UDP needs)."""
    at = start + offset
    if at + 2 > len(packet):
        raise OffloadError("checksum outside the packet")
    checksum = internet_checksum(packet[start:]) or 0xFFFF
    return packet[:at] + checksum.to_bytes(2, "big") + packet[at + 2 :]


def _tcp_headers(packet: memoryview | bytes) -> tuple[int, int]:
    """The IP header's and the TCP header's lengths of a super-packet."""
    ip_length = _ip_header(packet, _TCP)
    if len(packet) < ip_length + 20:
        return _bad("TCP header cut short")
    tcp_length = (packet[ip_length + 12] >> 4) * 4
    if tcp_length < 20 or len(packet) < ip_length + tcp_length:
        return _bad("TCP header length wrong")
    return ip_length, tcp_length


def _udp_header(packet: memoryview | bytes) -> int:
    """The IP header's length of a UDP super-packet whose UDP length is the packet's."""
    ip_length = _ip_header(packet, _UDP)
    if len(packet) < ip_length + _UDP_HEADER:
        return _bad("UDP header cut short")
    if struct.unpack_from("!H", packet, ip_length + 4)[0] != len(packet) - ip_length:
        return _bad("UDP length wrong")
    return ip_length


def _ip_header(packet: memoryview | bytes, protocol: int) -> int:
    """The IP header's length of a super-packet whose lengths are right and which carries
    ``protocol`` (TCP, UDP) right after that header."""
    version = packet[0] >> 4
    if version == 4:
        ip_length = (packet[0] & 0x0F) * 4
        carried = packet[9]
        if ip_length < 20 or struct.unpack_from("!H", packet, 2)[0] != len(packet):
            return _bad("IPv4 header or length wrong")
    elif version == 6:
        ip_length, carried = _IPV6_HEADER, packet[6]
        if (
            len(packet) < _IPV6_HEADER
            or struct.unpack_from("!H", packet, 4)[0] != len(packet) - _IPV6_HEADER
        ):
            return _bad("IPv6 length wrong")
    else:
        return _bad("not an IP packet")
    if carried != protocol:
        name = "TCP" if protocol == _TCP else "UDP"
        return _bad(f"super-packet that is not {name} (or has IPv6 extension headers)")
    return ip_length


def _bad(reason: str) -> Never:
    raise OffloadError(reason)


def _cut_tcp(packet: bytes, size: int) -> list[bytes]:
    ip_length, tcp_length = _tcp_headers(packet)
    ip_header = bytearray(packet[:ip_length])
    tcp_header = bytearray(packet[ip_length : ip_length + tcp_length])
    payload = memoryview(packet)[ip_length + tcp_length :]
    version = packet[0] >> 4
    sequence = int.from_bytes(tcp_header[4:8], "big")
    flags = tcp_header[13]
    identification = int.from_bytes(ip_header[4:6], "big")  # IPv4 only
    addresses = bytes(ip_header[12:20] if version == 4 else ip_header[8:40])
    offsets = range(0, len(payload), size) if payload else range(1)
    cut = []
    for number, offset in enumerate(offsets):
        chunk = payload[offset : offset + size]
        segment_flags = flags if offset == offsets[-1] else flags & ~_FIN_PSH
        tcp_header[4:8] = ((sequence + offset) & 0xFFFFFFFF).to_bytes(4, "big")
        tcp_header[13] = segment_flags & ~_CWR if number else segment_flags
        tcp_header[16:18] = b"\0\0"
        length = tcp_length + len(chunk)
        pseudo = _segment_ip_header(ip_header, identification + number, length, addresses, _TCP)
        tcp_header[16:18] = internet_checksum(pseudo + tcp_header + chunk).to_bytes(2, "big")
        cut.append(bytes(ip_header + tcp_header + chunk))
    return cut


def _segment_ip_header(
    ip_header: bytearray, identification: int, length: int, addresses: bytes, protocol: int
) -> bytes:
    """Make ``ip_header`` (of a super-packet) one segment's, carrying ``length`` bytes of TCP or
    UDP (IPv4: total length, ``identification``, header checksum; IPv6: payload length), and
    return that segment's pseudo-header for the TCP/UDP checksum."""
    if ip_header[0] >> 4 == 4:
        ip_header[2:4] = (len(ip_header) + length).to_bytes(2, "big")
        ip_header[4:6] = (identification & 0xFFFF).to_bytes(2, "big")
        ip_header[10:12] = b"\0\0"
        ip_header[10:12] = internet_checksum(bytes(ip_header)).to_bytes(2, "big")
        return addresses + bytes([0, protocol]) + length.to_bytes(2, "big")
    ip_header[4:6] = length.to_bytes(2, "big")
    return addresses + length.to_bytes(4, "big") + bytes([0, 0, 0, protocol])


def _cut_udp(packet: bytes, size: int) -> list[bytes]:
    """Datagrams of ``size`` bytes (the last one shorter), each with the super-packet's UDP
    header, its own length and checksum (0 sent as 0xFFFF), and IPv4 ids counting up."""
    ip_length = _udp_header(packet)
    ip_header = bytearray(packet[:ip_length])
    udp_header = bytearray(packet[ip_length : ip_length + _UDP_HEADER])
    payload = memoryview(packet)[ip_length + _UDP_HEADER :]
    version = packet[0] >> 4
    identification = int.from_bytes(ip_header[4:6], "big")  # IPv4 only
    addresses = bytes(ip_header[12:20] if version == 4 else ip_header[8:40])
    cut = []
    for number, offset in enumerate(range(0, len(payload), size) if payload else range(1)):
        chunk = payload[offset : offset + size]
        length = _UDP_HEADER + len(chunk)
        udp_header[4:6] = length.to_bytes(2, "big")
        udp_header[6:8] = b"\0\0"
        pseudo = _segment_ip_header(ip_header, identification + number, length, addresses, _UDP)
        checksum = internet_checksum(pseudo + udp_header + chunk) or 0xFFFF
        udp_header[6:8] = checksum.to_bytes(2, "big")
        cut.append(bytes(ip_header + udp_header + chunk))
    return cut
