"""Name negotiation: two state machines talking to each other, no channels, no timers."""

from __future__ import annotations

import pytest

from weron.signaling import names
from weron.signaling.names import AllNamesClaimedError, NameMessageError, NameNegotiation


def exchange(sender: NameNegotiation, receiver: NameNegotiation) -> names.Reaction:
    """Deliver ``sender``'s greetings to ``receiver``; return the last reaction."""
    reaction = names.Reaction()
    for message in sender.greetings():
        reaction = receiver.receive(names.decode(names.encode(message))[0])
    return reaction


def test_wire_shapes_are_go_compatible() -> None:
    assert names.encode(names.greeting(["a"], 7)) == (
        b'{"type":"greeting","ids":{"a":{}},"timestamp":7}\n'
    )
    assert names.encode(names.kick("a")) == b'{"type":"kick","id":"a"}\n'
    assert names.encode(names.backoff()) == b'{"type":"backoff"}\n'
    assert names.encode(names.claimed("a")) == b'{"type":"claimed","id":"a"}\n'


def test_decode_reads_back_to_back_values() -> None:
    data = b'{"type":"greeting","ids":{},"timestamp":1}\n{"type":"claimed","id":"x"}\n'
    assert [m["type"] for m in names.decode(data)] == ["greeting", "claimed"]
    assert names.decode(b"  \n") == []


@pytest.mark.parametrize("data", [b"\xff", b"{", b"[1]", b'{"id":"x"}', b'"text"'])
def test_decode_rejects_garbage(data: bytes) -> None:
    with pytest.raises(NameMessageError):
        names.decode(data)


def test_the_older_member_makes_the_younger_back_off_then_kicks_its_name() -> None:
    older = NameNegotiation(["user1", "user2"], timestamp=1)
    younger = NameNegotiation(["user1", "user2"], timestamp=2)
    reaction = exchange(younger, older)
    assert reaction.replies == [names.backoff()]
    assert younger.receive(reaction.replies[0]).back_off
    assert exchange(older, younger).replies == []  # the younger never makes the older wait
    assert older.claim() == "user1"
    reaction = exchange(younger, older)  # the younger greets again after backing off
    assert reaction.replies == [names.kick("user1")]
    younger.receive(reaction.replies[0])
    assert younger.claim() == "user2"


def test_claimed_names_are_announced_and_reported() -> None:
    alice = NameNegotiation(["alice"], timestamp=1)
    alice.claim()
    assert alice.greetings() == [names.greeting(["alice"], 1), names.claimed("alice")]
    bob = NameNegotiation(["bob"], timestamp=2)
    assert bob.receive(names.claimed("alice")).peer_name == "alice"


def test_no_name_left_is_an_error_and_restart_restores_them() -> None:
    member = NameNegotiation(["only"], timestamp=1)
    member.receive(names.kick("only"))
    with pytest.raises(AllNamesClaimedError, match="all available names have been claimed"):
        member.claim()
    member.restart()
    assert member.claim() == "only"


def test_custom_conflict_rule() -> None:
    """The IP VPN kicks when any address overlaps, not only on equal names."""
    member = NameNegotiation(["a"], 1, conflicts=lambda theirs, ours: ours[0] in "".join(theirs))
    member.claim()
    assert member.receive(names.greeting(["xa"], 2)).replies == [names.kick("a")]


@pytest.mark.parametrize(
    "message",
    [
        {"type": "greeting"},
        {"type": "greeting", "ids": [], "timestamp": 1},
        {"type": "claimed"},
        {"type": "unknown"},
    ],
)
def test_malformed_messages_raise(message: names.NameMessage) -> None:
    with pytest.raises(NameMessageError):
        NameNegotiation(["a"], 1).receive(message)


def test_keepalives_are_understood_and_marked() -> None:
    assert names.encode(names.keepalive()) == b'{"type":"keepalive"}\n'
    reaction = NameNegotiation(["a"], 1).receive(names.keepalive())
    assert reaction.alive and not reaction.replies
