"""`weron vpn ip`: a layer 3 overlay network on a TUN device (weron-protocol.md §4).

Every member claims one address from each ``--ips`` network through name negotiation on the id
channel (a name is the JSON list of its addresses), gives them to its TUN device, and sends each
IP packet to the peer that claimed its destination; multicast and IPv4 broadcast go to every
peer. A packet from a peer is written to the device only if its source is an address that peer
claimed (no member can pose as another).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from weron.apps.forwarding import Forwarder, run_forwarding
from weron.apps.peering import PeerAppError, serve_each_peer
from weron.log import get_logger
from weron.net import claims
from weron.net.device import DeviceError, DeviceKind, open_device, set_addresses
from weron.net.packets import IPV4_LIMITED_BROADCAST, ip_destination, ip_source, is_ip_multicast
from weron.peers import Peer
from weron.peers.adapter import AdapterConfig
from weron.peers.named import NamedAdapter
from weron.signaling.names import AllNamesClaimedError
from weron.webrtc import Backend, ChannelOptions

log = get_logger(__name__)

PACKET_CHANNEL: Final = "weron/ip/primary"
ID_CHANNEL: Final = "weron/ip/id"
# Packets travel like on a real link: out of order and never retransmitted (TCP inside the
# tunnel recovers losses itself). Compatible: the answering side takes the offerer's options.
PACKET_CHANNEL_OPTIONS: Final = ChannelOptions(ordered=False, max_retransmits=0)
DEFAULT_MTU: Final = 1420


@dataclass(slots=True)
class VpnIpConfig:
    raddr: str
    community: str
    password: str
    key: str
    ips: Sequence[str]
    dev: str = ""
    id_channel: str = ID_CHANNEL
    kicks: float = 5.0
    max_retries: int = 200
    parallel: int = 20
    static: bool = False
    mtu: int = DEFAULT_MTU
    adapter: AdapterConfig = field(default_factory=AdapterConfig)


class _Routes:
    """What routing asks of our claim: our addresses and our broadcast addresses."""

    def __init__(self) -> None:
        self.mine: frozenset[bytes] = frozenset()
        self.broadcasts: frozenset[bytes] = frozenset({IPV4_LIMITED_BROADCAST})

    def claimed(self, claim: claims.Claim) -> None:
        self.mine = frozenset(claim.packed)
        self.broadcasts = frozenset({IPV4_LIMITED_BROADCAST, *claim.broadcasts()})

    def is_group(self, address: bytes) -> bool:
        return is_ip_multicast(address) or address in self.broadcasts


async def run(config: VpnIpConfig, backend: Backend) -> None:
    """Join the network until cancelled (Ctrl-C)."""
    try:
        networks = claims.parse_networks(config.ips)
        names = claims.candidates(networks, config.max_retries, static=config.static)
    except claims.ClaimError as exc:
        raise PeerAppError(str(exc)) from None
    adapter_config = config.adapter
    adapter_config.channel_options = {
        **adapter_config.channel_options,
        PACKET_CHANNEL: PACKET_CHANNEL_OPTIONS,
    }
    adapter = NamedAdapter(
        config.raddr,
        config.community,
        config.password,
        config.key,
        [PACKET_CHANNEL],
        backend,
        names=names,
        id_channel=config.id_channel,
        kicks=config.kicks,
        config=adapter_config,
        conflicts=claims.addresses_conflict,
        choose=random.choice,
    )
    try:
        device = await open_device(DeviceKind.TUN, config.dev, mtu=config.mtu)
    except DeviceError as exc:
        raise PeerAppError(str(exc)) from None
    routes = _Routes()
    forwarder = Forwarder(device, ip_destination, ip_source, routes.is_group, batch=config.parallel)

    async def follow_claims() -> None:
        while True:
            try:
                name = await adapter.next_name()
            except AllNamesClaimedError:
                if config.static:
                    raise PeerAppError(
                        f"the addresses {', '.join(config.ips)} are already claimed by another "
                        "member (--static)"
                    ) from None
                raise
            claim = claims.Claim.of(name)
            await set_addresses(device, claim.interfaces)
            routes.claimed(claim)

    async def serve(peer: Peer) -> None:
        try:
            claim = claims.Claim.of(peer.peer_id)
        except claims.ClaimError as exc:
            log.warning("Ignoring peer with a malformed claim", reason=str(exc))
            peer.conn.close()
            return
        keys = claim.packed
        taken = [
            key
            for key in keys
            if key in routes.mine or forwarder.owner(key) not in (None, peer.peer_id)
        ]
        if taken:
            log.warning("Ignoring peer claiming an address already in use", id=peer.peer_id)
            peer.conn.close()
            return
        try:  # "Connected to peer" was logged when its claim arrived
            await forwarder.serve(peer.conn, keys, peer.peer_id)
        finally:
            log.info("Disconnected from peer", id=peer.peer_id)

    await run_forwarding(
        device, forwarder, [follow_claims(), serve_each_peer(adapter, serve, log_peers=False)]
    )
