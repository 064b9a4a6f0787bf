"""`weron vpn ip`: a layer 3 overlay network on a TUN device (docs/wire-protocol.md#vpn-frames).

Every member claims one address from each ``--ips`` network through name negotiation on the id
channel (a name is the JSON list of its addresses), gives them to its TUN device, and sends each
IP packet to the peer that claimed its destination; multicast and IPv4 broadcast go to every
peer. No member can pose as another (issue 12): a peer gets only the addresses of its claim
that are hosts of our ``--ips`` networks and that no live member got first, and a packet from
it is written to the device only if its source is one of those and its destination is ours,
a broadcast or multicast (not the host's other networks).

With ``offload`` (the default) the TUN hands over TCP super-packets (weron.net.offload): a
member says so in its greeting (the ``vnet-hdr`` feature, which Go peers skip), and peers that
both said it exchange them whole; every other peer gets plain packets. UDP super-packets
(Linux >= 6.2) likewise, with the ``vnet-hdr-udp-l4`` feature.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from weron.apps.forwarding import Forwarder, run_forwarding
from weron.apps.join import JoinConfig
from weron.apps.peering import PeerAppError, serve_each_peer
from weron.log import get_logger
from weron.net import claims
from weron.net.device import (
    DeviceError,
    DeviceKind,
    address_networks,
    open_device,
    set_addresses,
)
from weron.net.packets import IPV4_LIMITED_BROADCAST, ip_destination, ip_endpoints, is_ip_multicast
from weron.net.remembered import ClaimMemory
from weron.peers import Peer
from weron.peers.named import NamedAdapter
from weron.peers.names import AllNamesClaimedError
from weron.webrtc import Backend, ChannelOptions, IpNetwork

log = get_logger(__name__)

PACKET_CHANNEL: Final = "weron/ip/primary"
ID_CHANNEL: Final = "weron/ip/id"
# Packets travel like on a real link: out of order and never retransmitted (TCP inside the
# tunnel recovers losses itself). Compatible: the answering side takes the offerer's options.
PACKET_CHANNEL_OPTIONS: Final = ChannelOptions(ordered=False, max_retransmits=0)
DEFAULT_MTU: Final = 1420
# Greeting feature: "my packet channel carries a virtio-net header and a packet, which may be a
# TCP super-packet" (docs/wire-protocol.md#vpn-frames).
OFFLOAD_FEATURE: Final = "vnet-hdr"
# "...and UDP super-packets (GSO_UDP_L4) too": a name of its own, so that members that only
# said vnet-hdr (older ones, kernels before 6.2) never get one.
UDP_OFFLOAD_FEATURE: Final = "vnet-hdr-udp-l4"
_PROGRESS_EVERY: Final = 5.0  # seconds between claim progress lines


@dataclass(slots=True)
class VpnIpConfig:
    join: JoinConfig
    ips: Sequence[str]
    dev: str = ""
    id_channel: str = ID_CHANNEL
    kicks: float = 5.0
    max_retries: int = 200
    parallel: int = 20
    static: bool = False
    mtu: int = DEFAULT_MTU
    offload: bool = True  # TUN offloads, with the peers that have them too
    # Where the claimed addresses are remembered, to be asked for first after a restart
    # (weron.net.remembered); empty: nowhere.
    state_file: str = ""


class _Routes:
    """What routing asks of our claim: our broadcast addresses and our claim's networks."""

    def __init__(self) -> None:
        self.broadcasts: frozenset[bytes] = frozenset({IPV4_LIMITED_BROADCAST})
        self.networks: tuple[IpNetwork, ...] = ()

    def claimed(self, claim: claims.Claim) -> None:
        self.broadcasts = frozenset({IPV4_LIMITED_BROADCAST, *claim.broadcasts()})
        self.networks = tuple(interface.network for interface in claim.interfaces)

    def is_group(self, address: bytes) -> bool:
        return is_ip_multicast(address) or address in self.broadcasts


def overlay_networks(
    overlay: claims.Overlay, routes: _Routes, device_networks: Callable[[], Iterable[IpNetwork]]
) -> Callable[[], list[IpNetwork]]:
    """What the adapter must keep out of ICE (AdapterConfig.overlay_networks): our ``--ips``
    networks, our claim's, and those of every address the device has now (also ones added by
    hand), without duplicates."""

    def networks() -> list[IpNetwork]:
        return list(dict.fromkeys([*overlay.networks, *routes.networks, *device_networks()]))

    return networks


