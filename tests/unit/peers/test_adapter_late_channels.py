"""A channel that opens after its opener gave up waiting (``open_channel``'s timeout): it goes
to the opener's ``late`` if given (an app that reuses channels keeps it: with libdatachannel
a closed one holds its stream until the connection closes), else it is closed; either way
the connection holds nothing it will not use."""

from __future__ import annotations

import pytest
from tests.unit.fakes import FakeChannel, FakeConnection, OneConnectionBackend

from weron.peers import session as core
from weron.peers.adapter import Adapter, AdapterConfig, _Link
from weron.webrtc import ChannelSpec, DataChannel


class SilentConnection(FakeConnection):
    """A connected peer connection whose channels open only when the test says."""

    def __init__(self) -> None:
        self.created: list[FakeChannel] = []

    def create_channel(self, spec: ChannelSpec) -> DataChannel:
        self.created.append(FakeChannel(linger=True))
        return self.created[-1]


async def late_open(late: list[DataChannel] | None) -> tuple[_Link, FakeChannel]:
    """Open a channel that does not open within the timeout, then let it open."""
    connection = SilentConnection()
    backend = OneConnectionBackend(connection)
    config = AdapterConfig(timeout=0.05, later_labels=lambda label: True)
    adapter = Adapter("ws://127.0.0.1:9/", "c", "pw", "key", [], backend, config=config)
    link = _Link(adapter, core.Open(1, "bob", initiator=False))
    link.connected = True
    adapter._links[1] = link
    with pytest.raises(ConnectionError, match="not open after"):
        if late is None:
            await adapter.open_channel("bob", ChannelSpec("app/1"))
        else:
            await adapter.open_channel("bob", ChannelSpec("app/1"), late.append)
    (channel,) = connection.created
    link.on_channel(channel)
    return link, channel


async def test_a_channel_opened_late_goes_to_the_opener() -> None:
    taken: list[DataChannel] = []
    link, channel = await late_open(taken)
    assert taken == [channel]
    assert not channel.closed
    assert channel in link.channels  # closed with the connection
    assert not link.opening
    await link.close()
    assert channel.closed


async def test_a_channel_opened_late_without_a_taker_is_closed_and_not_held() -> None:
    link, channel = await late_open(None)
    assert channel.closed
    assert channel not in link.channels
    assert not link.opening
    await link.close()
