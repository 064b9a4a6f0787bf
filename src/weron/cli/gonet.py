"""The `gonet` command: ASCII chat over peer-to-peer WireGuard (flag parsing only)."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from weron import __version__
from weron.apps import gonet
from weron.apps.roster import valid_name
from weron.cli.nat import HostPort, nat_command
from weron.cli.options import (
    CONTEXT_SETTINGS,
    DEFAULT_RADDR,
    Duration,
    configure_logging,
    flag,
    quiet_verbose_flag,
    raddr_help,
)
from weron.cli.runtime import run_app
from weron.extras import MissingExtraError
from weron.rendezvous import RendezvousError
from weron.rendezvous.room import Room, RoomError
from weron.signaler_client.client import SignalingError
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.keys import KeyFormatError, load_or_create_identity
from weron.wireguard.nat.turn import TurnError, TurnServer


class TurnParam(click.ParamType[TurnServer]):
    name = "user:password@host:port"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> TurnServer:
        if isinstance(value, TurnServer):
            return value
        try:
            return TurnServer.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class RoomParam(click.ParamType[Room]):
    name = "lobby/room/key"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Room:
        if isinstance(value, Room):
            return value
        try:
            return Room.parse(str(value))
        except RoomError as exc:
            self.fail(str(exc), param, ctx)


def default_name() -> str:
    """The login name when it is a valid chat name, else 'gonet'."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        return "gonet"
    return name if valid_name(name) else "gonet"


@click.command("gonet", context_settings=CONTEXT_SETTINGS)
@click.argument("room", type=RoomParam(), metavar="LOBBY/ROOM/KEY")
@flag(
    "--raddr",
    default=DEFAULT_RADDR,
    help=raddr_help("Signaler address (the server of weron signaler)"),
)
@flag("--name", default="", help="Name to chat under (default: the login name)")
@flag(
    "--identity",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File with this peer's WireGuard private key (created when missing; default: a new "
    "key for every run)",
)
@flag("--port", type=click.IntRange(0, 65535), default=0, help="UDP port (default: any free)")
@flag(
    "--timeout",
    type=Duration(),
    default=15.0,
    help="Time after which a silent member counts as gone",
)
@click.option(
    "--stun",
    type=HostPort(),
    multiple=True,
    help="STUN server that tells our public address (repeatable; default: none)",
)
@flag(
    "--turn",
    type=TurnParam(),
    default=None,
    help="TURN server to relay through when no direct path works",
)
@click.option(
    "--dht", is_flag=True, default=False, help="Meet through the BitTorrent DHT, no signaler"
)
@click.option(
    "--dht-bootstrap",
    type=HostPort(6881),
    multiple=True,
    help="DHT node to join the DHT through (repeatable; default: the public bootstrap nodes)",
)
@quiet_verbose_flag()
@click.version_option(__version__, "--version", prog_name="gonet")
def gonet_command(
    room: Room,
    raddr: str,
    name: str,
    identity: Path | None,
    port: int,
    timeout: float,
    stun: tuple[tuple[str, int], ...],
    turn: TurnServer | None,
    dht: bool,
    dht_bootstrap: tuple[tuple[str, int], ...],
    verbose: int,
) -> None:
    """Chat with everyone in LOBBY/ROOM who holds KEY, over peer-to-peer WireGuard.

    Lines read from stdin go to every member; messages are printed as NAME: TEXT, joins as
    +NAME, leaves as -NAME, a member shown under another name as *OLD is now NEW, and the
    path to a member as ~NAME direct or ~NAME relay. Stop with Ctrl-C or end of input.

    Behind NATs, give a --stun server (and a --turn server for NATs that punching cannot
    pass); `gonet nat --stun HOST:PORT` tells what kind of NAT this host is behind.
    """
    configure_logging(click.get_current_context(), verbose)
    name = name or default_name()
    if not valid_name(name):
        raise click.BadParameter(
            "1 to 32 characters out of A-Z a-z 0-9 . _ -", param_hint="'--name'"
        )
    if timeout <= 0:
        raise click.BadParameter("must be positive", param_hint="'--timeout'")
    try:
        key = load_or_create_identity(identity) if identity else PrivateKey.generate()
    except KeyFormatError as exc:
        raise click.ClickException(str(exc)) from None
    config = gonet.GonetConfig(
        raddr=raddr,
        room=room,
        name=name,
        private_key=key,
        port=port,
        timeout=timeout,
        stun=list(stun),
        turn=turn,
        dht=dht,
        dht_bootstrap=list(dht_bootstrap),
    )
    try:
        run_app(gonet.run(config))
    except (SignalingError, TurnError, OSError, MissingExtraError, RendezvousError) as exc:
        raise click.ClickException(str(exc)) from None


def main() -> None:
    """`gonet nat ...` discovers the NAT; anything else is a room to chat in."""
    if sys.argv[1:2] == ["nat"]:
        nat_command(sys.argv[2:], prog_name="gonet nat", auto_envvar_prefix=None)
    else:
        gonet_command(prog_name="gonet", auto_envvar_prefix=None)


if __name__ == "__main__":
    main()
