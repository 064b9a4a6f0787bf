"""`weron manager list|create|delete`: administer communities on a signaler."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

import click

from weron.cli.options import AliasedGroup, configure_logging, flag, raddr_help, verbose_flag
from weron.cli.runtime import run
from weron.community import Community
from weron.manager import DEFAULT_MANAGER_RADDR, Manager, ManagerError
from weron.text import printable

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def remote_flags(function: F) -> F:
    """The flags every manager command shares."""
    decorators = [
        flag(
            "--api-password",
            default="",
            extra_env=["API_PASSWORD", "API_KEY"],
            help="Password for the management API, or an OIDC ID token (can also be set using "
            "the API_PASSWORD or API_KEY env variables)",
        ),
        flag(
            "--api-username",
            default="admin",
            extra_env=["API_USERNAME"],
            help="Username for the management API (can also be set using the API_USERNAME env "
            "variable). Ignored if any of the OIDC parameters are set.",
        ),
        flag("--raddr", default=DEFAULT_MANAGER_RADDR, help=raddr_help("Remote address", "http")),
        verbose_flag(leaf=True),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _manager(raddr: str, api_username: str, api_password: str) -> Manager:
    if not api_password.strip():
        raise click.ClickException(
            "missing API password: set --api-password, API_PASSWORD or API_KEY"
        )
    if not api_username.strip():
        raise click.ClickException("missing API username: set --api-username or API_USERNAME")
    try:
        return Manager(raddr, api_username, api_password)
    except ManagerError as exc:
        raise click.ClickException(str(exc)) from None


def _call(request: Coroutine[Any, Any, T]) -> T:
    try:
        return run(request)
    except ManagerError as exc:
        raise click.ClickException(str(exc)) from None


def _print_csv(communities: Iterable[Community]) -> None:
    """CSV of ``communities``, their ids escaped where unprintable (see :func:`printable`)."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["id", "clients", "persistent"])
    for community in communities:
        writer.writerow(
            [printable(community.id), community.clients, str(community.persistent).lower()]
        )


@click.command("list", short_help="List persistent and ephemeral communities")
@remote_flags
@click.pass_context
def list_command(
    ctx: click.Context, api_password: str, api_username: str, raddr: str, verbose: int | None
) -> None:
    """List persistent and ephemeral communities as CSV (id,clients,persistent)."""
    configure_logging(ctx, verbose)
    _print_csv(_call(_manager(raddr, api_username, api_password).list()))


@click.command("create", short_help="Create a persistent community")
@remote_flags
@flag("--community", default="", help="ID of community to create")
@flag("--password", default="", help="Password for community")
@click.pass_context
def create_command(
    ctx: click.Context,
    api_password: str,
    api_username: str,
    raddr: str,
    verbose: int | None,
    community: str,
    password: str,
) -> None:
    """Create a persistent community and print it as CSV."""
    configure_logging(ctx, verbose)
    if not community.strip():
        raise click.ClickException("missing community: set --community")
    if not password.strip():
        raise click.ClickException("missing password: set --password")
    manager = _manager(raddr, api_username, api_password)
    _print_csv([_call(manager.create(community, password))])


@click.command("delete", short_help="Delete a persistent or ephemeral community")
@remote_flags
@flag("--community", default="", help="ID of community to delete")
@click.pass_context
def delete_command(
    ctx: click.Context,
    api_password: str,
    api_username: str,
    raddr: str,
    verbose: int | None,
    community: str,
) -> None:
    """Delete a community and disconnect all of its members."""
    configure_logging(ctx, verbose)
    if not community.strip():
        raise click.ClickException("missing community: set --community")
    _call(_manager(raddr, api_username, api_password).delete(community))


manager_group = AliasedGroup(
    "manager", short_help="Manage a signaling server", help="Manage a signaling server."
)
manager_group.add_aliased(list_command, ["lis", "l", "ls"])
manager_group.add_aliased(create_command, ["ctr", "c"])
manager_group.add_aliased(delete_command, ["del", "d", "rm"])
