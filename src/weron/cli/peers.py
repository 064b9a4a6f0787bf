"""Commands that join a community as a WebRTC peer: `chat`, `utility ...`, `vpn ...`.

Their flags are the seed's, so that `--help` is the contract; each command checks its flags and
calls its app in :mod:`weron.apps`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import click

from weron.apps import chat, latency, port_forward, throughput, vpn_ethernet, vpn_ip
from weron.apps.join import JoinConfig
from weron.cli.nat import HostPort
from weron.cli.options import (
    DEFAULT_ICE,
    DEFAULT_RADDR,
    AliasedGroup,
    CommaList,
    Duration,
    configure_logging,
    flag,
    raddr_help,
    verbose_flag,
)
from weron.cli.runtime import run_peer_app
from weron.log import DEFAULT_VERBOSITY
from weron.net.remembered import default_state_file
from weron.peers.adapter import AdapterConfig
from weron.peers.watch import Watch
from weron.status.observe import Observation
from weron.webrtc import MAX_MTU, MIN_MTU
from weron.webrtc.backends import BACKEND_NAMES

F = TypeVar("F", bound=Callable[..., Any])

_ICE_HELP = (
    "Comma-separated list of STUN servers (in format stun:host:port) and TURN servers to use "
    "(in format username:credential@turn:host:port) (i.e. "
    "username:credential@turn:global.turn.twilio.com:3478?transport=tcp)"
)
_MTU_HELP = (
    "Largest IP packet to send, in bytes (libdatachannel backend; default 1280, safe on any "
    "path). Larger packets are faster where the path carries them (loopback, LAN with jumbo "
    "frames) and get fragmented or lost on the Internet"
)


@dataclass(frozen=True, slots=True)
class PeerOptions:
    """The flags every peer command shares, checked: where and how to join (the part of every
    app's config), the WebRTC engine and what this process shows of itself."""

    join: JoinConfig
    backend: str | None
    observe: Observation  # what `weron status` and --metrics-addr show of this process


def peer_flags(*, default_verbosity: int = DEFAULT_VERBOSITY) -> Callable[[F], F]:
    """Add the flags shared by every command that joins a community. The command receives
    them as one ``peer: PeerOptions`` (community, password and key required), with logging
    configured at ``--verbose`` (else ``default_verbosity``)."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def command(
            *args: Any,
            community: str,
            force_relay: bool,
            ice: list[str],
            key: str,
            password: str,
            raddr: str,
            timeout: float,
            backend: str | None,
            webrtc_mtu: int | None,
            metrics_addr: tuple[str, int] | None,
            verbose: int | None,
            **kwargs: Any,
        ) -> Any:
            context = click.get_current_context()
            configure_logging(context, verbose, default=default_verbosity)
            _require(community=community, password=password, key=key)
            watch = Watch()
            adapter = AdapterConfig(
                timeout=timeout, ice=ice, force_relay=force_relay, mtu=webrtc_mtu, watch=watch
            )
            command_name = context.command_path.split(" ", 1)[-1]  # "chat", "vpn ip"...
            observe = Observation(command_name, community, watch, metrics_addr)
            join = JoinConfig(raddr, community, password, key, adapter)
            peer = PeerOptions(join, backend, observe)
            return function(*args, peer=peer, **kwargs)

        decorators = [
            flag("--community", default="", help="ID of community to join"),
            flag("--force-relay", type=bool, default=False, help="Force usage of TURN servers"),
            flag("--ice", type=CommaList(), default=DEFAULT_ICE, help=_ICE_HELP),
            flag("--key", default="", help="Encryption key for community"),
            flag("--password", default="", help="Password for community"),
            flag("--raddr", default=DEFAULT_RADDR, help=raddr_help("Remote address")),
            flag("--timeout", type=Duration(), default=10.0, help="Time to wait for connections"),
            flag(
                "--backend",
                type=click.Choice(BACKEND_NAMES),
                default=None,
                help="WebRTC engine (default: libdatachannel where available, else aiortc)",
            ),
            flag(
                "--webrtc-mtu", type=click.IntRange(MIN_MTU, MAX_MTU), default=None, help=_MTU_HELP
            ),
            flag(
                "--metrics-addr",
                type=HostPort(9464),
                default=None,
                help="Serve this process's peer figures (state, path, round trip, bytes) for "
                "Prometheus at http://HOST:PORT/metrics (off by default; weron status shows "
                "the same)",
            ),
            verbose_flag(leaf=True),
        ]
        wrapped: Any = command
        for decorator in reversed(decorators):
            wrapped = decorator(wrapped)
        return cast(F, wrapped)

    return decorate


def _require(**values: str) -> None:
    for flag_name, value in values.items():
        if not value.strip():
            option = flag_name.replace("_", "-")
            raise click.ClickException(f"missing {option}: set --{option}")


@click.command("chat", short_help="Chat over the overlay network")
@peer_flags(default_verbosity=4)  # warnings only: a clean chat screen
@flag(
    "--channels",
    type=CommaList(),
    default=("weron/chat/primary",),
    help="Comma-separated list of channels in community to join",
)
@flag("--id-channel", default="weron/chat/id", help="Channel to use to negotiate names")
@flag("--kicks", type=Duration(), default=5.0, help="Time to wait for kicks")
@flag(
    "--names",
    type=CommaList(),
    default=(),
    help="Comma-separated list of names to try and claim one from",
)
def chat_command(
    peer: PeerOptions,
    channels: list[str],
    id_channel: str,
    kicks: float,
    names: list[str],
) -> None:
    """Chat over the overlay network.

    Lines read from stdin go to every peer on every channel; messages are printed as
    PEER@CHANNEL: TEXT, connects as +PEER@CHANNEL and disconnects as -PEER@CHANNEL.
    Lines read while no peer is connected wait for the first one (at the end of input, up to
    --timeout after joining: else "no peer connected: not sent" and exit status 1).
    Stop with Ctrl-C or end of input.
    """
    if not [name for name in names if name.strip()]:
        raise click.ClickException("missing names: set --names (e.g. --names user1,user2)")
    config = chat.ChatConfig(
        peer.join,
        names=names,
        channels=channels,
        id_channel=id_channel,
        kicks=kicks,
    )
    run_peer_app(lambda engine: chat.run(config, engine), peer.backend, peer.observe)


@click.command("forward", short_help="Forward TCP and UDP ports over the overlay network")
@peer_flags()
@flag(
    "--names",
    type=CommaList(),
    default=(),
    help="Comma-separated list of names to try and claim one from (others reach our exposed "
    "ports by this name)",
)
@flag(
    "--expose",
    type=CommaList(),
    default=(),
    help="Comma-separated list of local ports members may connect to, nothing else is "
    "reachable: PORT (on 127.0.0.1) or HOST:PORT (exposed as PORT), with /udp for UDP "
    "(i.e. 22,8080,10.0.0.5:80,53/udp)",
)
@flag(
    "--listen",
    type=CommaList(),
    default=(),
    help="Local address to listen on, HOST:PORT (with /udp for UDP), forwarded to the --to "
    "given in the same position (repeat both for several)",
)
@flag(
    "--to",
    type=CommaList(),
    default=(),
    help="Where the --listen in the same position forwards to: NAME:PORT, a port the member "
    "named NAME exposes",
)
@flag("--id-channel", default=port_forward.ID_CHANNEL, help="Channel to use to negotiate names")
@flag("--kicks", type=Duration(), default=5.0, help="Time to wait for kicks")
@flag(
    "--max-connections",
    type=click.IntRange(min=1),
    default=port_forward.DEFAULT_MAX_CONNECTIONS,
    help="Most connections (and UDP flows) one member may have open to our exposed ports at "
    "a time, and most UDP flows per --listen",
)
def forward_command(
    peer: PeerOptions,
    names: list[str],
    expose: list[str],
    listen: list[str],
    to: list[str],
    id_channel: str,
    kicks: float,
    max_connections: int,
) -> None:
    """Forward TCP and UDP ports over the overlay network, without root or a TUN device.

    Expose local ports to the community with --expose; reach a member's exposed port with
    --listen 127.0.0.1:2222 --to NAME:22 (then ssh -p 2222 127.0.0.1). A member may do both.
    Stop with Ctrl-C.
    """
    if not [name for name in names if name.strip()]:
        raise click.ClickException("missing names: set --names (e.g. --names homelab)")
    config = port_forward.ForwardConfig(
        peer.join,
        names=names,
        expose=expose,
        listen=listen,
        to=to,
        id_channel=id_channel,
        kicks=kicks,
        max_connections=max_connections,
    )
    run_peer_app(lambda engine: port_forward.run(config, engine), peer.backend, peer.observe)


_JSON_HELP = "Print one JSON object per line instead of text (with a final totals object)"


@click.command("latency", short_help="Measure the latency of the overlay network")
@peer_flags()
@flag(
    "--packet-length",
    type=click.IntRange(min=1),
    default=128,
    help="Size of packet to send and acknowledge",
)
@flag("--pause", type=Duration(), default=1.0, help="Time to wait before sending next packet")
@flag("--server", type=bool, default=False, help="Act as a server")
@flag("--json", "as_json", type=bool, default=False, help=_JSON_HELP)
def latency_command(
    peer: PeerOptions,
    packet_length: int,
    pause: float,
    server: bool,
    as_json: bool,
) -> None:
    """Measure the latency of the overlay network: one line per round trip, and the average,
    minimum, maximum and percentiles when stopped with Ctrl-C."""
    config = latency.LatencyConfig(
        peer.join,
        server=server,
        packet_length=packet_length,
        pause=pause,
        json=as_json,
    )
    run_peer_app(lambda engine: latency.run(config, engine), peer.backend, peer.observe)


@click.command("throughput", short_help="Measure the throughput of the overlay network")
@peer_flags()
@flag(
    "--packet-count",
    type=click.IntRange(min=1),
    default=1000,
    help="Amount of packets to send before waiting for acknowledgement",
)
@flag("--packet-length", type=click.IntRange(min=1), default=50000, help="Size of packet to send")
@flag("--server", type=bool, default=False, help="Act as a server")
@flag("--json", "as_json", type=bool, default=False, help=_JSON_HELP)
def throughput_command(
    peer: PeerOptions,
    packet_count: int,
    packet_length: int,
    server: bool,
    as_json: bool,
) -> None:
    """Measure the throughput of the overlay network: one line per batch of --packet-count
    messages, and the totals when stopped with Ctrl-C."""
    config = throughput.ThroughputConfig(
        peer.join,
        server=server,
        packet_length=packet_length,
        packet_count=packet_count,
        json=as_json,
    )
    run_peer_app(lambda engine: throughput.run(config, engine), peer.backend, peer.observe)


_DEVICE_MTU_HELP = (
    "MTU of the device: every packet travels as one data-channel message; larger packets "
    "mean fewer messages (faster), smaller ones fewer SCTP fragments on lossy links"
)


@click.command("ip", short_help="Join a layer 3 overlay network")
@peer_flags()
@flag(
    "--dev",
    default="",
    help="Name to give to the TUN device (i.e. weron0) (default is auto-generated)",
)
@flag("--id-channel", default=vpn_ip.ID_CHANNEL, help="Channel to use to negotiate names")
@flag(
    "--ips",
    type=CommaList(),
    default=(),
    help="Comma-separated list of IP networks to claim an IP address from and and give to the "
    "TUN device (i.e. 2001:db8::1/32,192.0.2.1/24)",
)
@flag("--kicks", type=Duration(), default=5.0, help="Time to wait for kicks")
@flag(
    "--max-retries",
    type=click.IntRange(min=1),
    default=200,
    help="Maximum amount of times to try and claim an IP address",
)
@flag(
    "--parallel",
    type=click.IntRange(min=1),
    default=20,
    help="Amount of threads to use to decode frames (here: packets read from the device per "
    "wake-up of the event loop)",
)
@flag(
    "--static",
    type=bool,
    default=False,
    help="Try to claim the exact IPs specified in the --ips flag statically instead of "
    "selecting a random one from the specified network",
)
@flag(
    "--mtu",
    type=click.IntRange(min=1280, max=65_535),
    default=vpn_ip.DEFAULT_MTU,
    help=_DEVICE_MTU_HELP,
)
@flag(
    "--offload",
    type=bool,
    default=True,
    help="Let the TUN device hand over and take TCP (and, on Linux 6.2+, UDP) super-packets of "
    "up to 64 KB (virtio-net header, GSO), sent whole to the peers that have this on too and "
    "cut into plain packets for the others",
)
@flag(
    "--state-file",
    default=str(default_state_file("vpn-ip.json")),
    help="File remembering the addresses claimed in each community and network, asked for "
    "first after a restart (so that the member keeps its address). If empty, nothing is "
    "remembered",
)
def vpn_ip_command(
    peer: PeerOptions,
    dev: str,
    id_channel: str,
    ips: list[str],
    kicks: float,
    max_retries: int,
    parallel: int,
    static: bool,
    mtu: int,
    offload: bool,
    state_file: str,
) -> None:
    """Join a layer 3 overlay network: claim an address from each --ips network, give it to a
    TUN device, and reach every other member at its claimed addresses. Needs root (or
    CAP_NET_ADMIN). Stop with Ctrl-C."""
    if not [value for value in ips if value.strip()]:
        raise click.ClickException("missing ips: set --ips (e.g. --ips 10.0.0.1/24,fd00::1/64)")
    config = vpn_ip.VpnIpConfig(
        peer.join,
        ips=ips,
        dev=dev,
        id_channel=id_channel,
        kicks=kicks,
        max_retries=max_retries,
        parallel=parallel,
        static=static,
        mtu=mtu,
        offload=offload,
        state_file=state_file,
    )
    run_peer_app(lambda engine: vpn_ip.run(config, engine), peer.backend, peer.observe)


@click.command("ethernet", short_help="Join a layer 2 overlay network")
@peer_flags()
@flag(
    "--dev",
    default="",
    help="Name to give to the TAP device (i.e. weron0) (default is auto-generated)",
)
@flag(
    "--mac",
    default="",
    help="MAC address to give to the TAP device (i.e. 3a:f8:de:7b:ef:52) (default is "
    "auto-generated; only supported on Linux)",
)
@flag(
    "--parallel",
    type=click.IntRange(min=1),
    default=20,
    help="Amount of threads to use to decode frames (here: frames read from the device per "
    "wake-up of the event loop)",
)
@flag(
    "--mtu",
    type=click.IntRange(min=1280, max=65_535 - 14),
    default=vpn_ethernet.DEFAULT_MTU,
    help=_DEVICE_MTU_HELP,
)
@flag(
    "--offload",
    type=bool,
    default=True,
    help="Let the TAP device hand over and take TCP (and, on Linux 6.2+, UDP) super-frames of "
    "up to 64 KB (virtio-net header, GSO), sent whole to the peers that have this on too and "
    "cut into plain frames for the others",
)
def vpn_ethernet_command(
    peer: PeerOptions,
    dev: str,
    mac: str,
    parallel: int,
    mtu: int,
    offload: bool,
) -> None:
    """Join a layer 2 overlay network: a TAP device whose frames reach every other member's
    (add addresses to it with ip addr). Needs root (or CAP_NET_ADMIN). Stop with Ctrl-C."""
    config = vpn_ethernet.VpnEthernetConfig(
        peer.join,
        dev=dev,
        mac=mac,
        parallel=parallel,
        mtu=mtu,
        offload=offload,
    )
    run_peer_app(lambda engine: vpn_ethernet.run(config, engine), peer.backend, peer.observe)


utility_group = AliasedGroup(
    "utility", short_help="Utilities for overlay networks", help="Utilities for overlay networks."
)
utility_group.add_aliased(latency_command, ["ltc", "l"])
utility_group.add_aliased(throughput_command, ["thr", "t"])
utility_group.add_lazy("nat", "weron.cli.nat:nat_command", ["n"])

vpn_group = AliasedGroup(
    "vpn",
    short_help="Join virtual private networks built on overlay networks",
    help="Join virtual private networks built on overlay networks.",
)
vpn_group.add_aliased(vpn_ip_command, ["i"])
vpn_group.add_aliased(vpn_ethernet_command, ["eth", "e"])
