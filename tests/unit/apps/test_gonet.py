"""gonet's chat without WireGuard or a rendezvous server (``GonetChat`` over fake tunnels and a
fake rendezvous, a screen on strings, a clock the test moves): who is in the room and under
which name, joins and leaves, which member gets which line and what is reported, cards that
are no member or carry another member's key, members and candidates that come back."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest
from tests.unit.fakes import FakeDht, key_preferring, until

from weron.apps.console import Screen
from weron.apps.delivery import FIRST_RETRY
from weron.apps.gonet import (
    MAX_SILENT_TUNNELS,
    ChatDatagramHandler,
    GonetChat,
    GonetConfig,
    MemberRouteHandler,
    WireGuardTunnels,
    host_endpoints,
)
from weron.apps.roster import (
    Ack,
    Bye,
    ChatMessage,
    Hello,
    Line,
    Posted,
    Version,
    decode_chat,
    encode_chat,
    tag,
)
from weron.rendezvous import Rendezvous, RendezvousError, slots
from weron.rendezvous.card import Card
from weron.rendezvous.dht import DhtRendezvous, RoomKeys, seal_record
from weron.rendezvous.room import Room as RoomName
from weron.rendezvous.room import RoomSecrets, place_of
from weron.wireguard.crypto import PrivateKey, tai64n
from weron.wireguard.nat.paths import Candidate, Kind, Route
from weron.wireguard.nat.traversal import CandidatesHandler

TIMEOUT = 10.0
OURS = (Candidate(Kind.SRFLX, ("203.0.113.1", 40000)),)  # alice's, in the Room tests


def nothing(*_event: object) -> None:
    """Until the chat sets its handlers."""


class FakeTunnels:
    """Tunnels without WireGuard: records the cards added (a tunnel open per key), the keys
    removed and the chat messages sent; routes are what the test puts in ``routes``."""

    def __init__(self) -> None:
        self.on_datagram: ChatDatagramHandler = nothing
        self.on_route: MemberRouteHandler = nothing
        self.on_candidates: CandidatesHandler = nothing
        self.open: dict[bytes, Card] = {}
        self.removed: list[bytes] = []
        self.sent: list[tuple[bytes, ChatMessage]] = []
        self.routes: dict[bytes, Route] = {}

    def add(self, card: Card) -> None:
        self.open[card.public_key] = card

    def remove(self, public_key: bytes) -> None:
        self.open.pop(public_key, None)
        self.removed.append(public_key)

    def send(self, public_key: bytes, data: bytes) -> None:
        assert public_key in self.open, "sent through a tunnel that is not open"
        self.sent.append((public_key, decode_chat(data)))

    def route(self, public_key: bytes) -> Route | None:
        return self.routes.get(public_key)

    def to(self, public_key: bytes) -> list[ChatMessage]:
        """What was sent to one member, in order."""
        return [message for key, message in self.sent if key == public_key]


class FakeRendezvous:
    """Hands out the cards a test puts in ``cards`` (None: no more, its members end); lets
    us in once ``let_in`` is set (or raises ``failure`` then); records the cards we announce,
    each once ``announcing`` is set (while it is not, the announcement waits in
    ``pending``)."""

    def __init__(self) -> None:
        self.cards: asyncio.Queue[Card | None] = asyncio.Queue()
        self.let_in = asyncio.Event()
        self.failure: Exception | None = None
        self.announced: list[Card] = []
        self.announcing = asyncio.Event()
        self.announcing.set()
        self.pending: list[Card] = []
        self.interrupted: list[Card] = []

    async def members(self) -> AsyncIterator[Card]:
        while (card := await self.cards.get()) is not None:
            yield card

    async def joined(self) -> None:
        await self.let_in.wait()
        if self.failure is not None:
            raise self.failure

    async def announce(self, card: Card) -> None:
        self.pending.append(card)
        try:
            await self.announcing.wait()
        except asyncio.CancelledError:
            self.interrupted.append(card)
            raise
        finally:
            self.pending.remove(card)
        self.announced.append(card)

    async def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def card(key: bytes, *hosts: str) -> Card:
    return Card(key, tuple(Candidate(Kind.HOST, (host, 51820)) for host in hosts))


def unsigned(cards: list[Card]) -> list[Card]:
    """The cards without their proofs, each checked: signed by its key, for the test room."""
    assert all(c.proven(place_of(RoomName("a", "b", "c"))) for c in cards), cards
    return [Card(c.public_key, c.candidates) for c in cards]


class Room:
    """Alice's chat over fake tunnels; ``bob`` and ``carol`` are members' public keys."""

    def __init__(self, timeout: float = TIMEOUT, clock: Callable[[], float] | None = None) -> None:
        self.key = PrivateKey.generate()
        self.config = GonetConfig("ws://unused", RoomName("a", "b", "c"), "alice", self.key)
        self.config.timeout = timeout
        self.tunnels = FakeTunnels()
        self.rendezvous = FakeRendezvous()
        self.out = io.StringIO()
        self.clock = Clock()
        self.chat = GonetChat(
            self.config,
            self.tunnels,
            self.rendezvous,
            Screen(self.out, io.StringIO()),
            clock or self.clock,
            candidates=OURS,
        )
        self.bob = PrivateKey.generate().public
        self.carol = PrivateKey.generate().public

    def shown(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def arrive(self, key: bytes, *messages: ChatMessage) -> None:
        """Datagrams through ``key``'s tunnel, as the tunnels report them."""
        for message in messages:
            self.tunnels.on_datagram(key, encode_chat(message))

    def join(self, key: bytes, name: str, *, version: int = 2) -> None:
        """``key``'s card comes, then its hello (and version, unless it speaks version 1)."""
        self.chat.meet(card(key, "192.0.2.1"))
        self.arrive(key, Hello(name), *([Version(version)] if version > 1 else []))


