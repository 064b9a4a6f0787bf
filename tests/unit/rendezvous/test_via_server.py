"""gonet meeting through a signaler, over fake sessions: the cards of members who introduce
themselves or answer us come out, cards that are malformed or sent in another member's name
do not, and every new connection (and every new card of ours) introduces us again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tests.unit.fakes import until

from weron.rendezvous.card import Card
from weron.rendezvous.via_server import SignalerRendezvous
from weron.signaler_client.messages import Exchange, Introduction, MessageType, SignalingMessage
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.nat.paths import Candidate, Kind


class FakeSession:
    """One connection: hands out what a test ``push``es until ``drop``; records what we send."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[SignalingMessage | None] = asyncio.Queue()
        self.sent: list[SignalingMessage] = []

    async def send(self, message: SignalingMessage) -> None:
        self.sent.append(message)

    def push(self, *messages: SignalingMessage) -> None:
        for message in messages:
            self.inbox.put_nowait(message)

    def drop(self) -> None:
        self.inbox.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[SignalingMessage]:
        while (message := await self.inbox.get()) is not None:
            yield message


class FakeClient:
    """A session per connection, as many as the test made."""

    def __init__(self, *sessions: FakeSession) -> None:
        self.connections = list(sessions)

    async def sessions(self) -> AsyncIterator[FakeSession]:
        for session in self.connections:
            yield session
        await asyncio.Event().wait()  # the signaler is gone for good: retrying for ever

    async def close(self) -> None:
        pass


def card(host: str) -> Card:
    return Card(PrivateKey.generate().public, (Candidate(Kind.HOST, (host, 51820)),))


OURS = card("192.0.2.1")


def offer(sender: Card, payload: bytes, recipient: str = OURS.id) -> Exchange:
    return Exchange(MessageType.OFFER, sender.id, recipient, payload)


async def collect(rendezvous: SignalerRendezvous, count: int) -> list[Card]:
    cards: list[Card] = []
    async with asyncio.timeout(5):
        async for met in rendezvous.members():
            cards.append(met)
            if len(cards) == count:
                return cards
    return cards


async def test_members_introduced_or_offering_are_met_and_answered_with_our_card() -> None:
    session = FakeSession()
    rendezvous = SignalerRendezvous(FakeClient(session), OURS)
    bob, carol = card("192.0.2.2"), card("192.0.2.3")
    session.push(
        Introduction(OURS.id),  # our own, echoed: nobody to answer
        Introduction(carol.id),  # a newcomer: our card goes to it
        offer(bob, bob.encode()),  # a member answering our introduction
        Exchange(MessageType.ANSWER, carol.id, OURS.id, carol.encode()),
    )
    assert await collect(rendezvous, 2) == [bob, carol]
    await rendezvous.joined()
    assert session.sent == [
        Introduction(OURS.id),
        Exchange(MessageType.OFFER, OURS.id, carol.id, OURS.encode()),
        Exchange(MessageType.ANSWER, OURS.id, bob.id, OURS.encode()),  # only offers get one
    ]


async def test_malformed_cards_and_cards_in_another_members_name_are_dropped() -> None:
    session = FakeSession()
    rendezvous = SignalerRendezvous(FakeClient(session), OURS)
    bob, mallory = card("192.0.2.2"), card("198.51.100.66")
    posing = Card(bob.public_key, mallory.candidates)  # bob's key, mallory's address
    session.push(
        offer(mallory, b"not json"),
        offer(mallory, b'{"publicKey": "short", "candidates": []}'),
        offer(
            mallory, b'{"publicKey": "%s", "candidates": ["warp 1.2.3.4:5"]}' % mallory.id.encode()
        ),
        offer(mallory, posing.encode()),  # sent by mallory in bob's name
        offer(mallory, mallory.encode(), recipient=bob.id),  # not for us
        Exchange(MessageType.CANDIDATE, mallory.id, OURS.id, mallory.encode()),
        offer(bob, bob.encode()),
    )
    assert await collect(rendezvous, 1) == [bob]
    assert session.sent == [
        Introduction(OURS.id),
        Exchange(MessageType.ANSWER, OURS.id, bob.id, OURS.encode()),  # mallory got nothing
    ]


async def test_every_connection_and_every_new_card_of_ours_introduces_us_again() -> None:
    first, second = FakeSession(), FakeSession()
    rendezvous = SignalerRendezvous(FakeClient(first, second), OURS)
    met: list[Card] = []

    async def meet() -> None:
        async for member in rendezvous.members():
            met.append(member)

    meeting = asyncio.create_task(meet())
    bob, carol = card("192.0.2.2"), card("192.0.2.3")
    first.push(offer(bob, bob.encode()))
    first.drop()  # the signaler restarted: we introduce ourselves on the next connection
    await until(lambda: second.sent == [Introduction(OURS.id)])
    moved = Card(OURS.public_key, (Candidate(Kind.SRFLX, ("203.0.113.5", 40000)),))
    await rendezvous.announce(moved)  # our NAT moved us: every member is to ask again
    second.push(Introduction(carol.id), offer(bob, bob.encode()))
    await until(lambda: len(met) == 2)
    meeting.cancel()
    assert met == [bob, bob]
    assert second.sent == [
        Introduction(OURS.id),
        Introduction(OURS.id),
        Exchange(MessageType.OFFER, OURS.id, carol.id, moved.encode()),
        Exchange(MessageType.ANSWER, OURS.id, bob.id, moved.encode()),
    ]
