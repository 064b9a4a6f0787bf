"""The shared packet path, on a datagram socket pair standing in for the TUN device. We are
10.0.0.1 on the overlay 10.0.0.0/24; the host is also on 198.51.100.0/24 (its "LAN")."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from tests.unit.fakes import FakeChannel
from tests.unit.net.test_offload import (
    MAC_A,
    MAC_B,
    ones_sum,
    super_frame,
    super_packet,
    udp_super_packet,
)
from tests.unit.net.test_packets import ipv4

from weron.apps import forwarding
from weron.apps.forwarding import (
    HEARD_HELLO,
    HELLOS,
    OFFLOAD_HELLO,
    Forwarder,
    OffloadHellos,
    run_forwarding,
)
from weron.apps.peering import PeerAppError
from weron.net import claims, offload
from weron.net.device import Device, DeviceKind
from weron.net.packets import (
    IPV4_LIMITED_BROADCAST,
    ip_destination,
    ip_endpoints,
    is_ip_multicast,
    is_mac_group,
    mac_destination,
    mac_endpoints,
)
from weron.webrtc import ChannelClosedError

ME = bytes([10, 0, 0, 1])
A = bytes([10, 0, 0, 2])
B = bytes([10, 0, 0, 3])


@pytest.fixture
async def wire() -> AsyncIterator[tuple[Forwarder, socket.socket]]:
    """A forwarder on one end of a socket pair; the test is the kernel on the other end."""
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    kernel.setblocking(False)
    device = Device(ours.detach(), "fake0", DeviceKind.TUN, 0, 1420)
    forwarder = Forwarder(
        device,
        ip_destination,
        ip_endpoints,
        lambda key: is_ip_multicast(key) or key == IPV4_LIMITED_BROADCAST,
        in_overlay=claims.Overlay(claims.parse_networks(["10.0.0.1/24"])).__contains__,
    )
    forwarder.local = frozenset({ME})
    forwarder.start()
    yield forwarder, kernel
    forwarder.stop()
    device.close()
    kernel.close()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


async def test_packets_go_to_the_owner_of_their_destination_or_to_everyone(
    wire: tuple[Forwarder, socket.socket],
) -> None:
    forwarder, kernel = wire
    to_a, to_b = FakeChannel(linger=True), FakeChannel(linger=True)
    serving = [
        asyncio.create_task(forwarder.serve(to_a, [A], "a")),
        asyncio.create_task(forwarder.serve(to_b, [B], "b")),
    ]
    await settle()
    assert forwarder.owner(A) == "a"
    unicast = ipv4("10.0.0.1", "10.0.0.3")
    multicast = ipv4("10.0.0.1", "224.0.0.251")
    nowhere = ipv4("10.0.0.1", "10.0.0.99")
    underlay = ipv4("10.0.0.1", "198.51.100.3")
    for packet in (unicast, multicast, nowhere, underlay, b"\x00junk"):
        kernel.send(packet)
    await settle()
    assert to_b.sent == [unicast, multicast]
    assert to_a.sent == [multicast]
    counters = forwarder.counters
    assert (counters.sent, counters.no_route, counters.outside, counters.malformed) == (3, 1, 1, 1)
    for task in serving:
        task.cancel()


async def test_only_claimed_sources_to_us_or_a_group_reach_the_device(
    wire: tuple[Forwarder, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    forwarder, kernel = wire
    honest = ipv4("10.0.0.2", "10.0.0.1")
    broadcast = ipv4("10.0.0.2", "255.255.255.255")
    spoofed = ipv4("10.0.0.3", "10.0.0.1")
    to_the_lan = ipv4("10.0.0.2", "198.51.100.2")  # the host's underlay address
    to_another = ipv4("10.0.0.2", "10.0.0.3")  # no relaying through us
    peer = FakeChannel(spoofed, spoofed, honest, to_the_lan, to_another, broadcast, b"\x45short")
    with caplog.at_level(logging.WARNING), pytest.raises(ChannelClosedError):
        await forwarder.serve(peer, [A], "a")  # returns once the channel is drained and closed
    assert kernel.recv(2048) == honest
    assert kernel.recv(2048) == broadcast
    with pytest.raises(BlockingIOError):
        kernel.recv(2048)
    counters = forwarder.counters
    assert (counters.received, counters.spoofed, counters.misdirected) == (2, 2, 2)
    assert counters.malformed == 1
    assert forwarder.owner(A) is None  # its routes went with it
    assert len(caplog.records) == 2  # one warning per peer and offence, not per packet


async def test_an_address_stays_with_its_first_live_holder(
    wire: tuple[Forwarder, socket.socket],
) -> None:
    """Issue 12: another member claiming A's address gets none of its traffic and cannot send
    from it; once it leaves, A still gets its packets."""
    forwarder, kernel = wire
    honest, impostor = FakeChannel(linger=True), FakeChannel(linger=True)
    serving = asyncio.create_task(forwarder.serve(honest, [A], "a"))
    await settle()
    posing = asyncio.create_task(forwarder.serve(impostor, [A], "a"))
    await settle()
    assert impostor.receiver is not None
    impostor.receiver(ipv4("10.0.0.2", "10.0.0.1"))
    kernel.send(ipv4("10.0.0.1", "10.0.0.2"))
    await settle()
    assert (len(honest.sent), impostor.sent, forwarder.counters.spoofed) == (1, [], 1)
    posing.cancel()
    await settle()
    kernel.send(ipv4("10.0.0.1", "10.0.0.2"))
    await settle()
    assert len(honest.sent) == 2 and forwarder.owner(A) == "a"
    serving.cancel()


async def test_full_or_too_small_channels_drop_and_count(
    wire: tuple[Forwarder, socket.socket],
) -> None:
    forwarder, kernel = wire
    full, small = FakeChannel(room=1, linger=True), FakeChannel(max_size=30, linger=True)
    serving = [
        asyncio.create_task(forwarder.serve(full, [A], "a")),
        asyncio.create_task(forwarder.serve(small, [B], "b")),
    ]
    await settle()
    for _ in range(3):
        kernel.send(ipv4("10.0.0.1", "10.0.0.2"))
    kernel.send(ipv4("10.0.0.1", "10.0.0.3") + bytes(100))
    await settle()
    assert len(full.sent) == 1 and small.sent == []
    assert (forwarder.counters.congested, forwarder.counters.too_big) == (2, 1)
    for task in serving:
        task.cancel()


async def test_a_reconnected_peer_gets_its_addresses_when_its_old_link_ends(
    wire: tuple[Forwarder, socket.socket],
) -> None:
    forwarder, kernel = wire
    old, new = FakeChannel(linger=True), FakeChannel(linger=True)
    first = asyncio.create_task(forwarder.serve(old, [A], "a"))
    await settle()
    second = asyncio.create_task(forwarder.serve(new, [A], "a"))
    await settle()
    first.cancel()  # the old channel ends after the new one opened
    await settle()
    assert forwarder.owner(A) == "a"
    kernel.send(ipv4("10.0.0.1", "10.0.0.2"))
    await settle()
    assert len(new.sent) == 1 and old.sent == []
    second.cancel()


@pytest.fixture(params=[False], ids=["tso"])
async def offload_wire(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Forwarder, socket.socket]]:
    """The same with a TUN that has offloads: a virtio-net header before every packet (and
    UDP super-packets, when parametrized with True)."""
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    kernel.setblocking(False)
    device = Device(
        ours.detach(), "fake0", DeviceKind.TUN, 0, 1420, offload=True, udp_offload=request.param
    )
    forwarder = Forwarder(device, ip_destination, ip_endpoints, is_ip_multicast)
    forwarder.local = frozenset({ME})
    forwarder.start()
    yield forwarder, kernel
    forwarder.stop()
    device.close()
    kernel.close()


async def test_super_packets_go_whole_to_offload_peers_and_cut_to_the_others(
    offload_wire: tuple[Forwarder, socket.socket],
) -> None:
    forwarder, kernel = offload_wire
    to_a, to_b = FakeChannel(linger=True), FakeChannel(linger=True)
    serving = [
        asyncio.create_task(forwarder.serve(to_a, [A], "a", offload=True)),
        asyncio.create_task(forwarder.serve(to_b, [B], "b")),
    ]
    await settle()
    to_offload_peer = super_packet(4, bytes(2500), source="10.0.0.1", destination="10.0.0.2")
    to_plain_peer = super_packet(4, bytes(2500), source="10.0.0.1", destination="10.0.0.3")
    kernel.send(to_offload_peer)
    kernel.send(to_plain_peer)
    await settle()
    assert to_a.sent == [to_offload_peer]
    assert to_b.sent == offload.segments(to_plain_peer)
    assert len(to_b.sent) == 3
    assert (forwarder.counters.sent, forwarder.counters.cut) == (4, 1)
    for task in serving:
        task.cancel()


async def test_a_super_packet_too_big_for_an_offload_peer_goes_cut_with_empty_headers(
    offload_wire: tuple[Forwarder, socket.socket],
) -> None:
    forwarder, kernel = offload_wire
    small = FakeChannel(linger=True, max_size=2000)  # as aiortc's 64 KiB to a 64 KB one
    serving = asyncio.create_task(forwarder.serve(small, [A], "a", offload=True))
    await settle()
    message = super_packet(4, bytes(2500), source="10.0.0.1", destination="10.0.0.2")
    kernel.send(message)
    await settle()
    assert small.sent == [offload.PLAIN_HEADER + packet for packet in offload.segments(message)]
    assert all(offload.refusal(sent) is None for sent in small.sent)
    serving.cancel()


async def test_headers_come_from_offload_peers_and_are_added_for_the_others(
    offload_wire: tuple[Forwarder, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    forwarder, kernel = offload_wire
    whole = super_packet(4, bytes(2500), source="10.0.0.2", destination="10.0.0.1")
    lying = offload.VNET_HEADER.pack(offload.NEEDS_CSUM, offload.GSO_TCPV4, 0, 1000, 20, 16)
    ping = ipv4("10.0.0.2", "10.0.0.1")
    with caplog.at_level(logging.WARNING), pytest.raises(ChannelClosedError):
        await forwarder.serve(
            FakeChannel(whole, lying + ping, lying + ping), [A], "a", offload=True
        )
    with pytest.raises(ChannelClosedError):
        await forwarder.serve(FakeChannel(ipv4("10.0.0.3", "10.0.0.1")), [B], "b")
    assert kernel.recv(70_000) == whole
    assert kernel.recv(70_000) == offload.PLAIN_HEADER + ipv4("10.0.0.3", "10.0.0.1")
    assert (forwarder.counters.received, forwarder.counters.malformed) == (2, 2)
    assert [record.message for record in caplog.records] == [
        "Dropping packets with an offload header that lies"
    ]


@pytest.fixture
async def tap_wire() -> AsyncIterator[tuple[Forwarder, socket.socket]]:
    """A TAP with offloads (vpn ethernet): we are MAC_A, the peer "b" is MAC_B."""
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    kernel.setblocking(False)
    device = Device(ours.detach(), "fake0", DeviceKind.TAP, 0, 1420, offload=True)
    forwarder = Forwarder(device, mac_destination, mac_endpoints, is_mac_group)
    forwarder.local = frozenset({MAC_A})
    forwarder.start()
    yield forwarder, kernel
    forwarder.stop()
    device.close()
    kernel.close()


def from_b(message: bytes) -> bytes:
    """A header and frame of ``super_frame``'s, sent by MAC_B to MAC_A."""
    return message[:10] + MAC_A + MAC_B + message[22:]


