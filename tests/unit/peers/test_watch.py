"""The registry adapters report their links to (weron.peers.watch)."""

from __future__ import annotations

import asyncio

from tests.unit.fakes import FakeChannel, FakeConnection, OneConnectionBackend, until

from weron.peers import session as core
from weron.peers.adapter import Adapter, AdapterConfig, _Link
from weron.peers.watch import Watch
from weron.webrtc import ChannelSpec, ConnectionState, DataChannel, LinkStats


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


def test_a_peer_that_stopped_answering_shows_its_connected_link_as_silent() -> None:
    """The old link of a member killed and restarted stays connected (ICE has not noticed)
    until it is given up; status says it is silent, beside the new link being offered."""
    watch = Watch()
    watch.opened("old", "peer-4", Connection(LinkStats()))  # type: ignore[arg-type]
    watch.state("old", ConnectionState.CONNECTED)
    watch.silent("peer-4", True)
    watch.opened("new", "peer-4", Connection(LinkStats()))  # type: ignore[arg-type]
    watch.state("new", ConnectionState.CONNECTING)
    assert [peer.state for peer in watch.peers()] == ["silent", "connecting"]
    watch.silent("peer-4", False)  # it answers again
    assert [peer.state for peer in watch.peers()] == ["connected", "connecting"]
    watch.silent("peer-4", True)
    watch.closed("old")
    watch.closed("new")
    watch.silent("peer-5", True)  # no link: not kept
    assert watch._silent == set()


class Labelled(FakeChannel):
    def __init__(self, label: str) -> None:
        super().__init__(linger=True)
        self._label = label

    @property
    def label(self) -> str:
        return self._label


class Opening(FakeConnection):
    """A connection whose channels are open once created (the test hands them to the link)."""

    def __init__(self) -> None:
        self.created: list[FakeChannel] = []

    def create_channel(self, spec: ChannelSpec) -> DataChannel:
        self.created.append(Labelled(spec.label))
        return self.created[-1]


async def test_the_channels_listed_are_those_open_ours_too() -> None:
    """`weron forward`'s listening member opens a channel per connection: it showed only the
    id channel, and channels closed (forgotten) stayed listed for as long as the link."""
    connection, watch = Opening(), Watch()
    config = AdapterConfig(timeout=1, later_labels=lambda label: True, watch=watch)
    backend = OneConnectionBackend(connection)
    adapter = Adapter("ws://127.0.0.1:9/", "c", "pw", "key", [], backend, config=config)
    link = _Link(adapter, core.Open(1, "bob", initiator=False))
    link.connected = True
    adapter._links[1] = link
    theirs = Labelled("theirs")
    link.on_channel(theirs)
    opening = asyncio.create_task(adapter.open_channel("bob", ChannelSpec("ours")))
    await until(lambda: bool(connection.created))
    link.on_channel(connection.created[0])
    ours = await opening
    assert watch.peers()[0].channels == ("theirs", "ours")
    adapter.forget_channel(ours)
    adapter.forget_channel(theirs)
    adapter.forget_channel(theirs)  # twice: nothing more
    assert watch.peers()[0].channels == ()
    await link.close()