def test_a_member_is_in_the_room_once_its_hello_comes_through_its_tunnel() -> None:
    room = Room()
    room.chat.meet(card(room.bob, "192.0.2.1"))
    assert set(room.tunnels.open) == {room.bob}
    assert room.tunnels.to(room.bob) == [Hello("alice"), Version(2)]  # our hello goes first
    assert room.bob not in room.chat.roster and room.shown() == []  # a card alone is nobody

    room.tunnels.routes[room.bob] = Route.DIRECT
    room.arrive(room.bob, Hello("bob"))
    assert room.bob in room.chat.roster
    assert room.shown() == ["+bob", "~bob direct"]
    room.arrive(room.bob, Hello("bob"))  # a heartbeat: no second join line
    assert room.shown() == ["+bob", "~bob direct"]


def test_routes_are_shown_for_members_in_the_room_only() -> None:
    room = Room()
    room.chat.meet(card(room.bob, "192.0.2.1"))
    room.tunnels.on_route(room.bob, Route.DIRECT)  # punched before its hello: not shown
    room.arrive(room.bob, Hello("bob"))
    room.tunnels.on_route(room.bob, Route.RELAY)
    room.tunnels.on_route(room.bob, None)  # lost: said by the next route, not by a line
    assert room.shown() == ["+bob", "~bob relay"]


def test_a_card_without_candidates_or_with_our_own_key_opens_no_tunnel() -> None:
    room = Room()
    room.chat.meet(Card(room.bob, ()))
    room.chat.meet(card(room.key.public, "192.0.2.66"))  # our key: someone posing as us
    assert room.tunnels.open == {} and room.tunnels.sent == []
    assert room.chat.met == set()


def test_a_card_its_key_did_not_sign_for_this_room_opens_no_tunnel() -> None:
    room = Room()
    bob, mallory = PrivateKey.generate(), PrivateKey.generate()
    place = place_of(room.config.room)
    room.chat.meet(card(bob.public, "203.0.113.66").signed(mallory, place, 1))
    elsewhere = place_of(RoomName("a", "b2", "c"))  # bob's own card, from another room
    room.chat.meet(card(bob.public, "203.0.113.67").signed(bob, elsewhere, 1))
    assert room.tunnels.open == {} and room.tunnels.sent == [] and room.chat.met == set()
    genuine = card(bob.public, "192.0.2.1").signed(bob, place, 1)
    room.chat.meet(genuine)
    assert room.tunnels.open == {bob.public: genuine} and room.chat.met == {bob.public}


