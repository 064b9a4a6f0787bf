"""Peers: join a community through a signaler and connect to every other member over WebRTC.

:class:`~weron.peers.adapter.Adapter` yields a :class:`Peer` per open data channel;
:class:`~weron.peers.named.NamedAdapter` also negotiates a unique name per member.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from weron.webrtc import DataChannel


@dataclass(frozen=True, slots=True)
class Peer:
    """One open data channel to one remote member. ``conn.receive()`` raises
    :class:`weron.webrtc.ChannelClosedError` once the member is gone."""

    peer_id: str
    channel_id: str
    conn: DataChannel


async def next_peer(
    queue: asyncio.Queue[Peer], runner: asyncio.Task[None] | None, check: Callable[[], None]
) -> Peer:
    """The next peer from ``queue``, or the reason ``runner`` (the adapter's task) ended:
    ``check`` raises that reason (a wrong password, no name left...)."""
    check()
    if runner is None:
        raise ConnectionError("the adapter is not open")
    getter = asyncio.ensure_future(queue.get())
    await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
    if getter.done():
        return getter.result()
    getter.cancel()
    check()
    raise ConnectionError("the adapter is closed")


async def next_announcement(queue: asyncio.Queue[str], check: Callable[[], None]) -> str:
    """The next id or name an adapter announces on ``queue``. An empty string means the
    adapter ended: it is put back for the next reader and ``check`` raises the reason."""
    value = await queue.get()
    if not value:
        queue.put_nowait("")
        check()
    return value
