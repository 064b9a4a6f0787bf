"""What a peer process knows of its peers now, for `weron status` and metrics.

The adapters report their links here (opened, state changes, channels, names, closed); a
snapshot asks each connection for its engine's figures at that moment, so nothing is polled
while nobody looks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from weron.status.model import PeerStatus
from weron.webrtc import ConnectionState, PeerConnection


@dataclass(slots=True)
class _Watched:
    peer_id: str
    connection: PeerConnection
    state: ConnectionState = ConnectionState.NEW
    since: float | None = None  # wall clock, when first connected
    channels: dict[str, int] = field(default_factory=dict)  # open channels by label


class Watch:
    """The links of every adapter of one process, keyed by the adapter's link object."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._links: dict[object, _Watched] = {}
        self._names: dict[str, str] = {}  # peer id -> claimed name, while a link is up
        self._silent: set[str] = set()  # peer ids that stopped answering, while a link is up
        self.id = ""  # ours, once an adapter has one
        self.name = ""  # ours, once claimed

    def opened(self, link: object, peer_id: str, connection: PeerConnection) -> None:
        self._links[link] = _Watched(peer_id, connection)

    def state(self, link: object, state: ConnectionState) -> None:
        watched = self._links.get(link)
        if watched is None:
            return
        watched.state = state
        if state is ConnectionState.CONNECTED and watched.since is None:
            watched.since = self._clock()

    def channel(self, link: object, label: str) -> None:
        watched = self._links.get(link)
        if watched is not None:
            watched.channels[label] = watched.channels.get(label, 0) + 1

    def channel_closed(self, link: object, label: str) -> None:
        """A channel the app is done with (`weron forward` opens one per connection, and
        closes those that cannot carry another: they are not listed for ever)."""
        watched = self._links.get(link)
        if watched is not None and label in watched.channels:
            watched.channels[label] -= 1
            if not watched.channels[label]:
                del watched.channels[label]

    def named(self, peer_id: str, name: str) -> None:
        if any(watched.peer_id == peer_id for watched in self._links.values()):
            self._names[peer_id] = name

    def silent(self, peer_id: str, silent: bool) -> None:
        """The peer stopped answering (its connected links show ``silent`` until it is given
        up), or answers again."""
        if not silent:
            self._silent.discard(peer_id)
        elif any(watched.peer_id == peer_id for watched in self._links.values()):
            self._silent.add(peer_id)

    def closed(self, link: object) -> None:
        watched = self._links.pop(link, None)
        if watched is not None and all(
            other.peer_id != watched.peer_id for other in self._links.values()
        ):
            self._names.pop(watched.peer_id, None)
            self._silent.discard(watched.peer_id)

    def peers(self) -> list[PeerStatus]:
        """Every link now, with its engine's figures (an engine that fails to tell shows
        none rather than hiding the peer)."""
        result = []
        for watched in self._links.values():
            state = watched.state.value
            if watched.peer_id in self._silent and watched.state is ConnectionState.CONNECTED:
                state = "silent"
            try:
                stats = watched.connection.stats()
            except Exception:  # a closing connection: no figures
                stats = None
            result.append(
                PeerStatus.of(
                    watched.peer_id,
                    self._names.get(watched.peer_id, ""),
                    state,
                    watched.since,
                    tuple(watched.channels),
                    stats,
                )
            )
        return result
