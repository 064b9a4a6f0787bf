"""The `gonet` command: ASCII chat over peer-to-peer WireGuard (flag parsing only)."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from weron import __version__
from weron import log as weron_log
from weron.apps import gonet
from weron.apps.roster import valid_name
from weron.cli.options import DEFAULT_RADDR, Duration, flag
from weron.cli.runtime import run_app
from weron.rendezvous.room import Room, RoomError
from weron.signaling.client import SignalingError
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.keys import KeyFormatError, load_or_create_identity

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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


@click.command("gonet", context_settings=_CONTEXT)
@click.argument("room", type=RoomParam(), metavar="LOBBY/ROOM/KEY")
@flag("--raddr", default=DEFAULT_RADDR, help="Signaler address (the server of weron signaler)")
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
    "-v",
    "--verbose",
    type=click.IntRange(0, 7, clamp=True),
    default=4,
    show_default=True,
    help="Verbosity level (0 is disabled, 4 is warnings, 7 is trace)",
)
@click.version_option(__version__, "--version", prog_name="gonet")
def gonet_command(
    room: Room,
    raddr: str,
    name: str,
    identity: Path | None,
    port: int,
    timeout: float,
    verbose: int,
) -> None:
    """Chat with everyone in LOBBY/ROOM who holds KEY, over peer-to-peer WireGuard.

    Lines read from stdin go to every member; messages are printed as NAME: TEXT, joins as
    +NAME and leaves as -NAME. Stop with Ctrl-C or end of input.
    """
    weron_log.configure(verbose)
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
        raddr=raddr, room=room, name=name, private_key=key, port=port, timeout=timeout
    )
    try:
        run_app(gonet.run(config))
    except (SignalingError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def main() -> None:
    gonet_command(prog_name="gonet", auto_envvar_prefix=None)


if __name__ == "__main__":
    main()
