"""TUN offloads: completing checksums, cutting TCP super-packets, refusing lying headers."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest

from weron.net import offload

CAPTURED = Path(__file__).with_name("offload_captured.txt")


def ones_sum(data: bytes) -> int:
    """A plain 16-bit one's-complement sum, written independently of the code under test."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


def tcp_sum_is_valid(packet: bytes) -> bool:
    """Whether the IP header (IPv4) and the TCP checksum of ``packet`` verify."""
    if packet[0] >> 4 == 4:
        ip_length = (packet[0] & 0x0F) * 4
        if ones_sum(packet[:ip_length]) != 0xFFFF:
            return False
        segment = packet[ip_length:]
        pseudo = packet[12:20] + bytes([0, 6]) + len(segment).to_bytes(2, "big")
    else:
        segment = packet[40:]
        pseudo = packet[8:40] + len(segment).to_bytes(4, "big") + bytes([0, 0, 0, 6])
    return ones_sum(pseudo + segment) == 0xFFFF


def partial_sum(pseudo: bytes) -> bytes:
    """What the kernel leaves in a CHECKSUM_PARTIAL packet's field: the pseudo-header's folded
    sum, not inverted."""
    return ones_sum(pseudo).to_bytes(2, "big")


def super_packet(
    version: int,
    payload: bytes,
    *,
    flags: int = 0x18,
    mss: int = 1000,
    source: str = "10.66.0.1",
    destination: str = "10.66.0.2",
) -> bytes:
    """Header and TCP super-packet as the kernel hands them over with TSO on (the addresses:
    IPv4 only)."""
    tcp = bytearray(32)  # 12 bytes of options, as Linux sends (timestamps)
    tcp[0:4] = (40000).to_bytes(2, "big") + (5201).to_bytes(2, "big")
    tcp[4:8] = (0xFFFFFF00).to_bytes(4, "big")  # wraps around inside the super-packet
    tcp[12] = 8 << 4
    tcp[13] = flags
    tcp[20:32] = bytes([1, 1, 8, 10]) + bytes(range(8))
    length = len(tcp) + len(payload)
    if version == 4:
        ip = bytearray(20)
        ip[0], ip[8], ip[9] = 0x45, 64, 6
        ip[2:4] = (20 + length).to_bytes(2, "big")
        ip[4:6] = (0xFFFF).to_bytes(2, "big")
        ip[12:16] = ipaddress.IPv4Address(source).packed
        ip[16:20] = ipaddress.IPv4Address(destination).packed
        ip[10:12] = (~ones_sum(bytes(ip)) & 0xFFFF).to_bytes(2, "big")
        pseudo = bytes(ip[12:20]) + bytes([0, 6]) + length.to_bytes(2, "big")
        gso_type = offload.GSO_TCPV4
    else:
        ip = bytearray(40)
        ip[0], ip[6], ip[7] = 0x60, 6, 64
        ip[4:6] = length.to_bytes(2, "big")
        ip[8:24] = ipaddress.IPv6Address("fd00::1").packed
        ip[24:40] = ipaddress.IPv6Address("fd00::2").packed
        pseudo = bytes(ip[8:40]) + length.to_bytes(4, "big") + bytes([0, 0, 0, 6])
        gso_type = offload.GSO_TCPV6
    tcp[16:18] = partial_sum(pseudo)
    header = offload.VNET_HEADER.pack(
        offload.NEEDS_CSUM, gso_type, len(ip) + len(tcp), mss, len(ip), 16
    )
    return header + bytes(ip) + bytes(tcp) + payload


@pytest.mark.parametrize("version", [4, 6])
def test_a_super_packet_is_cut_as_the_kernel_cuts_it(version: int) -> None:
    payload = bytes(range(256)) * 10  # 2,560 bytes: two full segments and a short one
    message = super_packet(version, payload, flags=0x80 | 0x18 | 0x01)  # CWR, ACK+PSH, FIN
    cut = offload.segments(message)
    ip_length = 20 if version == 4 else 40
    assert [len(packet) - ip_length - 32 for packet in cut] == [1000, 1000, 560]
    assert b"".join(packet[ip_length + 32 :] for packet in cut) == payload
    assert all(tcp_sum_is_valid(packet) for packet in cut)
    sequences = [int.from_bytes(p[ip_length + 4 : ip_length + 8], "big") for p in cut]
    assert sequences == [(0xFFFFFF00 + offset) & 0xFFFFFFFF for offset in (0, 1000, 2000)]
    assert [packet[ip_length + 13] for packet in cut] == [0x80 | 0x10, 0x10, 0x18 | 0x01]
    if version == 4:
        assert [int.from_bytes(p[2:4], "big") for p in cut] == [1052, 1052, 612]
        assert [int.from_bytes(p[4:6], "big") for p in cut] == [0xFFFF, 0, 1]  # ids wrap
    else:
        assert [int.from_bytes(p[4:6], "big") for p in cut] == [1032, 1032, 592]


