"""`weron chat`: lines typed on stdin go to every peer on every channel; what peers send is
printed as ``<peer>@<channel>: <text>`` (output format: docs/wire-protocol.md#command-output)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from weron.apps.console import Screen, escape_controls, next_line, read_lines
from weron.log import get_logger
from weron.peers import Peer
from weron.peers.adapter import AdapterConfig
from weron.peers.named import NamedAdapter
from weron.webrtc import Backend, ChannelClosedError

log = get_logger(__name__)


@dataclass(slots=True)
class ChatConfig:
    raddr: str
    community: str
    password: str
    key: str
    names: Sequence[str]
    channels: Sequence[str] = ("weron/chat/primary",)
    id_channel: str = "weron/chat/id"
    kicks: float = 5.0
    adapter: AdapterConfig = field(default_factory=AdapterConfig)


async def run(
    config: ChatConfig, backend: Backend, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> None:
    """Chat until stdin ends (EOF) or the task is cancelled (Ctrl-C)."""
    screen = Screen(stdout or sys.stdout)
    adapter = NamedAdapter(
        config.raddr,
        config.community,
        config.password,
        config.key,
        config.channels,
        backend,
        names=config.names,
        id_channel=config.id_channel,
        kicks=config.kicks,
        config=config.adapter,
    )
    screen.write(f".{config.raddr}")
    connected: dict[tuple[str, str], Peer] = {}
    lines = read_lines(stdin or sys.stdin)
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coroutine: object) -> None:
        task = asyncio.ensure_future(coroutine)  # type: ignore[call-overload]
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def follow_names() -> None:
        while True:
            screen.name = await adapter.next_name()
            screen.write(f"\n{screen.name}!\n")

    async def follow_peer(peer: Peer) -> None:
        key = (peer.peer_id, peer.channel_id)
        replacing = key in connected  # a new connection to the same peer takes over quietly
        connected[key] = peer
        # Names and text come from peers: never let them drive our terminal.
        who = f"{escape_controls(peer.peer_id)}@{escape_controls(peer.channel_id)}"
        if not replacing:
            screen.line(f"+{who}")
        try:
            while True:
                message = await peer.conn.receive()
                for text in message.decode("utf-8", "replace").splitlines():
                    screen.line(f"{who}: {escape_controls(text)}")
        except ChannelClosedError:
            pass
        finally:
            if connected.get(key) is peer:
                del connected[key]
                screen.line(f"-{who}")

    async def accept_peers() -> None:
        async for peer in adapter.peers():
            spawn(follow_peer(peer))

    async def send(peer: Peer, data: bytes) -> None:
        with contextlib.suppress(ChannelClosedError):
            await peer.conn.send(data)

    await adapter.open()
    background = [asyncio.create_task(follow_names()), asyncio.create_task(accept_peers())]
    try:
        while True:
            line = await next_line(lines, background)
            if line is None:
                break
            data = (line + "\n").encode()
            await asyncio.gather(*(send(peer, data) for peer in list(connected.values())))
    finally:
        for task in [*background, *tasks]:
            task.cancel()
        await adapter.close()
