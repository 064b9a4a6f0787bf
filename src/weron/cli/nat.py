"""`gonet nat` and `weron utility nat`: NAT behaviour discovery (flag parsing only)."""

from __future__ import annotations

import click

from weron.cli.options import CONTEXT_SETTINGS, configure_logging, quiet_verbose_flag
from weron.cli.runtime import run
from weron.wireguard.nat.discover import discover
from weron.wireguard.nat.stun import StunError


class HostPort(click.ParamType[tuple[str, int]]):
    name = "host:port"

    def __init__(self, default_port: int = 3478) -> None:
        self._default_port = default_port

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        text = str(value)
        host, colon, port = text.rpartition(":")
        if not colon or "]" in port:  # no port, or a bare [v6] address
            host, port = text, str(self._default_port)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            self.fail(f"expected HOST:PORT, got {text!r}", param, ctx)
        return host, int(port)


@click.command(
    "nat", context_settings=CONTEXT_SETTINGS, short_help="Tell what kind of NAT this host is behind"
)
@click.option(
    "--stun",
    type=HostPort(),
    required=True,
    help="STUN server with two addresses (RFC 5780), e.g. coturn started with two -L addresses",
)
@quiet_verbose_flag()
def nat_command(stun: tuple[str, int], verbose: int) -> None:
    """Discover this host's NAT mapping and filtering behaviour (RFC 5780) and tell what it
    means for direct peer-to-peer connections."""
    configure_logging(click.get_current_context(), verbose)
    try:
        report = run(discover(*stun))
    except (StunError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line)