def test_a_packet_with_a_partial_checksum_gets_it_completed() -> None:
    message = super_packet(4, b"hello", mss=0)
    message = offload.VNET_HEADER.pack(offload.NEEDS_CSUM, 0, 0, 0, 20, 16) + message[10:]
    (packet,) = offload.segments(message)
    assert tcp_sum_is_valid(packet)
    assert not tcp_sum_is_valid(message[10:])  # it was partial
    plain = offload.PLAIN_HEADER + packet
    assert offload.segments(plain) == [packet]  # nothing to do
    assert offload.refusal(plain) is None


def test_packets_the_kernel_produced_are_cut_into_valid_segments() -> None:
    """Captured from a TUN with offloads on (tests/netlab/test_offload.py writes them)."""
    lines = CAPTURED.read_text().split()
    assert lines, "no captured packets"
    kinds = set()
    for line in lines:
        message = bytes.fromhex(line)
        assert offload.refusal(message) is None
        gso_type = message[1]
        kinds.add(gso_type)
        cut = offload.segments(message)
        assert all(tcp_sum_is_valid(packet) for packet in cut)  # all TCP: the flow and its SYNs
        if gso_type != offload.GSO_NONE:
            assert len(cut) > 1
            assert all(len(packet) <= 1420 for packet in cut)
    assert {offload.GSO_TCPV4, offload.GSO_TCPV6} <= kinds


def lie(message: bytes, **fields: int) -> bytes:
    names = ("flags", "gso_type", "hdr_len", "gso_size", "csum_start", "csum_offset")
    values = dict(zip(names, offload.VNET_HEADER.unpack_from(message), strict=True))
    values.update(fields)
    return offload.VNET_HEADER.pack(*values.values()) + message[10:]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (lie(super_packet(4, bytes(3000)), flags=0x80), "unknown flags"),
        (lie(super_packet(4, bytes(3000)), csum_start=3040), "checksum outside"),
        (lie(super_packet(4, bytes(3000)), gso_type=offload.GSO_TCPV6), "does not match"),
        (lie(super_packet(4, bytes(3000)), gso_type=3), "does not match"),  # UDP
        (lie(super_packet(6, bytes(3000)), gso_size=0), "segment size"),
        (lie(super_packet(6, bytes(3000)), flags=0), "checksum to complete"),
        (super_packet(4, bytes(3000))[:-1], "length wrong"),  # IPv4 length lies
        (super_packet(6, bytes(3000)) + b"x", "length wrong"),
        (offload.PLAIN_HEADER + b"\x45", "shorter"),
    ],
)
def test_lying_headers_are_refused(message: bytes, reason: str) -> None:
    refused = offload.refusal(message)
    assert refused is not None and reason in refused


@pytest.mark.parametrize(
    "message",
    [
        lie(super_packet(4, bytes(3000)), gso_type=3),
        lie(super_packet(4, bytes(3000)), gso_size=0),
        super_packet(4, bytes(3000))[:-1],
        lie(super_packet(4, b"x"), gso_type=0, csum_start=40),
    ],
)
def test_what_cannot_be_cut_raises(message: bytes) -> None:
    with pytest.raises(offload.OffloadError):
        offload.segments(message)


def test_a_super_packet_that_is_not_tcp_is_refused() -> None:
    message = bytearray(super_packet(4, bytes(3000)))
    message[10 + 9] = 17  # UDP
    assert "not TCP" in (offload.refusal(bytes(message)) or "")


CAPTURED_FRAMES = Path(__file__).with_name("offload_captured_frames.txt")
CAPTURED_UDP = Path(__file__).with_name("offload_captured_udp.txt")
MAC_A = bytes.fromhex("02000000000a")
MAC_B = bytes.fromhex("02000000000b")


def super_frame(version: int, payload: bytes, *, vlan: int | None = None) -> bytes:
    """Header and TCP super-frame as a TAP with TSO hands them over: the super-packet behind
    an Ethernet header (and a VLAN tag), the header's offsets counted from the frame's start."""
    return framed(super_packet(version, payload), vlan=vlan)


