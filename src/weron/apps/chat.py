"""`weron chat`: lines typed on stdin go to every peer on every channel; what peers send is
printed as ``<peer>@<channel>: <text>`` (output format of weron-protocol.md §5)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from weron.log import get_logger
from weron.peers import Peer
from weron.peers.adapter import AdapterConfig
from weron.peers.named import NamedAdapter
from weron.webrtc import Backend, ChannelClosedError

log = get_logger(__name__)
_CLEAR_LINE = "\r\x1b[0K"


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


class _Screen:
    """Writes chat output; the prompt and line clearing only on a terminal, so that piped
    output stays one clean line per event."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self.name = ""

    def write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def line(self, text: str) -> None:
        if self._tty:
            self.write(f"{_CLEAR_LINE}{text}\n{_CLEAR_LINE}{self.name}> ")
        else:
            self.write(f"{text}\n")


def _read_lines(
    stdin: TextIO, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]
) -> None:
    """Blocking reads in a thread: works for terminals, pipes and files alike."""
    try:
        for line in stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
    finally:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(queue.put_nowait, None)


async def run(
    config: ChatConfig, backend: Backend, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> None:
    """Chat until stdin ends (EOF) or the task is cancelled (Ctrl-C)."""
    screen = _Screen(stdout or sys.stdout)
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
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(
        target=_read_lines,
        args=(stdin or sys.stdin, asyncio.get_running_loop(), lines),
        daemon=True,
        name="stdin",
    ).start()
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
        connected[key] = peer
        screen.line(f"+{peer.peer_id}@{peer.channel_id}")
        try:
            while True:
                message = await peer.conn.receive()
                for text in message.decode("utf-8", "replace").splitlines():
                    screen.line(f"{peer.peer_id}@{peer.channel_id}: {text}")
        except ChannelClosedError:
            pass
        finally:
            if connected.get(key) is peer:
                del connected[key]
            screen.line(f"-{peer.peer_id}@{peer.channel_id}")

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
            line_task = asyncio.ensure_future(lines.get())
            done, _ = await asyncio.wait(
                {line_task, *background}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in background:
                if task in done:
                    line_task.cancel()
                    task.result()  # raises what ended the adapter (wrong password, all names)
            line = line_task.result()
            if line is None:
                break
            data = (line + "\n").encode()
            await asyncio.gather(*(send(peer, data) for peer in list(connected.values())))
    finally:
        for task in [*background, *tasks]:
            task.cancel()
        await adapter.close()
