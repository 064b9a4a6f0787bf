"""Name negotiation: two state machines talking to each other, no channels, no timers."""

from __future__ import annotations

from collections.abc import Iterable

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


def test_a_member_rejoining_the_signaler_never_unseats_one_that_kept_its_name() -> None:
    """The older member reconnects to the signaler and negotiates again while the younger
    still holds its name: the younger ignores the backoff, the older skips the taken name and
    takes its previous one back."""
    older = NameNegotiation(["user1", "user2"], timestamp=1)
    younger = NameNegotiation(["user1", "user2"], timestamp=2)
    older.claim()
    younger.receive(names.kick("user1"))
    assert younger.claim() == "user2"
    older.restart()
    replies = [older.receive(message).replies for message in younger.greetings()]
    assert replies[0] == [names.backoff()]  # it cannot know yet that "user2" is held
    assert not younger.receive(names.backoff()).back_off
    assert "user2" not in older.candidates  # the "claimed" that followed the greeting
    assert older.claim() == "user1"
    assert younger.name == "user2"


def test_restart_prefers_the_previous_name_and_choose_picks_otherwise() -> None:
    member = NameNegotiation(["a", "b", "c"], 1, choose=lambda candidates: candidates[-1])
    assert member.claim() == "c"
    member.restart()
    assert member.claim() == "c"
    member.restart()
    member.receive(names.kick("c"))
    assert member.claim() == "b"


def test_a_kick_drops_every_clashing_candidate() -> None:
    def share_a_letter(theirs: Iterable[str], ours: str) -> bool:
        return any(set(ours) & set(name) for name in theirs)

    member = NameNegotiation(["ab", "bc", "cd", "de"], 1, conflicts=share_a_letter)
    member.receive(names.kick("b"))
    assert member.candidates == ["cd", "de"]
