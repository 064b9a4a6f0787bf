"""The named adapter's bookkeeping around the name negotiation, over a fake adapter: which
name a peer's channels carry, and what the log says, when a peer changes its name."""

from __future__ import annotations

import asyncio
import io
import json
from typing import cast

import pytest
from tests.unit.fakes import FakeAdapter, FakeChannel, until

from weron.log import configure
from weron.peers import Peer
from weron.peers import names as negotiation
from weron.peers.adapter import Adapter, AdapterConfig
from weron.peers.named import NamedAdapter
from weron.peers.watch import Watch
from weron.webrtc import Backend, ConnectionState, PeerConnection

pytestmark = pytest.mark.usefixtures("restore_logging")

ID_CHANNEL = "weron/id/id"


def message(*messages: negotiation.NameMessage) -> bytes:
    return b"".join(negotiation.encode(m) for m in messages)


async def alice_over_a_fake_adapter(
    peer_timeout: float, watch: Watch | None = None
) -> tuple[NamedAdapter, FakeAdapter]:
    """An open named adapter claiming "alice" over a fake adapter (the seam: no signaler, no
    WebRTC)."""
    named = NamedAdapter(
        "ws://unused",
        "community",
        "password",
        "key",
        ["data"],
        cast(Backend, object()),
        names=["alice"],
        kicks=0.01,
        config=AdapterConfig(timeout=peer_timeout, watch=watch),
    )
    fake = FakeAdapter()
    named._adapter = cast(Adapter, fake)
    await named.open()
    return named, fake


async def test_a_peer_that_changes_its_name_is_connected_again_under_the_new_name() -> None:
    stream = io.StringIO()
    configure(7, stream=stream)
    named, fake = await alice_over_a_fake_adapter(peer_timeout=0.01)
    assert await named.next_name() == "alice"

    old_id = FakeChannel(message(negotiation.Greeting(("bob",), 1), negotiation.Claimed("bob")))
    old_id.linger = True
    fake.arriving.put_nowait(Peer("bob-uuid", ID_CHANNEL, old_id))
    fake.arriving.put_nowait(Peer("bob-uuid", "data", FakeChannel(linger=True)))
    first = await asyncio.wait_for(named.accept(), 5)
    assert (first.peer_id, first.channel_id) == ("bob", "data")

    # Bob gave "bob" up to an older member and claimed "bob2": we connect to it again.
    old_id.push(message(negotiation.Claimed("bob2")))
    async with asyncio.timeout(5):
        while not fake.dropped:
            await asyncio.sleep(0.01)
    assert fake.dropped == ["bob-uuid"]

    # The new connection's data channel opens before its id channel has said the name: it is
    # held until the claim arrives on the new id channel, and goes out under the new name.
    fake.arriving.put_nowait(Peer("bob-uuid", "data", FakeChannel(linger=True)))
    new_id = FakeChannel(linger=True)
    fake.arriving.put_nowait(Peer("bob-uuid", ID_CHANNEL, new_id))
    await asyncio.sleep(0.05)
    assert named._accepted.empty()
    new_id.push(message(negotiation.Greeting(("bob2",), 1), negotiation.Claimed("bob2")))
    second = await asyncio.wait_for(named.accept(), 5)
    assert (second.peer_id, second.channel_id) == ("bob2", "data")
    await named.close()

    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    said = [(r["message"], r.get("id")) for r in records if "peer" in r["message"].lower()]
    assert said == [
        ("Connected to peer", "bob"),
        ("Peer changed its name", "bob2"),
        ("Connected to peer", "bob2"),
    ]


async def test_a_peer_silent_for_the_timeout_is_still_heard_when_it_speaks_again() -> None:
    """A peer that sent keepalives and then nothing for --timeout (a process stalled on a
    loaded machine, its connection fine) is dropped: a connection is offered beside it. Its
    id channel is still read, so its claim, when it comes, releases its data channels (not
    reading it held them for ever: `echo line | weron chat`'s line, sent on one, was lost)."""
    named, fake = await alice_over_a_fake_adapter(peer_timeout=0.05)
    assert await named.next_name() == "alice"

    bob_id = FakeChannel(
        message(negotiation.Greeting(("bob",), 1), negotiation.Keepalive()), linger=True
    )
    fake.arriving.put_nowait(Peer("bob-uuid", ID_CHANNEL, bob_id))
    fake.arriving.put_nowait(Peer("bob-uuid", "data", FakeChannel(linger=True)))
    await until(lambda: fake.dropped == ["bob-uuid"])  # silent for --timeout
    bob_id.push(message(negotiation.Claimed("bob")))
    peer = await asyncio.wait_for(named.accept(), 5)
    assert (peer.peer_id, peer.channel_id) == ("bob", "data")
    await named.close()


