"""What the measurement apps share: one handler task per connected peer, clean endings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from weron.log import get_logger
from weron.peers import Peer
from weron.webrtc import ChannelClosedError

log = get_logger(__name__)


class PeerAppError(RuntimeError):
    """A problem the user has to fix (it ends the app with this message)."""


class PeerSource(Protocol):
    """An :class:`~weron.peers.adapter.Adapter` or a :class:`~weron.peers.named.NamedAdapter`."""

    async def open(self) -> None: ...

    def peers(self) -> AsyncIterator[Peer]: ...

    async def close(self) -> None: ...


async def serve_each_peer(
    adapter: PeerSource, handler: Callable[[Peer], Awaitable[None]], *, log_peers: bool = True
) -> None:
    """Run ``handler`` for every peer until cancelled; a :class:`PeerAppError` from a handler
    ends everything, a peer going away only ends its handler. ``log_peers``: log connects and
    disconnects here (apps that log them with more detail turn it off)."""
    failure: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    handlers: set[asyncio.Task[None]] = set()

    async def guarded(peer: Peer) -> None:
        if log_peers:
            log.info("Connected to peer", id=peer.peer_id, channel=peer.channel_id)
        try:
            await handler(peer)
        except ChannelClosedError:
            if log_peers:
                log.warning("Disconnected from peer", id=peer.peer_id, channel=peer.channel_id)
        except PeerAppError as exc:
            if not failure.done():
                failure.set_exception(exc)

    async def accept() -> None:
        async for peer in adapter.peers():
            task = asyncio.create_task(guarded(peer))
            handlers.add(task)
            task.add_done_callback(handlers.discard)

    await adapter.open()
    accepting = asyncio.create_task(accept())
    try:
        await asyncio.wait({accepting, failure}, return_when=asyncio.FIRST_COMPLETED)
        if failure.done():
            failure.result()
        accepting.result()
    finally:
        accepting.cancel()
        for task in list(handlers):
            task.cancel()
        await adapter.close()