def test_a_card_in_another_members_name_only_gives_its_tunnel_new_candidates() -> None:
    """The tunnel is the member's key: a card with bob's key and someone else's addresses
    adds no member and no name; whatever answers there must still prove bob's key."""
    room = Room()
    room.join(room.bob, "bob")
    room.chat.meet(card(room.bob, "198.51.100.66"))
    assert room.tunnels.open == {room.bob: card(room.bob, "198.51.100.66")}
    assert room.chat.met == {room.bob}
    room.arrive(room.bob, Line("still me"))
    assert room.shown() == ["+bob", "bob: still me"]


def test_cards_whose_members_never_say_hello_cannot_pile_up_tunnels() -> None:
    """A hostile member hands out cards with made-up keys: past MAX_SILENT_TUNNELS the
    oldest silent one is closed; members who said hello (and cards met again) are kept."""
    room = Room()
    room.join(room.bob, "bob")
    made_up = [PrivateKey.generate().public for _ in range(MAX_SILENT_TUNNELS + 10)]
    room.chat.meet(card(room.carol, "192.0.2.3"))  # honest, its handshake under way
    for key in made_up:
        room.chat.meet(card(key, "203.0.113.9"))
        room.chat.meet(card(room.carol, "192.0.2.3"))  # carol's card again: newest again
    assert len(room.tunnels.open) == 1 + MAX_SILENT_TUNNELS
    assert room.bob in room.tunnels.open and room.carol in room.tunnels.open
    assert set(room.tunnels.removed) == set(made_up[: len(made_up) - MAX_SILENT_TUNNELS + 1])
    assert room.chat.met == set(room.tunnels.open)
    room.arrive(room.carol, Hello("carol"))  # carol is in the room, silent no more
    assert room.shown() == ["+bob", "+carol"]


def test_datagrams_from_a_member_that_did_not_say_hello_or_that_are_no_chat_are_dropped() -> None:
    room = Room()
    room.chat.meet(card(room.bob, "192.0.2.1"))
    room.arrive(room.bob, Line("who am I?"), Posted("0" * 16, 1, "numbered"), Version(2))
    room.tunnels.on_datagram(room.bob, b"HELLO not a name!\n")
    room.tunnels.on_datagram(room.bob, b"MSG \x1b[2J\n")
    assert room.shown() == []
    assert room.tunnels.to(room.bob) == [Hello("alice"), Version(2)]  # no ack either


async def test_members_sharing_a_name_are_told_apart_by_tags_ours_included() -> None:
    room = Room()
    room.join(room.bob, "bob")
    room.join(room.carol, "bob")  # carol takes bob's name: both shown with their tags
    room.arrive(room.bob, Line("I am bob"))
    room.arrive(room.carol, Line("no, I am"))
    bob, carol = f"bob#{tag(room.bob)}", f"bob#{tag(room.carol)}"
    assert room.shown() == [
        "+bob",
        f"+{carol}",
        f"*bob is now {bob}",  # who spoke as bob so far is told apart from now on
        f"{bob}: I am bob",
        f"{carol}: no, I am",
    ]

    room.out.truncate(0), room.out.seek(0)
    room.rendezvous.let_in.set()
    await room.chat.join()
    dave = PrivateKey.generate().public
    room.join(dave, "alice")  # our name: ours is shown with our tag too, until dave leaves
    room.arrive(dave, Bye())
    ours, theirs = f"alice#{tag(room.key.public)}", f"alice#{tag(dave)}"
    assert room.shown() == ["alice!", f"+{theirs}", f"{ours}!", f"-{theirs}", "alice!"]