async def test_super_frames_go_whole_on_the_offload_channel_once_the_peer_said_hello(
    tap_wire: tuple[Forwarder, socket.socket],
) -> None:
    forwarder, kernel = tap_wire
    frames, offloads = FakeChannel(linger=True), FakeChannel(linger=True)
    message = super_frame(4, bytes(2500))  # MAC_A to MAC_B
    cut = offload.segments(message, ethernet=True)
    serving = asyncio.create_task(forwarder.serve(frames, [MAC_B], "b"))
    offloading = asyncio.create_task(forwarder.serve_offloads(offloads, "b"))
    await settle()
    assert offloads.sent == [OFFLOAD_HELLO]  # said, not heard yet: the peer may be a Go one
    kernel.send(message)
    await settle()
    assert frames.sent == cut and len(cut) == 3
    offloads.push(OFFLOAD_HELLO)
    await settle()
    kernel.send(message)
    await settle()
    # Answered: the peer has not heard ours (it may be lost).
    assert offloads.sent == [OFFLOAD_HELLO, OFFLOAD_HELLO + HEARD_HELLO, message]
    assert frames.sent == cut
    offloads.push(OFFLOAD_HELLO + HEARD_HELLO)  # heard already: nothing written
    offloads.close()
    await settle()
    assert offloading.done()
    kernel.send(message)
    await settle()
    assert frames.sent == cut + cut  # back on the frame channel
    with pytest.raises(BlockingIOError):
        kernel.recv(70_000)
    serving.cancel()