async def test_a_name_goes_to_the_member_that_answers_not_the_one_that_stopped() -> None:
    """A member killed and restarted claims its name again before its old connection is given
    up (another --timeout): the name is the new member's, and until_named waits for a member
    that answers rather than hand out the silent one."""
    named, fake = await alice_over_a_fake_adapter(peer_timeout=0.05)
    assert await named.next_name() == "alice"
    old_id = FakeChannel(
        message(negotiation.Greeting(("bob",), 1), negotiation.Claimed("bob")), linger=True
    )
    fake.arriving.put_nowait(Peer("old-uuid", ID_CHANNEL, old_id))
    assert await asyncio.wait_for(named.until_named("bob"), 5) == "old-uuid"
    old_id.push(message(negotiation.Keepalive()))
    await until(lambda: fake.dropped == ["old-uuid"])  # killed: silent for --timeout

    waiting = asyncio.create_task(named.until_named("bob"))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    assert named.peer_id("bob") == "old-uuid"  # the only one: it may come back

    new_id = FakeChannel(
        message(negotiation.Greeting(("bob",), 2), negotiation.Claimed("bob")), linger=True
    )
    fake.arriving.put_nowait(Peer("new-uuid", ID_CHANNEL, new_id))
    assert await asyncio.wait_for(waiting, 5) == "new-uuid"
    assert named.peer_id("bob") == "new-uuid"
    await named.close()


async def test_a_silent_member_that_answers_again_is_handed_out_again() -> None:
    """Its connected link shows as silent in `weron status` meanwhile."""
    watch = Watch()
    named, fake = await alice_over_a_fake_adapter(peer_timeout=0.05, watch=watch)
    assert await named.next_name() == "alice"
    watch.opened("link", "bob-uuid", cast(PeerConnection, None))
    watch.state("link", ConnectionState.CONNECTED)
    bob_id = FakeChannel(
        message(negotiation.Greeting(("bob",), 1), negotiation.Claimed("bob")), linger=True
    )
    fake.arriving.put_nowait(Peer("bob-uuid", ID_CHANNEL, bob_id))
    bob_id.push(message(negotiation.Keepalive()))
    await until(lambda: fake.dropped == ["bob-uuid"])
    waiting = asyncio.create_task(named.until_named("bob"))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    assert [peer.state for peer in watch.peers()] == ["silent"]
    bob_id.push(message(negotiation.Keepalive()))  # only stalled
    assert await asyncio.wait_for(waiting, 5) == "bob-uuid"
    assert [peer.state for peer in watch.peers()] == ["connected"]
    await named.close()


async def test_a_replaced_connection_falling_silent_leaves_the_member_answering() -> None:
    """The member's new connection took over (its id channel answers); the old one, not yet
    closed, falls silent: the member is not taken for silent."""
    named, fake = await alice_over_a_fake_adapter(peer_timeout=0.05)
    assert await named.next_name() == "alice"
    greeting = message(negotiation.Greeting(("bob",), 1), negotiation.Claimed("bob"))
    old_id = FakeChannel(greeting, linger=True)
    fake.arriving.put_nowait(Peer("bob-uuid", ID_CHANNEL, old_id))
    assert await asyncio.wait_for(named.until_named("bob"), 5) == "bob-uuid"
    new_id = FakeChannel(greeting, linger=True)  # no keepalive: never silent itself
    fake.arriving.put_nowait(Peer("bob-uuid", ID_CHANNEL, new_id))
    await until(lambda: named._id_channels["bob-uuid"].conn is new_id)
    old_id.push(message(negotiation.Keepalive()))
    await until(lambda: fake.dropped == ["bob-uuid"])  # the old one fell silent
    assert await asyncio.wait_for(named.until_named("bob"), 5) == "bob-uuid"
    await named.close()