def test_a_member_that_says_another_name_is_announced_under_both() -> None:
    """A rename mid-session (a member restarted with its --identity and another --name, or
    one that changes its hello): said, never silent, and names shared or freed by it too."""
    room = Room()
    room.join(room.bob, "bob")
    room.join(room.carol, "carol")
    room.arrive(room.bob, Hello("robert"))
    room.arrive(room.bob, Hello("robert"))  # its next heartbeat: nothing new
    room.arrive(room.bob, Line("call me robert"))
    room.arrive(room.bob, Hello("carol"))  # carol's name: both are told apart
    bob, carol = f"carol#{tag(room.bob)}", f"carol#{tag(room.carol)}"
    room.arrive(room.bob, Bye())  # carol's name is carol's alone again
    assert room.shown() == [
        "+bob",
        "+carol",
        "*bob is now robert",
        "robert: call me robert",
        f"*robert is now {bob}",
        f"*carol is now {carol}",
        f"-{bob}",
        f"*{carol} is now carol",
    ]


async def test_a_member_taking_our_name_shows_ours_with_its_tag() -> None:
    room = Room()
    room.rendezvous.let_in.set()
    await room.chat.join()
    room.join(room.bob, "bob")
    room.arrive(room.bob, Hello("alice"))
    ours, theirs = f"alice#{tag(room.key.public)}", f"alice#{tag(room.bob)}"
    assert room.shown() == ["alice!", "+bob", f"*bob is now {theirs}", f"{ours}!"]


def test_a_line_goes_to_every_member_met_numbered_to_those_that_acknowledge() -> None:
    room = Room()
    room.join(room.bob, "bob")  # version 2: acknowledges
    room.join(room.carol, "carol", version=1)  # an older member: plain lines
    room.tunnels.sent.clear()
    room.chat.say("hello all")
    assert dict(room.tunnels.sent) == {
        room.bob: Posted(room.chat.delivery.epoch, 1, "hello all"),
        room.carol: Line("hello all"),
    }
    assert room.chat.delivery.waiting == 1
    room.arrive(room.bob, Ack(room.chat.delivery.epoch, 1))
    assert room.chat.delivery.waiting == 0


def test_a_line_not_acknowledged_is_sent_again_then_reported() -> None:
    room = Room()
    room.join(room.bob, "bob")
    room.join(room.carol, "carol")
    room.tunnels.sent.clear()
    room.chat.say("anyone?")
    epoch = room.chat.delivery.epoch
    room.arrive(room.bob, Ack(epoch, 1))
    room.clock.now += FIRST_RETRY
    room.chat.send_due()
    assert room.tunnels.to(room.carol) == [Posted(epoch, 1, "anyone?")] * 2  # carol's again
    assert room.tunnels.to(room.bob) == [Posted(epoch, 1, "anyone?")]
    room.clock.now += TIMEOUT
    room.arrive(room.carol, Hello("carol"))  # still here, but the line did not reach it
    room.chat.send_due()
    assert room.shown()[-1] == "!not delivered to carol: anyone?"
    assert room.chat.delivery.waiting == 0


def test_a_line_that_comes_twice_is_shown_once_and_acknowledged_twice() -> None:
    room = Room()
    room.join(room.bob, "bob")
    room.tunnels.sent.clear()
    copy = Posted("ab" * 8, 7, "hi")
    room.arrive(room.bob, copy, copy)
    assert room.shown() == ["+bob", "bob: hi"]
    assert room.tunnels.to(room.bob) == [Ack("ab" * 8, 7)] * 2


def test_a_line_that_cannot_be_sent_is_said_and_goes_nowhere() -> None:
    room = Room()
    room.join(room.bob, "bob")
    room.tunnels.sent.clear()
    room.chat.say("")
    room.chat.say("caf\u00e9")
    room.chat.say("x" * 1001)
    assert room.tunnels.sent == []
    assert room.shown()[1:] == ["!not sent: only printable ASCII, at most 1000 characters"] * 2
    for number in range(256):
        room.chat.say(f"line {number}")
    room.chat.say("one too many")
    assert room.shown()[-1] == "!not sent: 256 lines still wait for acks"
    assert Posted(room.chat.delivery.epoch, 257, "one too many") not in room.tunnels.to(room.bob)


