"""The relay: to every other member of the sender's community, framed once, never decoded."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TypeVar

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from weron.signaler.broker import RelayedMessage
from weron.signaler.broker.local import LocalBroker
from weron.signaler.relay import Relay, RelayMember, frame_message

T = TypeVar("T")


@dataclass(eq=False)
class FakeMember:
    id: str
    community: str
    frames: list[bytes] = field(default_factory=list)
    kicks: list[str] = field(default_factory=list)
    binary_frames: bool = False
    generation: int = 1

    def send_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def kick(self, reason: str) -> None:
        self.kicks.append(reason)


class WatchingBroker(LocalBroker):
    """A local broker that remembers which communities it was asked to watch."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    async def watch(self, community: str) -> None:
        self.calls.append(("watch", community))

    async def unwatch(self, community: str) -> None:
        self.calls.append(("unwatch", community))


def complete(step: Generator[None, None, T]) -> T:
    """Run a sans-I/O parsing step that must not need more data than was fed."""
    try:
        next(step)
    except StopIteration as done:
        result: T = done.value
        return result
    raise AssertionError("incomplete data")


def parse_frames(data: bytes) -> list[Frame]:
    """Parse ``data`` as a client reads server frames (unmasked), leaving nothing over."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while not complete(reader.at_eof()):
        frames.append(complete(Frame.parse(reader.read_exact, mask=False)))
    return frames


@pytest.fixture
async def broker() -> WatchingBroker:
    return WatchingBroker()


@pytest.fixture
async def relay(broker: WatchingBroker) -> Relay:
    relay = Relay(broker)
    await broker.open(relay)
    return relay


async def attach_all(relay: Relay, *members: RelayMember) -> None:
    for member in members:
        await relay.attach(member)


async def test_message_goes_to_every_other_member_of_the_community(relay: Relay) -> None:
    a, b, c = FakeMember("a", "one"), FakeMember("b", "one"), FakeMember("c", "one")
    other = FakeMember("d", "two")
    await attach_all(relay, a, b, c, other)
    relay.publish(a, text=True, payload=b"hello")
    assert a.frames == []
    assert other.frames == []
    assert b.frames == c.frames
    assert [(f.opcode, f.data, f.fin) for f in parse_frames(b.frames[0])] == [
        (Opcode.TEXT, b"hello", True)
    ]
    assert relay.messages_relayed == 1


async def test_messages_keep_their_order(relay: Relay) -> None:
    a, b = FakeMember("a", "one"), FakeMember("b", "one")
    await attach_all(relay, a, b)
    for index in range(5):
        relay.publish(a, text=False, payload=bytes([index]))
    relay.publish(b, text=True, payload=b"reply")
    assert [frame.data for frame in parse_frames(b"".join(b.frames))] == [
        bytes([index]) for index in range(5)
    ]
    assert [frame.data for frame in parse_frames(b"".join(a.frames))] == [b"reply"]
    assert relay.messages_relayed == 6


@pytest.mark.parametrize(
    ("text", "opcode", "first_byte"), [(True, Opcode.TEXT, 0x81), (False, Opcode.BINARY, 0x82)]
)
@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_frame_bytes(text: bool, opcode: Opcode, first_byte: int, size: int) -> None:
    payload = bytes(index % 251 for index in range(size))
    data = frame_message(RelayedMessage("a", text, payload))
    assert data[0] == first_byte  # FIN set, no reserved bits
    assert data[1] & 0x80 == 0  # server frames are not masked
    assert data.endswith(payload)
    (frame,) = parse_frames(data)
    assert (frame.opcode, frame.data, frame.fin) == (opcode, payload, True)


async def test_invalid_utf8_text_is_relayed_unchanged(relay: Relay) -> None:
    a, b = FakeMember("a", "one"), FakeMember("b", "one")
    await attach_all(relay, a, b)
    sealed_like = b"\x00\xff\xfe\xc3\x28 not utf-8"
    relay.publish(a, text=True, payload=sealed_like)
    assert b.frames == [b"\x81" + bytes([len(sealed_like)]) + sealed_like]


async def test_deliver_to_empty_or_unknown_community(relay: Relay) -> None:
    relay.fan_out("nobody", RelayedMessage("x", True, b"hi"))
    assert relay.messages_relayed == 0


async def test_message_from_another_instance_reaches_all_local_members(relay: Relay) -> None:
    a, b = FakeMember("a", "one"), FakeMember("b", "one")
    await attach_all(relay, a, b)
    relay.fan_out("one", RelayedMessage("remote", False, b"x"))
    assert len(a.frames) == len(b.frames) == 1


async def test_kick_only_that_community(relay: Relay) -> None:
    a, b, other = FakeMember("a", "one"), FakeMember("b", "one"), FakeMember("c", "two")
    await attach_all(relay, a, b, other)
    relay.kick("one")
    assert a.kicks == b.kicks == ["community deleted"]
    assert other.kicks == []
    relay.kick("unknown")


async def test_attach_detach_and_watching(relay: Relay, broker: WatchingBroker) -> None:
    a, b = FakeMember("a", "one"), FakeMember("b", "one")
    await attach_all(relay, a, b)
    assert broker.calls == [("watch", "one")]
    assert set(relay.members()) == {a, b}
    await relay.detach(a)
    await relay.detach(a)  # twice is harmless
    assert relay.members() == [b]
    assert broker.calls == [("watch", "one")]
    await relay.detach(b)
    assert relay.members() == []
    assert broker.calls == [("watch", "one"), ("unwatch", "one")]
    relay.publish(b, text=True, payload=b"after leaving")
    assert a.frames == b.frames == []
    assert relay.messages_relayed == 0


async def test_detach_of_a_stale_member_with_the_same_id(relay: Relay) -> None:
    current, stale = FakeMember("a", "one"), FakeMember("a", "one")
    await relay.attach(current)
    await relay.detach(stale)
    assert relay.members() == [current]


async def test_sender_alone_relays_to_nobody(relay: Relay) -> None:
    a = FakeMember("a", "one")
    await relay.attach(a)
    relay.publish(a, text=True, payload=b"echo?")
    assert a.frames == []
    assert relay.messages_relayed == 1


def browser_member(member_id: str, community: str) -> FakeMember:
    return FakeMember(member_id, community, binary_frames=True)


async def test_browser_members_receive_binary_frames_of_the_same_bytes(relay: Relay) -> None:
    cli, other_cli, browser = (
        FakeMember("a", "one"),
        FakeMember("b", "one"),
        browser_member("c", "one"),
    )
    await attach_all(relay, cli, other_cli, browser)
    sealed_like = b"\x00\xff\xfe\xc3\x28 not utf-8"
    relay.publish(cli, text=True, payload=sealed_like)
    assert [(f.opcode, f.data) for f in parse_frames(other_cli.frames[0])] == [
        (Opcode.TEXT, sealed_like)
    ]
    assert [(f.opcode, f.data) for f in parse_frames(browser.frames[0])] == [
        (Opcode.BINARY, sealed_like)
    ]


async def test_a_browsers_binary_frames_reach_cli_members_as_text(relay: Relay) -> None:
    cli, browser, other_browser = (
        FakeMember("a", "one"),
        browser_member("b", "one"),
        browser_member("c", "one"),
    )
    await attach_all(relay, cli, browser, other_browser)
    relay.publish(browser, text=False, payload=b"\x80sealed")
    assert [(f.opcode, f.data) for f in parse_frames(cli.frames[0])] == [
        (Opcode.TEXT, b"\x80sealed")
    ]
    assert [(f.opcode, f.data) for f in parse_frames(other_browser.frames[0])] == [
        (Opcode.BINARY, b"\x80sealed")
    ]
    assert browser.frames == []


async def test_binary_messages_from_another_instance_reach_browsers_framed_once(
    relay: Relay,
) -> None:
    browsers = [browser_member(name, "one") for name in "abc"]
    await attach_all(relay, *browsers)
    relay.fan_out("one", RelayedMessage("remote", True, b"x"))
    assert browsers[0].frames[0] is browsers[1].frames[0] is browsers[2].frames[0]
    assert parse_frames(browsers[0].frames[0])[0].opcode is Opcode.BINARY
