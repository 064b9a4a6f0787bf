"""`weron chat`: lines typed on stdin go to every peer on every channel; what peers send is
printed as ``<peer>@<channel>: <text>`` (output format: docs/wire-protocol.md#command-output).

No line is dropped for want of a peer: lines typed while nobody is connected wait, on each
channel, for the first peer that connects on it (a notice says so). At the end of input
(``echo hi | weron chat ...``) waiting lines get ``--timeout`` after our name is claimed to find
a peer, else the chat fails with "no peer connected: not sent"; what was sent has left before
the connections close. A name not claimed within the longest a claim takes (the signaler
unreachable) fails the same way instead of waiting for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TextIO

from weron.apps.console import Screen, console, escape_controls, next_line, until
from weron.apps.join import JoinConfig
from weron.apps.peering import PeerAppError
from weron.log import get_logger
from weron.peers import Peer
from weron.peers.named import NamedAdapter
from weron.webrtc import Backend, ChannelClosedError

log = get_logger(__name__)


@dataclass(slots=True)
class ChatConfig:
    join: JoinConfig
    names: Sequence[str]
    channels: Sequence[str] = ("weron/chat/primary",)
    id_channel: str = "weron/chat/id"
    kicks: float = 5.0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


async def _send(peer: Peer, lines: Sequence[str]) -> bool:
    """Send ``lines`` one message each; False if the channel closed first."""
    try:
        for line in lines:
            await peer.conn.send((line + "\n").encode())
    except ChannelClosedError:
        return False
    return True


class NamedPeers(Protocol):
    """What the chat asks of the :class:`~weron.peers.named.NamedAdapter`: our names, and a
    :class:`Peer` per open channel, by the peer's name."""

    async def next_name(self) -> str: ...

    def peers(self) -> AsyncIterator[Peer]: ...


