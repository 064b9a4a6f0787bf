"""UDP endpoints as gonet's layers pass them around: a plain ``(host, port)`` tuple, or a
:class:`Relayed` one that only a TURN relay reaches.

Its own module because the pure cores (WireGuard's cookies and sessions, the hole-punching
paths) and the asyncio sockets all name them, and none of them should import another for a
type."""

from __future__ import annotations

from typing import NamedTuple

Endpoint = tuple[str, int]


class Relayed(NamedTuple):
    """A peer address as our TURN relay sees it: datagrams to it travel through the relay.

    A tuple like any endpoint, so the protocol core treats it alike (roaming, cookies); only
    its class tells the WireGuard socket to hand it to ``send_foreign``."""

    host: str
    port: int