def test_a_member_saying_bye_leaves_with_the_lines_it_did_not_acknowledge() -> None:
    room = Room()
    room.join(room.bob, "bob")
    room.join(room.carol, "carol")
    room.chat.say("bye bob")
    room.arrive(room.carol, Ack(room.chat.delivery.epoch, 1))
    room.arrive(room.bob, Bye())
    assert room.shown()[-2:] == ["-bob", "!not delivered to bob: bye bob"]
    assert room.tunnels.removed == [room.bob] and room.chat.met == {room.carol}
    room.arrive(room.bob, Bye())  # once only
    room.chat.leave()
    assert room.tunnels.to(room.carol)[-1] == Bye()
    assert room.shown()[-2:] == ["-bob", "!not delivered to bob: bye bob"]


def test_a_silent_member_leaves_after_the_timeout_others_get_our_heartbeat() -> None:
    room = Room()
    room.join(room.bob, "bob")
    room.join(room.carol, "carol")
    room.clock.now += TIMEOUT - 1
    room.arrive(room.carol, Line("still here"))
    room.tunnels.sent.clear()
    room.clock.now += 1
    room.chat.heartbeat()
    assert room.shown()[-1] == "-bob"
    assert room.tunnels.removed == [room.bob]
    assert room.tunnels.to(room.carol) == [Hello("alice"), Version(2)]


def test_a_members_hello_after_its_new_card_is_answered_once() -> None:
    """A new card for a member in the room (it moved, or restarted): our hello on meeting it
    may have gone through a session the member no longer holds, so its next hello gets ours
    in answer; the hellos after that do not (no hello ping-pong)."""
    room = Room()
    room.join(room.bob, "bob")
    room.arrive(room.bob, Hello("bob"))  # a heartbeat: no answer
    room.tunnels.sent.clear()
    room.chat.meet(card(room.bob, "192.0.2.2"))
    assert room.tunnels.to(room.bob) == [Hello("alice"), Version(2)]
    room.arrive(room.bob, Hello("bob"), Version(2), Hello("bob"))
    assert room.tunnels.to(room.bob) == [Hello("alice"), Version(2)] * 2
    assert room.shown() == ["+bob"]


def test_a_member_that_left_and_comes_back_is_met_and_announced_again() -> None:
    room = Room()
    room.join(room.bob, "bob")
    room.arrive(room.bob, Bye())
    room.arrive(room.bob, Hello("bob"))  # through no tunnel of ours any more: in tests only
    room.tunnels.sent.clear()
    room.chat.meet(card(room.bob, "192.0.2.2"))  # the rendezvous hands its card again
    assert room.tunnels.open == {room.bob: card(room.bob, "192.0.2.2")}
    assert room.tunnels.to(room.bob) == [Hello("alice"), Version(2)]
    room.arrive(room.bob, Bye(), Hello("bob"))
    assert room.shown() == ["+bob", "-bob", "+bob", "-bob", "+bob"]


async def test_the_chat_meets_the_rendezvous_cards_says_the_lines_and_waits_for_acks() -> None:
    """The whole conversation on the event loop's clock: no name before the rendezvous let
    us in, the cards it brings met, our new candidates announced through it, the end of
    input waits for the acks, then our goodbye."""
    loop = asyncio.get_running_loop()
    room = Room(timeout=1.0, clock=loop.time)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    conversation = asyncio.create_task(room.chat.converse(lines))
    room.rendezvous.cards.put_nowait(card(room.bob, "192.0.2.1"))
    await until(lambda: room.bob in room.tunnels.open)
    room.arrive(room.bob, Hello("bob"), Version(2))
    assert room.shown() == ["+bob"]  # not let in yet: no name of ours
    room.rendezvous.let_in.set()
    await until(lambda: room.shown() == ["+bob", "alice!"])

    candidates = (Candidate(Kind.SRFLX, ("203.0.113.5", 40000)),)
    room.tunnels.on_candidates(candidates)
    await until(lambda: unsigned(room.rendezvous.announced) == [Card(room.key.public, candidates)])

    lines.put_nowait("hi bob")
    lines.put_nowait(None)
    await until(lambda: Posted(room.chat.delivery.epoch, 1, "hi bob") in room.tunnels.to(room.bob))
    await asyncio.sleep(FIRST_RETRY * 1.5)  # unacknowledged: sent again, and we stay
    assert room.tunnels.to(room.bob).count(Posted(room.chat.delivery.epoch, 1, "hi bob")) == 2
    assert not conversation.done()
    room.arrive(room.bob, Ack(room.chat.delivery.epoch, 1))
    await asyncio.wait_for(conversation, 5)
    assert room.tunnels.to(room.bob)[-1] == Bye()
    assert room.shown() == ["+bob", "alice!"]