def test_hellos_go_again_until_the_peer_heard_ours_and_answer_a_peer_that_did_not() -> None:
    hellos = OffloadHellos(udp=True)
    assert hellos.hello() == b"vnet-hdr udp-l4"
    assert hellos.again() == b"vnet-hdr udp-l4"  # nothing heard: both first hellos may be lost
    assert hellos.receive(b"vnet-hdr") == (b"vnet-hdr heard udp-l4", True)  # not heard ours
    assert hellos.again() == b"vnet-hdr heard udp-l4"  # that answer may be lost too
    assert hellos.receive(b"vnet-hdr heard udp-l4") == (None, False)
    assert hellos.again() is None  # it heard ours: enough
    assert not hellos.peer_udp  # what its first hello said
    for first in (b"vnet-hdr udp-l4", b"vnet-hdr heard udp-l4"):  # an older version, ours
        other = OffloadHellos(udp=False)
        other.receive(first)
        assert other.peer_udp


def test_a_peer_that_never_says_it_heard_gets_a_bounded_number_of_hellos() -> None:
    """Go peers never read the channel, and our versions before HEARD_HELLO never say it."""
    hellos = OffloadHellos(udp=False)
    hellos.hello()
    assert [hellos.again() for _ in range(HELLOS)] == [OFFLOAD_HELLO] * (HELLOS - 1) + [None]
    answers = [hellos.receive(OFFLOAD_HELLO)[0] for _ in range(2 * HELLOS)]
    assert answers.count(OFFLOAD_HELLO + HEARD_HELLO) == HELLOS  # a flood gets no more


