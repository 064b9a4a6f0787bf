"""The yardstick for bench/signaler.py: the smallest relay the ``websockets`` library allows.

It does what the signaler does on the hot paths (join a community named in the query string,
relay every message to every other member of it), minus the password check, logging and
bookkeeping. Measured with the same clients in the same run, it turns noisy absolute numbers on a
shared machine into a ratio. It runs on uvloop, as the signaler does.

Usage: ``python bench/reference_relay.py --port PORT [--host 127.0.0.1]``; stop it with SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import urllib.parse

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosedError

_communities: dict[str, set[ServerConnection]] = {}


async def _member(connection: ServerConnection) -> None:
    """One member: joins its community (no password check), relays until it leaves."""
    assert connection.request is not None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(connection.request.path).query)
    community = query.get("community", [""])[0]
    members = _communities.setdefault(community, set())
    members.add(connection)
    try:
        async for message in connection:
            broadcast([member for member in members if member is not connection], message)
    except ConnectionClosedError:
        pass  # the benchmark drops connections without a closing handshake: not worth a log
    finally:
        members.discard(connection)
        if not members:
            _communities.pop(community, None)


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, request_stop)
    # No compression and a 1 MiB limit, like the signaler; default keepalive pings.
    async with serve(_member, host, port, compression=None, max_size=1 << 20, backlog=1024):
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