async def test_a_tunnel_silent_for_the_timeout_gets_our_card_out_again_less_and_less_often() -> (
    None
):
    """Bob's card came but he never said hello: he may have timed us out while refusing our
    handshakes (we restarted with our clock behind), and the rendezvous handed him our card
    once. After twice the timeout our card goes out again, then after twice as long, and so
    on while a tunnel stays silent; once he said hello, no more."""
    room = Room()
    room.rendezvous.let_in.set()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    conversation = asyncio.create_task(room.chat.converse(lines))

    async def heartbeat_after(seconds: float) -> list[Card]:
        room.clock.now += seconds
        room.chat.heartbeat()
        for _ in range(10):  # the announcing loop takes the card
            await asyncio.sleep(0)
        return unsigned(room.rendezvous.announced)

    ours = Card(room.key.public, OURS)
    room.chat.meet(card(room.bob, "192.0.2.1"))
    assert await heartbeat_after(2 * TIMEOUT - 1) == []
    assert await heartbeat_after(1) == [ours]
    assert await heartbeat_after(4 * TIMEOUT - 1) == [ours]
    assert await heartbeat_after(1) == [ours] * 2
    assert await heartbeat_after(8 * TIMEOUT - 1) == [ours] * 2
    assert await heartbeat_after(1) == [ours] * 3
    room.arrive(room.bob, Hello("bob"))
    assert await heartbeat_after(32 * TIMEOUT) == [ours] * 3
    lines.put_nowait(None)
    await asyncio.wait_for(conversation, 5)


async def test_the_end_of_input_waits_until_an_unacknowledged_line_is_reported() -> None:
    loop = asyncio.get_running_loop()
    room = Room(timeout=0.3, clock=loop.time)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    room.join(room.bob, "bob")
    conversation = asyncio.create_task(room.chat.converse(lines))
    lines.put_nowait("lost")
    lines.put_nowait(None)
    await asyncio.wait_for(conversation, 5)
    assert "!not delivered to bob: lost" in room.shown()


class Member:
    """A chat over real tunnels on a loopback socket, met through a fake rendezvous (or the
    one ``meeting`` makes of our card)."""

    def __init__(self, name: str, psk: bytes, key: PrivateKey | None = None) -> None:
        self.key = key or PrivateKey.generate()
        config = GonetConfig("ws://unused", RoomName("a", "b", "c"), name, self.key)
        self.tunnels = WireGuardTunnels(config, psk)
        self.out = io.StringIO()
        self.card = Card(self.key.public, ())
        self.chat: GonetChat | None = None
        self._screen = Screen(self.out, io.StringIO())
        self._config = config

    async def start(self, meeting: Callable[[Card], Rendezvous] | None = None) -> GonetChat:
        bound = await self.tunnels.open("127.0.0.1", 0)
        self.card = Card(self.key.public, await self.tunnels.start([bound]))
        loop = asyncio.get_running_loop()
        rendezvous = FakeRendezvous() if meeting is None else meeting(self.card)
        self.chat = GonetChat(
            self._config,
            self.tunnels,
            rendezvous,
            self._screen,
            loop.time,
            candidates=self.card.candidates,
        )
        return self.chat

    def shown(self) -> list[str]:
        return self.out.getvalue().splitlines()