async def test_offloads_start_though_both_first_hellos_were_lost(
    tap_wire: tuple[Forwarder, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forwarding, "HELLO_AGAIN", 0.01)
    forwarder, kernel = tap_wire
    frames, offloads = FakeChannel(linger=True), FakeChannel(linger=True)
    message = super_frame(4, bytes(2500))
    serving = asyncio.create_task(forwarder.serve(frames, [MAC_B], "b"))
    offloading = asyncio.create_task(forwarder.serve_offloads(offloads, "b"))
    await settle()  # our first hello lost, and the peer's: ours again
    assert len(offloads.sent) >= 2 and set(offloads.sent) == {OFFLOAD_HELLO}
    offloads.push(OFFLOAD_HELLO + HEARD_HELLO)  # the peer heard one of them
    await settle()
    said = len(offloads.sent)
    kernel.send(message)
    await settle()
    assert offloads.sent[said:] == [message]  # whole, and no more hellos
    serving.cancel()
    offloading.cancel()


async def test_an_offload_channel_takes_checked_headers_and_the_frame_channel_plain_frames(
    tap_wire: tuple[Forwarder, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    forwarder, kernel = tap_wire
    whole = from_b(super_frame(6, bytes(2500)))
    lying = offload.VNET_HEADER.pack(offload.NEEDS_CSUM, offload.GSO_TCPV4, 0, 1000, 34, 16)
    ping = MAC_A + MAC_B + b"\x08\x00" + ipv4("10.0.0.2", "10.0.0.1")
    spoofed = whole[:16] + bytes.fromhex("02000000000c") + whole[22:]  # not b's MAC
    frames, offloads = FakeChannel(ping, linger=True), FakeChannel(linger=True)
    serving = asyncio.create_task(forwarder.serve(frames, [MAC_B], "b"))
    with caplog.at_level(logging.WARNING):
        offloading = asyncio.create_task(forwarder.serve_offloads(offloads, "b"))
        await settle()
        for message in (whole, lying + ping, b"junk", spoofed):
            offloads.push(message)
        await settle()
    assert kernel.recv(70_000) == offload.PLAIN_HEADER + ping
    assert kernel.recv(70_000) == whole
    with pytest.raises(BlockingIOError):
        kernel.recv(70_000)
    counters = forwarder.counters
    assert (counters.received, counters.malformed, counters.spoofed) == (2, 2, 1)
    assert [record.message for record in caplog.records] == [
        "Dropping packets with an offload header that lies",
        "Dropping packets with a source not routed to the peer",
    ]
    serving.cancel()
    offloading.cancel()


async def test_an_offload_channel_without_offloads_or_a_frame_channel_is_closed(
    wire: tuple[Forwarder, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    forwarder, _ = wire  # a plain device
    channel = FakeChannel(linger=True)
    await forwarder.serve_offloads(channel, "b")
    assert channel.closed and channel.sent == []


def udp_between(source: bytes, destination: bytes) -> bytes:
    """``udp_super_packet``'s IPv4 one, between other addresses."""
    message = udp_super_packet(4, bytes(3000))
    header = bytearray(message[10:30])
    header[12:20] = source + destination
    header[10:12] = b"\0\0"
    header[10:12] = (~ones_sum(bytes(header)) & 0xFFFF).to_bytes(2, "big")
    return message[:10] + bytes(header) + message[30:]


@pytest.mark.parametrize("offload_wire", [True], ids=["uso"], indirect=True)
async def test_udp_super_packets_go_whole_only_to_peers_that_said_they_take_them(
    offload_wire: tuple[Forwarder, socket.socket],
) -> None:
    forwarder, kernel = offload_wire
    to_a, to_b = FakeChannel(linger=True), FakeChannel(linger=True)
    serving = [  # a: TCP and UDP super-packets; b: TCP ones only (an older member of ours)
        asyncio.create_task(forwarder.serve(to_a, [A], "a", offload=True, udp_offload=True)),
        asyncio.create_task(forwarder.serve(to_b, [B], "b", offload=True)),
    ]
    await settle()
    to_a_message, to_b_message = udp_between(ME, A), udp_between(ME, B)
    kernel.send(to_a_message)
    kernel.send(to_b_message)
    await settle()
    assert to_a.sent == [to_a_message]
    assert to_b.sent == [offload.PLAIN_HEADER + each for each in offload.segments(to_b_message)]
    assert len(to_b.sent) == 3
    for task in serving:
        task.cancel()


async def test_udp_super_packets_are_refused_when_our_device_has_no_uso(
    offload_wire: tuple[Forwarder, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    forwarder, kernel = offload_wire  # TSO only: we never said we take UDP super-packets
    message = udp_between(A, ME)
    with caplog.at_level(logging.WARNING), pytest.raises(ChannelClosedError):
        await forwarder.serve(FakeChannel(message), [A], "a", offload=True, udp_offload=True)
    with pytest.raises(BlockingIOError):
        kernel.recv(70_000)
    assert forwarder.counters.malformed == 1
    assert "Dropping packets with an offload header that lies" in caplog.messages


async def test_a_device_that_cannot_be_read_any_more_ends_the_vpn_saying_so() -> None:
    """A deleted TUN/TAP's fd reads EBADFD for good: the VPN ends with an error saying so rather
    than run on without a device. (Here a socket whose read fails: ECONNREFUSED.)"""
    ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    ours.connect(closed.getsockname())
    closed.close()
    ours.setblocking(False)
    ours.send(b"to nobody")  # the port's refusal comes back as an error to read
    device = Device(ours.detach(), "fake0", DeviceKind.TUN, 0, 1420)
    forwarder = Forwarder(device, ip_destination, ip_endpoints, is_ip_multicast)

    async def forever() -> None:
        await asyncio.Event().wait()

    with pytest.raises(PeerAppError, match=r"reading from fake0 failed.*was the device deleted"):
        async with asyncio.timeout(10):
            await run_forwarding(device, forwarder, [forever()])
