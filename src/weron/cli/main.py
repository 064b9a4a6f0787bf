"""The `weron` root command. Its commands are imported when used, so that a peer starts
without loading the signaler's and the manager's modules (and `--help` still lists all)."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from weron import __version__
from weron.cli.options import CONTEXT_SETTINGS, AliasedGroup, verbose_flag


@click.group(
    "weron",
    cls=AliasedGroup,
    context_settings=CONTEXT_SETTINGS,
    help="Overlay networks based on WebRTC.\n\nEvery flag can also be set as an environment "
    "variable WERON_<FLAG> (upper case, '-' becomes '_'), e.g. WERON_MAX_RETRIES=300.",
)
@verbose_flag(leaf=False)
@click.version_option(__version__, "--version", prog_name="weron")
def cli(verbose: int) -> None:
    """Root group: the verbosity is read by each command."""


@click.command(
    "completion", short_help="Generate the autocompletion script for the specified shell"
)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_command(shell: str) -> None:
    """Generate the autocompletion script for SHELL (bash, zsh or fish).

    For example: weron completion bash > /etc/bash_completion.d/weron
    """
    completion_class = get_completion_class(shell)
    assert completion_class is not None
    click.echo(completion_class(cli, {}, "weron", "_WERON_COMPLETE").source())


assert isinstance(cli, AliasedGroup)
cli.add_lazy("chat", "weron.cli.peers:chat_command", ["cht", "c"])
cli.add_aliased(completion_command, [])
cli.add_lazy("forward", "weron.cli.peers:forward_command", ["fwd", "f"])
cli.add_lazy("manager", "weron.cli.manager:manager_group", ["mgr", "m"])
cli.add_lazy("signaler", "weron.cli.signaler:signaler_command", ["sgl", "s"])
cli.add_lazy("status", "weron.cli.status:status_command", ["st"])
cli.add_lazy("utility", "weron.cli.peers:utility_group", ["uti", "u"])
cli.add_lazy("vpn", "weron.cli.peers:vpn_group", ["v"])


def main() -> None:
    cli(prog_name="weron", auto_envvar_prefix=None)