async def test_chats_over_real_tunnels_meet_and_talk_and_another_psk_is_never_shown() -> None:
    """The real tunnels under the chat: a WireGuard handshake per card met, chat datagrams on
    the chat port only, and a member under another pre-shared key never in the room."""
    psk = os.urandom(32)
    alice, bob, mallory = (
        Member("alice", psk),
        Member("bob", psk),
        Member("mallory", os.urandom(32)),
    )
    try:
        chats = {member: await member.start() for member in (alice, bob, mallory)}
        for one, other in ((alice, bob), (bob, alice), (alice, mallory), (mallory, alice)):
            chats[one].meet(other.card)
        await until(lambda: "+bob" in alice.shown() and "+alice" in bob.shown())
        chats[alice].say("hi bob")
        await until(lambda: "alice: hi bob" in bob.shown())
        peer = bob.tunnels.overlay.device.peer(alice.key.public)
        assert peer is not None
        bob.tunnels.overlay.sendto(b"MSG another port\n", peer, 4576)
        bob.tunnels.send(alice.key.public, b"MSG the chat port\n")
        await until(lambda: "bob: the chat port" in alice.shown())
        await until(lambda: chats[alice].delivery.waiting == 0)  # bob's ack came back
        assert not any("another port" in line for line in alice.shown())
        assert not any("mallory" in line for line in alice.shown())
        assert mallory.shown() == []
    finally:
        for member in (alice, bob, mallory):
            await member.tunnels.close()


async def test_a_member_restarted_with_its_key_is_greeted_through_its_new_session() -> None:
    """Bob is killed and comes back with his key on another socket. Alice still holds his
    old session: the hello she sends on meeting his new card goes through it, to nobody. Her
    answer to the hello he then sends through his new session is what lets him see her (else
    only her next heartbeat, up to a third of the timeout later, does)."""
    psk = os.urandom(32)
    alice, bob = Member("alice", psk), Member("bob", psk)
    members = [alice, bob]
    try:
        chats = {member: await member.start() for member in members}
        chats[alice].meet(bob.card)
        chats[bob].meet(alice.card)
        await until(lambda: "+bob" in alice.shown() and "+alice" in bob.shown())
        await bob.tunnels.close()  # killed: no goodbye
        killed = tai64n()  # his new handshake's timestamp must be newer than his last one
        await until(lambda: tai64n() > killed)

        again = Member("bob", psk, bob.key)
        members.append(again)
        chat = await again.start()
        chats[alice].meet(again.card)  # the signaler hands each the other's card
        chat.meet(alice.card)
        await until(lambda: "+alice" in again.shown())
        chat.say("back")
        await until(lambda: "bob: back" in alice.shown())
        assert alice.shown().count("+bob") == 1  # the same member, back: no second join
    finally:
        for member in members:
            await member.tunnels.close()


