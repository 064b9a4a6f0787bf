"""`weron vpn ethernet`: a layer 2 overlay network on a TAP device
(docs/wire-protocol.md#vpn-frames).

A member's id is its TAP device's MAC address; each Ethernet frame goes to the peer whose id is
its destination MAC, broadcast and multicast frames (ARP, IPv6 neighbour discovery) to every
peer. No member can pose as another (issue 12): an id must be a unicast MAC that is not ours,
a MAC stays with the first live member that has it, and a frame from a peer is written to the
device only if its source MAC is that peer's and its destination is ours or a group.

With ``offload`` (the default) the TAP hands over TCP super-frames (weron.net.offload). There
is no greeting to say so in: a member whose TAP has them opens a second channel,
:data:`OFFLOAD_CHANNEL`, to each peer it offers to, and takes one from a peer that offers it;
super-frames go there once both said hello on it (Forwarder.serve_offloads). Go peers and
members with ``--offload=false`` never read it and get plain frames on the frame channel.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from weron.apps.forwarding import Forwarder, run_forwarding
from weron.apps.join import JoinConfig
from weron.apps.peering import PeerAppError, serve_each_peer
from weron.log import get_logger
from weron.net.device import DeviceError, DeviceKind, address_networks, open_device
from weron.net.packets import format_mac, is_mac_group, mac_destination, mac_endpoints, parse_mac
from weron.peers import Peer
from weron.peers.adapter import Adapter
from weron.webrtc import Backend, ChannelOptions

log = get_logger(__name__)

FRAME_CHANNEL: Final = "weron/ethernet/primary"
# As for the IP VPN: frames may be lost or reordered, like on a real Ethernet.
FRAME_CHANNEL_OPTIONS: Final = ChannelOptions(ordered=False, max_retransmits=0)
# Ours: each message a virtio-net header and an Ethernet frame, maybe a TCP super-frame; a
# label of its own, so that nothing on it is taken for a plain frame or a vpn ip packet.
OFFLOAD_CHANNEL: Final = "weron/ethernet/vnet-hdr"
DEFAULT_MTU: Final = 1420


@dataclass(slots=True)
class VpnEthernetConfig:
    join: JoinConfig
    dev: str = ""
    mac: str = ""  # empty: the kernel picks a random one
    parallel: int = 20
    mtu: int = DEFAULT_MTU
    offload: bool = True  # TAP offloads, with the peers that have them too


def mac_refusal(mac: bytes, ours: Collection[bytes]) -> str | None:
    """Why a peer may not have ``mac`` as its id, or None. A group MAC would take the
    broadcasts (ARP, neighbour discovery) of every member for itself: routes come first."""
    if is_mac_group(mac):
        return "its MAC address is a group (multicast or broadcast) address"
    if mac == bytes(6):
        return "its MAC address is all zeros"
    if mac in ours:
        return "its MAC address is ours"
    return None


async def serve(forwarder: Forwarder, peer: Peer) -> None:
    """Route ``peer``'s MAC address (its id) to it until it leaves, unless it may not have
    that address (:func:`mac_refusal`: then it is closed)."""
    try:
        peer_mac = parse_mac(peer.peer_id)
    except ValueError:
        log.warning("Ignoring peer whose id is not a MAC address", id=peer.peer_id[:64])
        peer.conn.close()
        return
    reason = mac_refusal(peer_mac, forwarder.local)
    if reason is not None:
        log.warning("Ignoring peer", id=peer.peer_id, reason=reason)
        peer.conn.close()
        return
    if peer.channel_id == OFFLOAD_CHANNEL:
        await forwarder.serve_offloads(peer.conn, peer.peer_id)
        return
    log.info("Connected to peer", id=peer.peer_id)
    try:
        await forwarder.serve(peer.conn, [peer_mac], peer.peer_id)
    finally:
        log.info("Disconnected from peer", id=peer.peer_id)


async def run(config: VpnEthernetConfig, backend: Backend) -> None:
    """Join the network until cancelled (Ctrl-C)."""
    try:
        mac = parse_mac(config.mac) if config.mac.strip() else None
    except ValueError as exc:
        raise PeerAppError(str(exc)) from None
    if mac is not None and mac[0] & 1:
        raise PeerAppError(
            f"--mac {config.mac} is a multicast address: the first byte must be even"
        )
    try:
        device = await open_device(
            DeviceKind.TAP, config.dev, mtu=config.mtu, mac=mac, offload=config.offload
        )
    except DeviceError as exc:
        raise PeerAppError(str(exc)) from None
    assert device.mac is not None
    adapter_config = dataclasses.replace(
        config.join.adapter,
        id=format_mac(device.mac),
        overlay_networks=lambda: address_networks(device),
        channel_options={
            **config.join.adapter.channel_options,
            FRAME_CHANNEL: FRAME_CHANNEL_OPTIONS,
            OFFLOAD_CHANNEL: FRAME_CHANNEL_OPTIONS,
        },
    )
    try:
        adapter = Adapter(
            config.join.raddr,
            config.join.community,
            config.join.password,
            config.join.key,
            [FRAME_CHANNEL, OFFLOAD_CHANNEL] if device.offload else [FRAME_CHANNEL],
            backend,
            adapter_config,
        )
    except BaseException:
        device.close()
        raise
    forwarder = Forwarder(
        device, mac_destination, mac_endpoints, is_mac_group, batch=config.parallel
    )
    forwarder.local = frozenset({device.mac})
    serving = serve_each_peer(adapter, functools.partial(serve, forwarder), log_peers=False)
    await run_forwarding(device, forwarder, [serving])