async def _claim_progress() -> None:
    """A claim takes --timeout + --kicks at least: say every few seconds that it is under way."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        await asyncio.sleep(_PROGRESS_EVERY)
        log.info(f"Claiming an address… ({round(loop.time() - started)} s)")


class NameSource(Protocol):
    """What following our claim asks of the :class:`~weron.peers.named.NamedAdapter`."""

    async def next_name(self) -> str: ...


class IpMembership:
    """Our claim and our peers', between the name negotiation and the packet path: our
    claimed addresses go to the routes, the forwarder, the device and the state file; a
    peer's claim decides which addresses are routed to it. The device's addresses are set
    and the claim remembered through the callables given, so that tests need no TUN device."""

    def __init__(
        self,
        overlay: claims.Overlay,
        routes: _Routes,
        forwarder: Forwarder,
        *,
        set_addresses: Callable[[Sequence[claims.Interface]], Awaitable[None]],
        remember: Callable[[str], None],
        static_ips: Sequence[str] | None = None,  # --static: the exact --ips, else None
        takes_offloads: Callable[[str], bool] = lambda peer_id: False,
        takes_udp_offloads: Callable[[str], bool] = lambda peer_id: False,
    ) -> None:
        self._overlay = overlay
        self._routes = routes
        self._forwarder = forwarder
        self._set_addresses = set_addresses
        self._remember = remember
        self._static_ips = static_ips
        self._takes_offloads = takes_offloads  # the peer greeted with the vnet-hdr feature
        self._takes_udp_offloads = takes_udp_offloads  # and with vnet-hdr-udp-l4

    async def follow_claims(self, names: NameSource) -> None:
        """Take every name the negotiation gives us (a claim can change), until it fails."""
        claiming = asyncio.create_task(_claim_progress())
        while True:
            try:
                name = await names.next_name()
            except AllNamesClaimedError:
                if self._static_ips is not None:
                    raise PeerAppError(
                        f"the addresses {', '.join(self._static_ips)} are already claimed by "
                        "another member (--static)"
                    ) from None
                raise
            finally:
                claiming.cancel()
            await self._claimed(claims.Claim.of(name))

    async def _claimed(self, claim: claims.Claim) -> None:
        # Before the device has them: peers are served from now on, and must not get ours.
        self._routes.claimed(claim)
        self._forwarder.local = frozenset(claim.packed)
        await self._set_addresses(claim.interfaces)
        await asyncio.to_thread(self._remember, claim.name)

    async def serve(self, peer: Peer) -> None:
        """Route to ``peer`` the addresses of its claim it may have, until it leaves."""
        try:
            claim = claims.Claim.of(peer.peer_id)
        except claims.ClaimError as exc:
            log.warning("Ignoring peer with a malformed claim", reason=str(exc))
            peer.conn.close()
            return
        keys, refused = self._overlay.admit(claim, self._forwarder.local)
        if not keys:
            log.warning(
                "Ignoring peer: it may claim none of its addresses",
                id=peer.peer_id,
                refused=refused,
            )
            peer.conn.close()
            return
        if refused:  # once per peer connection: its claim does not change
            log.warning("Refusing claimed addresses", id=peer.peer_id, refused=refused)
        try:  # "Connected to peer" was logged when its claim arrived
            await self._forwarder.serve(
                peer.conn,
                keys,
                peer.peer_id,
                offload=self._takes_offloads(peer.peer_id),
                udp_offload=self._takes_udp_offloads(peer.peer_id),
            )
        finally:
            log.info("Disconnected from peer", id=peer.peer_id)


async def run(config: VpnIpConfig, backend: Backend) -> None:
    """Join the network until cancelled (Ctrl-C)."""
    try:
        networks = claims.parse_networks(config.ips)
        names = claims.candidates(networks, config.max_retries, static=config.static)
    except claims.ClaimError as exc:
        raise PeerAppError(str(exc)) from None
    overlay = claims.Overlay(networks)
    memory = ClaimMemory(
        Path(config.state_file) if config.state_file else None,
        f"{config.join.community} {claims.encode(networks)}",
    )
    try:
        device = await open_device(
            DeviceKind.TUN, config.dev, mtu=config.mtu, offload=config.offload
        )
    except DeviceError as exc:
        raise PeerAppError(str(exc)) from None
    routes = _Routes()
    adapter_config = dataclasses.replace(
        config.join.adapter,
        overlay_networks=overlay_networks(overlay, routes, lambda: address_networks(device)),
        channel_options={
            **config.join.adapter.channel_options,
            PACKET_CHANNEL: PACKET_CHANNEL_OPTIONS,
        },
    )
    try:
        adapter = NamedAdapter(
            config.join.raddr,
            config.join.community,
            config.join.password,
            config.join.key,
            [PACKET_CHANNEL],
            backend,
            names=names,
            id_channel=config.id_channel,
            kicks=config.kicks,
            config=adapter_config,
            conflicts=claims.addresses_conflict,
            choose=memory.prefer_recalled(random.choice),
            features=[
                *([OFFLOAD_FEATURE] if device.offload else []),
                *([UDP_OFFLOAD_FEATURE] if device.udp_offload else []),
            ],
        )
    except BaseException:
        device.close()
        raise
    forwarder = Forwarder(
        device,
        ip_destination,
        ip_endpoints,
        routes.is_group,
        in_overlay=overlay.__contains__,
        batch=config.parallel,
    )

    membership = IpMembership(
        overlay,
        routes,
        forwarder,
        set_addresses=functools.partial(set_addresses, device),
        remember=memory.remember,
        static_ips=config.ips if config.static else None,
        takes_offloads=lambda peer_id: OFFLOAD_FEATURE in adapter.features(peer_id),
        takes_udp_offloads=lambda peer_id: UDP_OFFLOAD_FEATURE in adapter.features(peer_id),
    )
    await run_forwarding(
        device,
        forwarder,
        [
            membership.follow_claims(adapter),
            serve_each_peer(adapter, membership.serve, log_peers=False),
        ],
    )