async def test_members_meet_through_dht_records_forged_around_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A member with the room key wrote cards with alice's and bob's keys and addresses of its
    own (sockets held here) in the slots on both sides of theirs: read in slot order, each
    member's cards come forged, genuine, forged. Real tunnels, the DHT rendezvous over a
    dict: every card is tried, so they meet (a card used to replace the one before it, and
    both punched only the forged addresses, for ever)."""
    monkeypatch.setattr(slots, "POLL_MEETING", 0.1)
    secrets = RoomSecrets("c", "p", "s", os.urandom(32), os.urandom(32), os.urandom(32))
    keys = RoomKeys.derive(secrets)
    dht = FakeDht()
    alice = Member("alice", secrets.psk, key_preferring(2))
    bob = Member("bob", secrets.psk, key_preferring(5))
    forged: list[socket.socket] = []
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    conversations: list[asyncio.Task[None]] = []
    try:
        for member, own in ((alice, 2), (bob, 5)):
            for slot in (own - 1, own + 1):
                forged.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                forged[-1].bind(("127.0.0.1", 0))
                card = Card(member.key.public, (Candidate(Kind.HOST, forged[-1].getsockname()),))
                dht.values[keys.salts[slot]] = seal_record(keys, slot, card, time.time())

        def meeting(card: Card) -> DhtRendezvous:
            rendezvous = DhtRendezvous(secrets, card)
            rendezvous._dht = dht  # type: ignore[assignment]  # no libtorrent session
            return rendezvous

        for member in (alice, bob):
            conversations.append(asyncio.create_task((await member.start(meeting)).converse(lines)))
        await until(lambda: "+bob" in alice.shown() and "+alice" in bob.shown())
    finally:
        for task in conversations:
            task.cancel()
        await asyncio.gather(*conversations, return_exceptions=True)
        for member in (alice, bob):
            await member.tunnels.close()
        for sock in forged:
            sock.close()


def test_host_candidates_are_the_bound_address_or_ours_toward_the_meeting_hosts() -> None:
    assert host_endpoints(("192.0.2.7", 4000), ["127.0.0.1"]) == [("192.0.2.7", 4000)]
    # A wildcard socket: our address toward each host, once (routing is asked, nothing sent).
    assert host_endpoints(("0.0.0.0", 4000), ["127.0.0.1", "127.0.0.1"]) == [("127.0.0.1", 4000)]
    assert host_endpoints(("0.0.0.0", 4000), []) == [("127.0.0.1", 4000)]  # nothing better


async def test_a_rendezvous_that_cannot_let_us_in_ends_the_chat_saying_why() -> None:
    room = Room()
    room.rendezvous.failure = OSError("no DHT node answers")
    room.rendezvous.let_in.set()
    lines: asyncio.Queue[str | None] = asyncio.Queue()  # input still open: no end of input
    before = asyncio.all_tasks()
    with pytest.raises(RendezvousError, match=r"^cannot join the room: no DHT node answers$"):
        await asyncio.wait_for(room.chat.converse(lines), 5)
    assert "alice!" not in room.shown()  # no name of ours: we never joined
    assert asyncio.all_tasks() == before


async def test_a_rendezvous_whose_members_end_ends_the_chat_saying_so() -> None:
    """No member can meet us any more: the chat ends with a :class:`RendezvousError` (said
    to the user without a traceback), not a bare CancelledError; leaving is announced."""
    room = Room()
    room.rendezvous.let_in.set()
    room.rendezvous.cards.put_nowait(card(room.bob, "192.0.2.1"))
    room.rendezvous.cards.put_nowait(None)
    lines: asyncio.Queue[str | None] = asyncio.Queue()  # input still open: no end of input
    before = asyncio.all_tasks()
    with pytest.raises(RendezvousError, match=r"^the rendezvous ended: "):
        await asyncio.wait_for(room.chat.converse(lines), 5)
    assert room.tunnels.to(room.bob)[-1] == Bye()
    assert asyncio.all_tasks() == before


async def test_announcements_go_out_one_at_a_time_newest_last_and_end_with_the_chat() -> None:
    """Our candidates change twice while an announcement is under way: the newest card is
    announced next (the one between is outdated already), never an older one after it; at
    the end the announcement under way is ended, no task is left behind."""
    room = Room(timeout=1.0, clock=asyncio.get_running_loop().time)
    room.rendezvous.announcing.clear()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    before = asyncio.all_tasks()
    conversation = asyncio.create_task(room.chat.converse(lines))
    first, second, third = (
        (Candidate(Kind.SRFLX, ("203.0.113.5", port)),) for port in (40000, 40001, 40002)
    )
    ours = room.key.public
    room.tunnels.on_candidates(first)
    await until(lambda: unsigned(room.rendezvous.pending) == [Card(ours, first)])
    room.tunnels.on_candidates(second)
    room.tunnels.on_candidates(third)
    await asyncio.sleep(0.05)
    assert unsigned(room.rendezvous.pending) == [Card(ours, first)]  # one at a time
    room.rendezvous.announcing.set()
    await until(
        lambda: unsigned(room.rendezvous.announced) == [Card(ours, first), Card(ours, third)]
    )

    room.rendezvous.announcing.clear()
    room.tunnels.on_candidates(second)
    await until(lambda: unsigned(room.rendezvous.pending) == [Card(ours, second)])
    lines.put_nowait(None)
    await asyncio.wait_for(conversation, 5)
    assert unsigned(room.rendezvous.interrupted) == [Card(ours, second)]
    assert asyncio.all_tasks() == before  # no "Task was destroyed but it is pending"
    room.tunnels.on_candidates(first)  # after the chat: nothing starts
    await asyncio.sleep(0.05)
    assert asyncio.all_tasks() == before and unsigned(room.rendezvous.pending) == []