def framed(message: bytes, *, vlan: int | None = None) -> bytes:
    """A header and packet as a header and frame from MAC_A to MAC_B."""
    version = message[10] >> 4
    ether_type = (0x0800 if version == 4 else 0x86DD).to_bytes(2, "big")
    link = MAC_B + MAC_A + ether_type
    if vlan is not None:
        link = MAC_B + MAC_A + b"\x81\x00" + vlan.to_bytes(2, "big") + ether_type
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = offload.VNET_HEADER.unpack_from(
        message
    )
    header = offload.VNET_HEADER.pack(
        flags, gso_type, hdr_len + len(link), gso_size, csum_start + len(link), csum_offset
    )
    return header + link + message[10:]


@pytest.mark.parametrize(("version", "vlan"), [(4, None), (6, None), (4, 7), (6, 7)])
def test_a_super_frame_is_cut_into_frames_with_its_ethernet_header(
    version: int, vlan: int | None
) -> None:
    payload = bytes(range(256)) * 10
    message = super_frame(version, payload, vlan=vlan)
    link = 14 if vlan is None else 18
    assert offload.refusal(message, ethernet=True) is None
    cut = offload.segments(message, ethernet=True)
    packets = offload.segments(super_packet(version, payload))
    assert [frame[link:] for frame in cut] == packets
    assert all(frame[:link] == message[10 : 10 + link] for frame in cut)
    assert all(tcp_sum_is_valid(frame[link:]) for frame in cut)


def test_a_frame_with_a_partial_checksum_gets_it_completed() -> None:
    message = super_frame(6, b"hello")
    message = offload.VNET_HEADER.pack(offload.NEEDS_CSUM, 0, 0, 0, 54, 16) + message[10:]
    (frame,) = offload.segments(message, ethernet=True)
    assert tcp_sum_is_valid(frame[14:])
    assert offload.refusal(message, ethernet=True) is None


def test_frames_the_kernel_produced_are_cut_into_valid_frames() -> None:
    """Captured from a TAP with offloads on (tests/netlab/test_offload_kernel.py)."""
    lines = CAPTURED_FRAMES.read_text().split()
    assert lines, "no captured frames"
    kinds = set()
    for line in lines:
        message = bytes.fromhex(line)
        assert offload.refusal(message, ethernet=True) is None
        kinds.add(message[1])
        cut = offload.segments(message, ethernet=True)
        assert all(frame[:14] == message[10:24] for frame in cut)
        if message[1] != offload.GSO_NONE:
            assert len(cut) > 1
            assert all(tcp_sum_is_valid(frame[14:]) for frame in cut)
            assert all(len(frame) <= 1420 + 14 for frame in cut)
    assert {offload.GSO_TCPV4, offload.GSO_TCPV6} <= kinds


def retype(message: bytes, ether_type: int) -> bytes:
    return message[:22] + ether_type.to_bytes(2, "big") + message[24:]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (retype(super_frame(4, bytes(3000)), 0x86DD), "does not match the packet"),
        (retype(super_frame(4, bytes(3000)), 0x0806), "not IP"),  # ARP
        (super_frame(4, bytes(3000), vlan=7)[:24], "shorter"),
        (lie(super_frame(4, bytes(3000)), gso_type=offload.GSO_TCPV6), "does not match"),
        (super_frame(6, bytes(3000)) + b"x", "length wrong"),
        # a vpn ip super-packet is no frame
        (super_packet(4, bytes(3000)), "not IP"),
    ],
)
def test_lying_frame_headers_are_refused(message: bytes, reason: str) -> None:
    refused = offload.refusal(message, ethernet=True)
    assert refused is not None and reason in refused


def test_a_super_frame_is_no_super_packet() -> None:
    refused = offload.refusal(super_frame(4, bytes(3000)))
    assert refused is not None
    with pytest.raises(offload.OffloadError):
        offload.segments(retype(super_frame(4, bytes(3000)), 0x0806), ethernet=True)


def udp_sum_is_valid(packet: bytes) -> bool:
    """Whether the IP header (IPv4) and the UDP checksum of ``packet`` verify."""
    if packet[0] >> 4 == 4:
        ip_length = (packet[0] & 0x0F) * 4
        if ones_sum(packet[:ip_length]) != 0xFFFF:
            return False
        datagram = packet[ip_length:]
        pseudo = packet[12:20] + bytes([0, 17]) + len(datagram).to_bytes(2, "big")
    else:
        datagram = packet[40:]
        pseudo = packet[8:40] + len(datagram).to_bytes(4, "big") + bytes([0, 0, 0, 17])
    return ones_sum(pseudo + datagram) == 0xFFFF


