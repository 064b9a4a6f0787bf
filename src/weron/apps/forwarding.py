"""The packet path the two VPNs share: device → route → a peer's packet channel, and peer →
source check → device (docs/architecture.md#hot-paths: no copies, no task per packet).

With TUN offloads (:mod:`weron.net.offload`) what is read is a virtio-net header and a packet,
often a TCP super-packet of up to 64 KB: it goes whole, header and all, to peers that take
offloads, and cut into plain packets to the others (Go peers); a plain peer's packets get an
empty header on their way to the device, and an offload peer's header is checked first. A TAP's
super-frames go the same way (vpn ethernet), on a second channel of the peer's: see
:meth:`Forwarder.serve_offloads`.

The device is read in the event loop's reader callback, up to ``batch`` packets per wake-up;
a packet goes to the peer that owns its destination key (a claimed IP address, a MAC), or to
every peer for group destinations (multicast, broadcast). Sending never waits: when a peer's
send buffer is full the packet is dropped, as a congested link drops it, and counted.

A key belongs to the first live peer that claimed it (:class:`~weron.net.routes.RouteTable`),
and a peer's packet reaches the device only when its source is a key routed to that peer and
its destination is ours or a group: no member can pose as another, nor reach the host's other
networks through the overlay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Collection, Coroutine, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from weron.apps.peering import PeerAppError
from weron.log import get_logger
from weron.net.device import Device, DeviceError, DeviceKind
from weron.net.offload import (
    GSO_UDP_L4,
    PLAIN_HEADER,
    VNET_HEADER_SIZE,
    OffloadError,
    refusal,
    segments,
)
from weron.net.routes import RouteTable
from weron.webrtc import ChannelClosedError, DataChannel

log = get_logger(__name__)

# The largest IP packet, in an Ethernet frame or after a virtio-net header.
_READ_SIZE: Final = VNET_HEADER_SIZE + 65_535 + 14
_ADDRESSES_WITHIN: Final = 40  # bytes of a packet that hold its addresses (an IPv6 header)
# Said on an offload channel (serve_offloads) to tell the peer we read it, followed by
# HEARD_HELLO once we heard the peer's, then UDP_HELLO when we take UDP super-frames too;
# shorter than any header and frame (_SHORTEST_FRAME), so never taken for one.
OFFLOAD_HELLO: Final = b"vnet-hdr"
HEARD_HELLO: Final = b" heard"
UDP_HELLO: Final = b" udp-l4"
_SHORTEST_FRAME: Final = VNET_HEADER_SIZE + 14
_OFFLOAD_LINK_WAIT: Final = 30.0  # seconds an offload channel waits for its peer's link
HELLO_AGAIN: Final = 1.0  # seconds between our hellos while the peer has not heard one
HELLOS: Final = 10  # at most: Go peers and our versions before HEARD_HELLO never say they heard


@dataclass(slots=True)
class Counters:
    """Packets by fate; logged when the VPN stops."""

    sent: int = 0
    received: int = 0
    no_route: int = 0  # unicast to an overlay address no peer claimed
    outside: int = 0  # read from the device, to a destination outside the overlay
    congested: int = 0  # the peer's send buffer was full
    too_big: int = 0  # larger than the peer's largest data-channel message
    malformed: int = 0  # not an IP packet / Ethernet frame, or an offload header that lies
    cut: int = 0  # super-packets cut into plain packets for a peer without offloads
    spoofed: int = 0  # source not routed to the peer that sent it
    misdirected: int = 0  # from a peer, to a destination neither ours nor a group

    def as_fields(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class OffloadHellos:
    """The hellos on an offload channel, without I/O. The channel is unreliable (frames are
    never sent again), so any hello may be lost, both first ones included (but not for
    arriving before the channel's receiver is set: both engines hold it): ours goes again
    until the peer says it heard it (at most :data:`HELLOS` in all), and a hello that says
    the peer has not heard ours yet is answered (as often as a peer of ours says it)."""

    udp: bool  # we take UDP super-frames
    said: int = 0
    heard: bool = False  # the peer's hello
    peer_udp: bool = False  # the peer takes UDP super-frames (it said so in its first hello)
    acknowledged: bool = False  # ours, by the peer

    def hello(self) -> bytes:
        self.said += 1
        return (
            OFFLOAD_HELLO + (HEARD_HELLO if self.heard else b"") + (UDP_HELLO if self.udp else b"")
        )

    def again(self) -> bytes | None:
        """Our hello once more, or None: acknowledged, or said :data:`HELLOS` times."""
        if self.acknowledged or self.said >= HELLOS:
            return None
        return self.hello()

    def receive(self, message: bytes) -> tuple[bytes | None, bool]:
        """The peer's hello: our answer (None if it heard ours), and whether it is the
        first one heard (from then on it gets offloads)."""
        words = message.split()[1:]
        first = not self.heard
        if first:
            self.peer_udp = UDP_HELLO.strip() in words
        self.heard = True
        if HEARD_HELLO.strip() in words:
            self.acknowledged = True
            return None, first
        if self.said >= 2 * HELLOS:  # as many answers as a peer's hellos: no more to flood
            return None, first
        return self.hello(), first


@dataclass(slots=True, eq=False)
class _Link:
    peer: str
    channel: DataChannel  # what we send on: the packet channel, or its offload channel
    max_size: int
    keys: tuple[bytes, ...]
    offload: bool  # ``channel`` takes virtio-net headers and TCP super-packets
    udp: bool  # and UDP super-packets
    primary: DataChannel  # the packet channel

    def send_on(self, channel: DataChannel, offload: bool, udp: bool) -> None:
        self.channel, self.max_size = channel, channel.max_message_size
        self.offload, self.udp = offload, offload and udp


def _everywhere(_key: bytes) -> bool:
    return True


class Forwarder:
    """``destination`` gives the routing key of a packet read from the device, ``endpoints``
    the source and destination keys of a peer's packet. ``local``: our own keys (a peer's
    packets must be for them or for a group); the app updates it when they change.
    ``in_overlay``: whether a destination without a route is on the overlay at all (else it
    is counted as ``outside``)."""

    def __init__(
        self,
        device: Device,
        destination: Callable[[bytes], bytes | None],
        endpoints: Callable[[bytes], tuple[bytes, bytes] | None],
        is_group: Callable[[bytes], bool],
        *,
        in_overlay: Callable[[bytes], bool] = _everywhere,
        batch: int = 20,
    ) -> None:
        self._device = device
        self._destination = destination
        self._endpoints = endpoints
        self._is_group = is_group
        self._in_overlay = in_overlay
        self._batch = max(1, batch)
        self._table = RouteTable[_Link]()
        self._routes = self._table.current
        self._links: list[_Link] = []
        self._by_peer: dict[str, _Link] = {}  # the newest link of each peer id
        self._linked = asyncio.Condition()
        self._ethernet = device.kind is DeviceKind.TAP  # frames, for offload.refusal/segments
        self.local: frozenset[bytes] = frozenset()
        self.counters = Counters()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost: asyncio.Future[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._lost = self._loop.create_future()
        self._loop.add_reader(self._device.fd, self._read)

    async def device_lost(self) -> None:
        """Raise :class:`DeviceError` once the device cannot be read any more (deleted
        under us: ``ip link del``): a VPN without its device forwards nothing, so it ends
        saying why (a service manager can then start it again) rather than run on empty."""
        assert self._lost is not None, "start() first"
        await self._lost

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._device.fd)
            self._loop = None

    def owner(self, key: bytes) -> str | None:
        """The peer that ``key`` (an address, a MAC) is routed to."""
        link = self._routes.get(key)
        return link.peer if link is not None else None

    def _read(self) -> None:
        fd, routes = self._device.fd, self._routes
        skip = VNET_HEADER_SIZE if self._device.offload else 0
        for _ in range(self._batch):
            try:
                packet = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:  # EBADFD once the device is deleted: it never comes back
                self.stop()
                if self._lost is not None and not self._lost.done():
                    self._lost.set_exception(
                        DeviceError(
                            f"reading from {self._device.name} failed: {exc.strerror or exc}"
                            " (was the device deleted?)"
                        )
                    )
                return
            key = self._destination(packet[skip : skip + _ADDRESSES_WITHIN] if skip else packet)
            if key is None:
                self.counters.malformed += 1
                continue
            link = routes.get(key)
            if link is not None:
                self._send(link, packet)
            elif self._is_group(key):
                for each in self._links:
                    self._send(each, packet)
            elif self._in_overlay(key):
                self.counters.no_route += 1
            else:
                self.counters.outside += 1

    def _send(self, link: _Link, packet: bytes) -> None:
        if self._device.offload and not (
            link.offload
            and len(packet) <= link.max_size
            and (link.udp or packet[1] != GSO_UDP_L4)  # its gso_type
        ):
            self._send_cut(link, packet)
        else:
            self._send_one(link, packet)

    def _send_cut(self, link: _Link, message: bytes) -> None:
        """A header and packet from our TUN, to a peer that takes plain packets only, or a
        super-packet larger than an offload peer's largest message (aiortc's 64 KiB) or a UDP
        one to a peer that takes TCP ones only, whose segments then go with an empty header
        each."""
        try:
            packets = segments(message, ethernet=self._ethernet)
        except OffloadError as exc:
            self.counters.malformed += 1
            log.debug("Could not cut a packet from the device", error=str(exc))
            return
        if len(packets) > 1:
            self.counters.cut += 1
        for packet in packets:
            self._send_one(link, PLAIN_HEADER + packet if link.offload else packet)

    def _send_one(self, link: _Link, packet: bytes) -> None:
        if len(packet) > link.max_size:
            self.counters.too_big += 1
            return
        try:
            if link.channel.send_nowait(packet):
                self.counters.sent += 1
            else:
                self.counters.congested += 1
        except ChannelClosedError:
            pass  # the peer is leaving: its link is removed in a moment

    async def serve(
        self,
        channel: DataChannel,
        keys: Collection[bytes],
        peer: str,
        *,
        offload: bool = False,
        udp_offload: bool = False,
    ) -> None:
        """Route ``keys`` to ``channel`` and write what it sends to the device, until the
        channel closes. Keys another live peer holds stay with it: this one gets them (and
        may send from them) only once every earlier holder left. ``offload``
        (``udp_offload``): the peer said it takes TCP (UDP) super-packets (used only if our
        device has them on)."""
        offload = offload and self._device.offload
        udp = offload and udp_offload and self._device.udp_offload
        link = _Link(peer, channel, channel.max_message_size, tuple(keys), offload, udp, channel)
        waiting = self._table.add(link, link.keys)
        if waiting:
            holders = sorted({self._routes[key].peer for key in waiting})
            log.warning(
                "Not routing to a peer what another member holds, while that member stays",
                peer=peer,
                held=len(waiting),
                holders=holders,
            )
        self._links.append(link)
        self._by_peer[peer] = link
        async with self._linked:
            self._linked.notify_all()
        channel.set_receiver(self._receiver(link, offload), any_thread=True)
        try:
            await channel.receive()  # returns only by raising, once the channel closed
        finally:
            channel.set_receiver(_discard)  # returns once no engine thread writes to the device
            self._table.remove(link, link.keys)
            self._links.remove(link)
            if self._by_peer.get(peer) is link:
                del self._by_peer[peer]

    async def serve_offloads(self, channel: DataChannel, peer: str) -> None:
        """A peer's offload channel (vpn ethernet's ``weron/ethernet/vnet-hdr``), beside its
        packet channel, which stays plain: a virtio-net header and a frame, maybe a
        super-frame, in each message. Only the offering member opens it, and a Go peer
        accepts but never reads it, so each side says :data:`OFFLOAD_HELLO` on it (with
        :data:`UDP_HELLO` if it takes UDP super-frames; :class:`OffloadHellos`: again until
        the peer heard it), and sends its frames there only once it heard one; back on the
        packet channel when it closes."""
        if not self._device.offload:
            channel.close()
            return
        async with self._linked:
            try:
                await asyncio.wait_for(
                    self._linked.wait_for(lambda: peer in self._by_peer), _OFFLOAD_LINK_WAIT
                )
            except TimeoutError:
                log.debug("An offload channel without a packet channel", peer=peer)
                channel.close()
                return
        link = self._by_peer[peer]
        loop = asyncio.get_running_loop()
        frames = self._receiver(link, offload=True)
        hellos = OffloadHellos(self._device.udp_offload)
        serving = True

        def hear(message: bytes) -> None:  # on the loop
            answer, first = hellos.receive(message)
            if not serving:
                return
            if answer is not None:
                with contextlib.suppress(ChannelClosedError):
                    channel.send_nowait(answer)
            if first and link in self._links:
                udp = hellos.peer_udp and self._device.udp_offload
                link.send_on(channel, offload=True, udp=udp)
                log.debug("Sending offloads", peer=peer, udp=link.udp)

        def receive(message: bytes) -> None:
            if len(message) >= _SHORTEST_FRAME or not message.startswith(OFFLOAD_HELLO):
                frames(message)  # refused, with a log line, if it is too short for a frame
            else:
                loop.call_soon_threadsafe(hear, message)

        channel.set_receiver(receive, any_thread=True)
        repeating = asyncio.create_task(_hello_again(channel, hellos))
        try:
            channel.send_nowait(hellos.hello())
            await channel.receive()  # returns only by raising, once the channel closed
        finally:
            serving = False
            repeating.cancel()
            channel.set_receiver(_discard)
            if link.channel is channel:
                link.send_on(link.primary, offload=False, udp=False)

    def _receiver(self, link: _Link, offload: bool) -> Callable[[bytes], None]:
        """What a peer's packets go through (``offload``: each after a virtio-net header),
        called by the channel for each of them, on the
        loop or on the engine's own threads (which saves a wake-up of the loop per arrival):
        it only reads what the loop changes (a route, ``local``) and writes to the device.
        Counters are bumped without a lock: two threads counting at once may rarely lose
        one, and they are only logged."""
        device, counters, routes, peer = self._device, self.counters, self._routes, link.peer
        endpoints, is_group = self._endpoints, self._is_group
        warned_source = warned_destination = warned_header = False
        # What the peer sends, and what the device takes: header and packet, or plain packets.
        skip = VNET_HEADER_SIZE if offload else 0
        prefix = PLAIN_HEADER if device.offload and not offload else b""
        ethernet, udp = self._ethernet, self._device.udp_offload  # what we said we take

        def receive(packet: bytes) -> None:
            nonlocal warned_source, warned_destination, warned_header
            if skip and (reason := refusal(packet, ethernet=ethernet, udp=udp)) is not None:
                counters.malformed += 1
                if not warned_header:
                    warned_header = True
                    log.warning(
                        "Dropping packets with an offload header that lies",
                        peer=peer,
                        reason=reason,
                    )
                return
            ends = endpoints(packet[skip : skip + _ADDRESSES_WITHIN] if skip else packet)
            if ends is None:
                counters.malformed += 1
                return
            origin, target = ends
            if routes.get(origin) is not link:
                counters.spoofed += 1
                if not warned_source:  # once per peer: a flood must not flood the log
                    warned_source = True
                    log.warning("Dropping packets with a source not routed to the peer", peer=peer)
            elif target not in self.local and not is_group(target):
                counters.misdirected += 1
                if not warned_destination:
                    warned_destination = True
                    log.warning(
                        "Dropping packets from a peer to a destination that is not ours", peer=peer
                    )
            else:
                try:
                    if prefix:
                        os.writev(device.fd, (prefix, packet))
                    else:
                        os.write(device.fd, packet)
                    counters.received += 1
                except OSError as exc:
                    counters.malformed += 1
                    log.debug("The device refused a packet", peer=peer, error=str(exc))

        return receive


async def _hello_again(channel: DataChannel, hellos: OffloadHellos) -> None:
    """Our hello every :data:`HELLO_AGAIN` until the peer heard it (or we gave up)."""
    with contextlib.suppress(ChannelClosedError):
        while True:
            await asyncio.sleep(HELLO_AGAIN)
            if (hello := hellos.again()) is None:
                return
            channel.send_nowait(hello)


def _discard(_packet: bytes) -> None:
    """The receiver of a channel whose link is gone."""


async def run_forwarding(
    device: Device, forwarder: Forwarder, jobs: Sequence[Coroutine[Any, Any, None]]
) -> None:
    """Forward until cancelled, until the device is lost or until one of ``jobs`` fails (its
    error ends the VPN; the device's, deleted under us or refusing an address, as a
    :class:`PeerAppError`); then stop reading, remove the device and log the counters."""
    forwarder.start()
    tasks = [asyncio.create_task(job) for job in [forwarder.device_lost(), *jobs]]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                task.result()
    except DeviceError as exc:
        raise PeerAppError(str(exc)) from None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        forwarder.stop()
        device.close()
        log.info("Stopped", dev=device.name, **forwarder.counters.as_fields())
