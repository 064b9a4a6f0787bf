"""`weron chat`'s bookkeeping without WebRTC (``Chat`` over a fake adapter, a screen on
strings): lines typed while alone wait for the first peer on each channel, what peers say and
do is shown (escaped), and the end of input fails plainly when nobody came."""

from __future__ import annotations

import asyncio
import io

import pytest
from tests.unit.fakes import FakeAdapter, FakeChannel, until

from weron.apps.chat import Chat, ChatConfig
from weron.apps.console import Screen
from weron.apps.join import JoinConfig
from weron.apps.peering import PeerAppError
from weron.peers import Peer
from weron.peers.adapter import AdapterConfig


class Room:
    """One chat on channels ``c1`` and ``c2``, its adapter, and what it wrote."""

    def __init__(self) -> None:
        join = JoinConfig("ws://unused", "c", "p", "k", AdapterConfig(timeout=0.1))
        config = ChatConfig(join, names=["alice"], channels=["c1", "c2"], kicks=0.01)
        self.out, self.err = io.StringIO(), io.StringIO()
        self.adapter = FakeAdapter()
        self.chat = Chat(config, self.adapter, Screen(self.out, self.err))
        self.background: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.background = [
            asyncio.create_task(self.chat.follow_names()),
            asyncio.create_task(self.chat.accept_peers()),
        ]

    def arrive(self, peer_id: str, channel_id: str) -> FakeChannel:
        channel = FakeChannel(linger=True)
        self.adapter.arriving.put_nowait(Peer(peer_id, channel_id, channel))
        return channel

    def stop(self) -> None:
        for task in self.background:
            task.cancel()
        self.chat.cancel()


async def test_lines_typed_while_alone_wait_for_the_first_peer_on_each_channel() -> None:
    room = Room()
    await room.chat.say("hello")
    await room.chat.say("again")
    assert room.err.getvalue().count("nobody connected yet") == 1  # said once
    room.start()
    bob = room.arrive("bob", "c1")
    await until(lambda: len(bob.sent) == 2)
    assert bob.sent == [b"hello\n", b"again\n"]
    assert "+bob@c1" in room.out.getvalue()
    assert "sent 2 waiting lines to bob@c1" in room.err.getvalue()

    await room.chat.say("now")  # someone is here: it goes at once, and waits nowhere
    assert bob.sent[-1] == b"now\n"
    room.adapter.names.put_nowait("alice")
    await room.chat.finish(room.background)  # c2's lines wait --timeout, then a notice
    assert "not sent on c2: no peer connected there" in room.err.getvalue()
    room.stop()


async def test_at_the_end_of_input_lines_nobody_received_are_an_error() -> None:
    room = Room()
    room.start()
    room.adapter.names.put_nowait("alice")
    await room.chat.say("anyone?")
    with pytest.raises(PeerAppError, match=r"no peer connected: not sent \(1 line, waited 0.1s"):
        await room.chat.finish(room.background)
    assert "nobody here 0.1s after joining" in room.err.getvalue()  # the --key hint
    room.stop()


async def test_what_peers_say_is_shown_escaped_and_their_leaving_too() -> None:
    room = Room()
    room.start()
    bob = room.arrive("bob\x1b[2J", "c1")
    bob.push(b"hi\x1b[31m there\nsecond line\n")
    await until(lambda: "second line" in room.out.getvalue())
    bob.close()
    await until(lambda: "-bob" in room.out.getvalue())
    shown = room.out.getvalue()
    assert "\x1b" not in shown  # a peer never drives our terminal
    assert shown.splitlines() == [
        "+bob\\x1b[2J@c1",
        "bob\\x1b[2J@c1: hi\\x1b[31m there",
        "bob\\x1b[2J@c1: second line",
        "-bob\\x1b[2J@c1",
    ]
    room.stop()


async def test_a_new_connection_to_a_connected_peer_takes_over_quietly() -> None:
    room = Room()
    room.start()
    old = room.arrive("bob", "c1")
    await until(lambda: "+bob@c1" in room.out.getvalue())
    new = room.arrive("bob", "c1")
    await asyncio.sleep(0.02)
    old.close()  # the replaced connection ends: bob is still here
    await asyncio.sleep(0.02)
    assert room.out.getvalue().splitlines() == ["+bob@c1"]
    await room.chat.say("hi")
    assert new.sent == [b"hi\n"]
    assert old.sent == []
    new.close()
    await until(lambda: "-bob@c1" in room.out.getvalue())
    room.stop()