def udp_super_packet(version: int, payload: bytes, *, size: int = 1200) -> bytes:
    """Header and UDP super-packet as a TUN with USO hands them over (UDP_SEGMENT senders)."""
    udp = bytearray(8)
    udp[0:4] = (40000).to_bytes(2, "big") + (4433).to_bytes(2, "big")
    udp[4:6] = (8 + len(payload)).to_bytes(2, "big")
    length = 8 + len(payload)
    if version == 4:
        ip = bytearray(20)
        ip[0], ip[8], ip[9] = 0x45, 64, 17
        ip[2:4] = (20 + length).to_bytes(2, "big")
        ip[4:6] = (0xFFFE).to_bytes(2, "big")
        ip[12:20] = bytes([10, 66, 0, 1, 10, 66, 0, 2])
        ip[10:12] = (~ones_sum(bytes(ip)) & 0xFFFF).to_bytes(2, "big")
        pseudo = bytes(ip[12:20]) + bytes([0, 17]) + length.to_bytes(2, "big")
    else:
        ip = bytearray(40)
        ip[0], ip[6], ip[7] = 0x60, 17, 64
        ip[4:6] = length.to_bytes(2, "big")
        ip[8:24] = ipaddress.IPv6Address("fd00::1").packed
        ip[24:40] = ipaddress.IPv6Address("fd00::2").packed
        pseudo = bytes(ip[8:40]) + length.to_bytes(4, "big") + bytes([0, 0, 0, 17])
    udp[6:8] = partial_sum(pseudo)
    header = offload.VNET_HEADER.pack(
        offload.NEEDS_CSUM, offload.GSO_UDP_L4, len(ip) + 8, size, len(ip), 6
    )
    return header + bytes(ip) + bytes(udp) + payload


@pytest.mark.parametrize("version", [4, 6])
def test_a_udp_super_packet_is_cut_into_datagrams(version: int) -> None:
    payload = bytes(range(256)) * 12  # 3,072 bytes: two datagrams of 1,200 and one of 672
    message = udp_super_packet(version, payload)
    assert offload.refusal(message, udp=True) is None
    cut = offload.segments(message)
    ip_length = 20 if version == 4 else 40
    assert [len(packet) - ip_length - 8 for packet in cut] == [1200, 1200, 672]
    assert b"".join(packet[ip_length + 8 :] for packet in cut) == payload
    assert all(udp_sum_is_valid(packet) for packet in cut)
    assert [int.from_bytes(p[ip_length + 4 : ip_length + 6], "big") for p in cut] == [
        1208,
        1208,
        680,
    ]
    if version == 4:
        assert [int.from_bytes(p[4:6], "big") for p in cut] == [0xFFFE, 0xFFFF, 0]


def test_udp_super_packets_are_refused_unless_taken_and_honest() -> None:
    message = udp_super_packet(4, bytes(3000))
    assert "does not match" in (offload.refusal(message) or "")  # not promised: refused
    lying_length = message[: 10 + 24] + b"\x00\x09" + message[10 + 26 :]
    assert "UDP length wrong" in (offload.refusal(lying_length, udp=True) or "")
    tcp = lie(super_packet(4, bytes(3000)), gso_type=offload.GSO_UDP_L4)
    assert "not UDP" in (offload.refusal(tcp, udp=True) or "")
    frame = framed(udp_super_packet(6, bytes(3000)), vlan=9)
    assert offload.refusal(frame, ethernet=True, udp=True) is None
    cut = offload.segments(frame, ethernet=True)
    assert len(cut) == 3 and all(datagram[:18] == frame[10:28] for datagram in cut)
    assert all(udp_sum_is_valid(datagram[18:]) for datagram in cut)


def test_udp_packets_the_kernel_produced_are_cut_into_valid_datagrams() -> None:
    """Captured from a TUN and a TAP with USO on (tests/netlab/test_offload_kernel.py)."""
    lines = CAPTURED_UDP.read_text().split()
    assert lines, "no captured packets"
    for line in lines:
        message = bytes.fromhex(line)
        ethernet = message[22:24] in (b"\x08\x00", b"\x86\xdd")  # an EtherType: a frame
        link = 14 if ethernet else 0
        assert message[1] == offload.GSO_UDP_L4
        assert offload.refusal(message, ethernet=ethernet, udp=True) is None
        cut = offload.segments(message, ethernet=ethernet)
        assert len(cut) > 1
        assert all(udp_sum_is_valid(packet[link:]) for packet in cut)
