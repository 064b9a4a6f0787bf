"""`weron status`: the peers of every running peer process (flag parsing and printing only)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from weron.cli.options import CONTEXT_SETTINGS, Duration, configure_logging, verbose_flag
from weron.cli.runtime import run, wait_for_stop_signal
from weron.status import client, paths, render
from weron.status.model import ProcessStatus

_CLEAR = "\x1b[H\x1b[2J"


@click.command(
    "status",
    context_settings=CONTEXT_SETTINGS,
    short_help="Show the peers of running weron processes",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table")
@click.option(
    "--watch", is_flag=True, help="Print again every --interval until Ctrl-C (JSON: a line each)"
)
@click.option(
    "--interval",
    type=Duration(),
    default="2s",
    show_default=True,
    help="Pause between --watch refreshes",
)
@click.option(
    "--process",
    "process",
    metavar="PID|SOCKET",
    default=None,
    help="Only this process: its pid, or the path of its control socket",
)
@click.option(
    "--runtime-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where control sockets are (default: $XDG_RUNTIME_DIR/weron, else /run/weron for "
    "root and /tmp/weron-UID for others)",
)
@verbose_flag(leaf=True)
def status_command(
    as_json: bool,
    watch: bool,
    interval: float,
    process: str | None,
    runtime_dir: Path | None,
    verbose: int | None,
) -> None:
    """Show the peers of every running peer process (chat, utility latency and throughput,
    vpn ip and ethernet) of this user: per peer its name or id, connection state, path
    (direct through host or srflx candidates, or relayed by TURN) with the addresses in use,
    round trip, bytes sent and received, and since when it is connected. Each such process
    answers on a control socket (see docs/status.md)."""
    configure_logging(click.get_current_context(), verbose, default=4)
    directory = runtime_dir if runtime_dir is not None else paths.runtime_dir()
    if interval <= 0:
        raise click.ClickException("--interval must be more than 0")
    try:
        paths.check_private(directory, reader=True)
    except FileNotFoundError:
        pass  # nothing runs yet
    except OSError as exc:
        raise click.ClickException(f"refusing the runtime directory: {exc}") from None
    run(_until_stopped(_show(directory, process, as_json=as_json, watch=watch, interval=interval)))


async def _until_stopped(show: Coroutine[Any, Any, None]) -> None:
    """Ctrl-C (or SIGTERM) ends --watch cleanly, with status 0."""
    shown = asyncio.ensure_future(show)
    stop = asyncio.ensure_future(wait_for_stop_signal())
    try:
        await asyncio.wait({shown, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        shown.cancel()
    if shown.done() and not shown.cancelled():
        shown.result()


def _select(directory: Path, process: str | None) -> list[client.Found]:
    if process is None:
        return client.find_sockets(directory)
    if process.isdigit():
        found = [item for item in client.find_sockets(directory) if item.pid == int(process)]
        if not found:
            raise click.ClickException(f"no weron peer process with pid {process} in {directory}")
        return found
    path = Path(process)
    if not path.is_socket():
        raise click.ClickException(f"--process {process}: not a pid nor a control socket")
    return [client.Found(path, None)]


async def _snapshot(directory: Path, process: str | None) -> list[ProcessStatus]:
    found = _select(directory, process)
    statuses = await client.query_all(found)
    if process is not None and not statuses:
        raise click.ClickException(f"process {process} did not answer")
    return statuses


async def _show(
    directory: Path, process: str | None, *, as_json: bool, watch: bool, interval: float
) -> None:
    while True:
        statuses = await _snapshot(directory, process)
        if as_json:
            click.echo(render.as_json(statuses))
        else:
            text = (
                render.as_table(statuses, time.time())
                if statuses
                else f"no weron peer process is running (no control socket in {directory})"
            )
            if watch:
                click.echo(_CLEAR + time.strftime("%H:%M:%S ") + text)
            elif statuses:
                click.echo(text)
            else:
                click.echo(text, err=True)
                sys.exit(1)
        if not watch:
            return
        await asyncio.sleep(interval)
