"""Echo example: the library API the way the original's README shows it.

Every peer that connects gets "Hello!" once a second; every line a peer sends is printed.

    .venv/bin/python examples/echo.py --raddr ws://localhost:1337/ \\
        --community mycommunity --password mypassword --key mykey
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from weron.peers import Peer
from weron.peers.adapter import Adapter, AdapterConfig
from weron.peers.stream import ChannelStream
from weron.webrtc import ChannelClosedError
from weron.webrtc.backends import load_backend


async def serve(peer: Peer) -> None:
    print("Connected to peer", peer.peer_id, "and channel", peer.channel_id, flush=True)
    stream = ChannelStream(peer.conn)

    async def greet() -> None:
        with contextlib.suppress(ChannelClosedError):
            while True:
                await stream.write(b"Hello!\n")
                await asyncio.sleep(1)

    greeter = asyncio.create_task(greet())
    async for line in stream:  # ends when the peer goes away
        print(line.decode(errors="replace").rstrip("\n"), flush=True)
    greeter.cancel()
    print("Disconnected from peer", peer.peer_id, "and channel", peer.channel_id, flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raddr", default="ws://localhost:1337/")
    parser.add_argument("--community", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--backend", default=None, help="libdatachannel or aiortc")
    args = parser.parse_args()

    adapter = Adapter(
        args.raddr,
        args.community,
        args.password,
        args.key,
        ["weron/echo/primary"],
        load_backend(args.backend),
        AdapterConfig(ice=()),
    )
    await adapter.open()
    print("Connected to signaler", await adapter.next_id(), flush=True)
    tasks = set()
    try:
        async for peer in adapter.peers():
            task = asyncio.create_task(serve(peer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        await adapter.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
