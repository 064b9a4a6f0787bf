"""The registry adapters report their links to (weron.peers.watch)."""

from __future__ import annotations

from weron.peers.watch import Watch
from weron.webrtc import ConnectionState, LinkStats


class Connection:
    def __init__(self, stats: LinkStats | None = None) -> None:
        self._stats = stats

    def stats(self) -> LinkStats:
        if self._stats is None:
            raise RuntimeError("closed under us")
        return self._stats


def test_a_link_from_open_to_close() -> None:
    clock = iter([100.0, 200.0])
    watch = Watch(clock=lambda: next(clock))
    link = object()
    watch.opened(link, "peer-1", Connection(LinkStats(bytes_sent=5)))  # type: ignore[arg-type]
    watch.named("peer-1", "bob")
    (peer,) = watch.peers()
    assert (peer.id, peer.name, peer.state, peer.connected_since) == ("peer-1", "bob", "new", None)
    watch.state(link, ConnectionState.CONNECTED)
    watch.channel(link, "chat")
    watch.channel(link, "chat")
    watch.state(link, ConnectionState.DISCONNECTED)
    watch.state(link, ConnectionState.CONNECTED)  # back: still connected since the first time
    (peer,) = watch.peers()
    assert peer.state == "connected" and peer.connected_since == 100.0
    assert peer.channels == ("chat",) and peer.bytes_sent == 5
    watch.closed(link)
    assert watch.peers() == []
    watch.named("peer-1", "bob")  # a name for a peer with no link is not kept
    assert watch._names == {}


def test_a_failing_engine_still_shows_the_peer() -> None:
    watch = Watch()
    watch.opened("link", "peer-2", Connection())  # type: ignore[arg-type]
    (peer,) = watch.peers()
    assert peer.id == "peer-2" and peer.bytes_sent is None and peer.path is None


def test_events_for_unknown_links_are_ignored() -> None:
    watch = Watch()
    watch.state("gone", ConnectionState.CONNECTED)
    watch.channel("gone", "x")
    watch.closed("gone")
    assert watch.peers() == []


def test_a_name_stays_while_another_link_to_the_peer_is_up() -> None:
    watch = Watch()
    watch.opened("old", "peer-3", Connection(LinkStats()))  # type: ignore[arg-type]
    watch.opened("new", "peer-3", Connection(LinkStats()))  # type: ignore[arg-type]
    watch.named("peer-3", "dave")
    watch.closed("old")
    assert [peer.name for peer in watch.peers()] == ["dave"]