class Chat:
    """Who is connected, what waits for a peer, and what the user is told about it. The
    adapter and the screen come in: tests give a fake adapter and a screen on strings."""

    def __init__(self, config: ChatConfig, adapter: NamedPeers, screen: Screen) -> None:
        self._config = config
        self._adapter = adapter
        self._screen = screen
        self._timeout = config.join.adapter.timeout
        self._channels = [channel for channel in config.channels if channel.strip()]
        self._connected: dict[tuple[str, str], Peer] = {}
        self._waiting: dict[str, list[str]] = {}  # by channel: lines typed while alone
        self._sent_waiting = asyncio.Event()  # waiting lines went out on a channel
        self._delivered = False  # some waiting lines went out
        self._met = False  # a peer connected at least once
        self._hinted = False
        self._named = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coroutine: object) -> None:
        task = asyncio.ensure_future(coroutine)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def follow_names(self) -> None:
        while True:
            name = await self._adapter.next_name()
            self._screen.prompt = f"{name}> "
            self._screen.line(f"{name}!")
            self._named.set()

    async def show_progress(self) -> None:
        """On the prompt line until our name is claimed: that takes --timeout + --kicks."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            self._screen.prompt = f"claiming a name… ({round(loop.time() - started)} s) "
            await asyncio.sleep(1)
            if self._named.is_set():
                return

    async def hint_when_alone(self) -> None:
        """--timeout after joining."""
        await self._named.wait()
        await asyncio.sleep(self._timeout)
        self._hint()

    def _hint(self) -> None:
        """A wrong --key is silence, not an error: say so once if nobody came."""
        if not self._met and not self._hinted:
            self._hinted = True
            self._screen.notice(
                f"nobody here {self._timeout:g}s after joining: members with another --key "
                "(or --community) cannot see each other"
            )

    async def accept_peers(self) -> None:
        async for peer in self._adapter.peers():
            self.spawn(self._follow_peer(peer))

    async def _follow_peer(self, peer: Peer) -> None:
        key = (peer.peer_id, peer.channel_id)
        replacing = key in self._connected  # a new connection to the same peer takes over quietly
        self._connected[key] = peer
        self._met = True
        # Names and text come from peers: never let them drive our terminal.
        who = f"{escape_controls(peer.peer_id)}@{escape_controls(peer.channel_id)}"
        if not replacing:
            self._screen.line(f"+{who}")
        await self._send_waiting(peer, who)
        try:
            while True:
                message = await peer.conn.receive()
                for text in message.decode("utf-8", "replace").splitlines():
                    self._screen.line(f"{who}: {escape_controls(text)}")
        except ChannelClosedError:
            pass
        finally:
            if self._connected.get(key) is peer:
                del self._connected[key]
                self._screen.line(f"-{who}")

    async def _send_waiting(self, peer: Peer, who: str) -> None:
        waiting = self._waiting.pop(peer.channel_id, [])
        if not waiting:
            return
        if await _send(peer, waiting):
            self._screen.notice(f"sent {_plural(len(waiting), 'waiting line')} to {who}")
            self._delivered = True
            self._sent_waiting.set()
        else:  # gone at once: they wait for the next peer
            self._waiting[peer.channel_id] = waiting + self._waiting.get(peer.channel_id, [])

    async def say(self, line: str) -> None:
        peers = list(self._connected.values())
        if peers:
            await asyncio.gather(*(_send(peer, [line]) for peer in peers))
            return
        if not any(self._waiting.values()):
            self._screen.notice("nobody connected yet: lines wait for the first peer that joins")
        for channel in self._channels:
            self._waiting.setdefault(channel, []).append(line)

    async def finish(self, background: Sequence[asyncio.Task[None]]) -> None:
        """At the end of input: waiting lines get --timeout after our name is claimed to find a
        peer; then what was sent leaves before the connections close."""
        if any(self._waiting.values()):
            count = max(len(lines) for lines in self._waiting.values())
            # Reaching the signaler (--timeout), then the claim: --timeout + --kicks, and up to
            # max(--timeout, 15 s) longer while connections negotiate (NamedAdapter._claim).
            limit = 2 * self._timeout + self._config.kicks + max(self._timeout, 15.0)
            try:
                async with asyncio.timeout(limit):
                    await until(self._named.wait(), background)
            except TimeoutError:
                raise PeerAppError(
                    f"no peer connected: not sent ({_plural(count, 'line')}, no name claimed "
                    f"within {limit:g}s: is the signaler reachable?)"
                ) from None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timeout):
                    while any(self._waiting.values()):
                        self._sent_waiting.clear()
                        await until(self._sent_waiting.wait(), background)
            if not self._delivered:
                self._hint()
                raise PeerAppError(
                    f"no peer connected: not sent ({_plural(count, 'line')}, waited "
                    f"{self._timeout:g}s after joining)"
                )
            unsent = [channel for channel, lines in self._waiting.items() if lines]
            if unsent:
                self._screen.notice(f"not sent on {', '.join(unsent)}: no peer connected there")
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.gather(*(peer.conn.drain() for peer in self._connected.values()))
        except TimeoutError:  # what peers have not acknowledged yet is lost with the close
            log.debug("Closing with data unacknowledged", timeout=self._timeout)


async def run(
    config: ChatConfig, backend: Backend, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> None:
    """Chat until stdin ends (EOF) or the task is cancelled (Ctrl-C)."""
    adapter = NamedAdapter(
        config.join.raddr,
        config.join.community,
        config.join.password,
        config.join.key,
        config.channels,
        backend,
        names=config.names,
        id_channel=config.id_channel,
        kicks=config.kicks,
        config=config.join.adapter,
    )
    with console(stdin or sys.stdin, stdout or sys.stdout) as (screen, lines):
        chat = Chat(config, adapter, screen)
        screen.line(f".{config.join.raddr}")
        chat.spawn(chat.show_progress())
        await adapter.open()
        background = [
            asyncio.create_task(chat.follow_names()),
            asyncio.create_task(chat.accept_peers()),
        ]
        chat.spawn(chat.hint_when_alone())
        try:
            while (line := await next_line(lines, background)) is not None:
                await chat.say(line)
            await chat.finish(background)
        finally:
            for task in background:
                task.cancel()
            chat.cancel()
            await adapter.close()
