"""Name negotiation: two state machines talking to each other, no channels, no timers."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from weron.signaling import names
from weron.signaling.names import AllNamesClaimedError, NameMessageError, NameNegotiation


def exchange(
    sender: NameNegotiation, receiver: NameNegotiation, view: names.PeerNames | None = None
) -> names.Reaction:
    """Deliver ``sender``'s greetings to ``receiver`` (``view``: what the receiver knows of
    the sender's channel); return the last reaction."""
    view = view if view is not None else names.PeerNames()
    reaction = names.Reaction()
    for message in sender.greetings():
        reaction = receiver.receive(names.decode(names.encode(message))[0], view)
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
    seen_by_younger = names.PeerNames()
    reaction = exchange(younger, older)
    assert reaction.replies == [names.backoff()]
    # the younger never makes the older wait
    assert exchange(older, younger, seen_by_younger).replies == []
    assert younger.receive(reaction.replies[0], seen_by_younger).back_off
    assert older.claim() == "user1"
    # A greeting sent before the claim arrived is kicked; the claim itself drops the name.
    assert older.receive(names.greeting(["user1", "user2"], 2), names.PeerNames()).replies == [
        names.kick("user1")
    ]
    younger.receive(names.claimed("user1"), seen_by_younger)  # sent to all on claiming
    younger.receive(names.kick("user1"), seen_by_younger)
    assert exchange(younger, older).replies == []  # greeting again after backing off
    assert younger.claim() == "user2"


def test_kicks_count_only_from_the_holder_and_backoffs_only_from_an_older_rival() -> None:
    """A hostile member cannot keep a newcomer from every name by kicking, or stall it with
    backoffs: it would have to hold the name, or have greeted first for it."""
    newcomer = NameNegotiation(["a", "b"], timestamp=5)
    hostile = names.PeerNames()
    newcomer.receive(names.greeting(["x"], 9), hostile)  # younger, no shared candidate
    for name in ("a", "b"):
        newcomer.receive(names.kick(name), hostile)
    assert not newcomer.receive(names.backoff(), hostile).back_off
    newcomer.receive(names.claimed("x"), hostile)
    newcomer.receive(names.kick("a"), hostile)  # not the name it claimed
    assert newcomer.candidates == ["a", "b"]
    holder = names.PeerNames()
    newcomer.receive(names.claimed("a"), holder)
    newcomer.receive(names.kick("a"), holder)
    assert newcomer.claim() == "b"


def test_claimed_names_are_announced_and_reported() -> None:
    alice = NameNegotiation(["alice"], timestamp=1)
    alice.claim()
    assert alice.greetings() == [names.greeting(["alice"], 1), names.claimed("alice")]
    bob = NameNegotiation(["bob"], timestamp=2)
    assert bob.receive(names.claimed("alice"), names.PeerNames()).peer_name == "alice"


def test_no_name_left_is_an_error() -> None:
    member = NameNegotiation(["only"], timestamp=1)
    member.receive(names.claimed("only"), names.PeerNames())
    with pytest.raises(AllNamesClaimedError, match="all available names have been claimed"):
        member.claim()


def test_custom_conflict_rule() -> None:
    """The IP VPN kicks when any address overlaps, not only on equal names."""
    member = NameNegotiation(["a"], 1, conflicts=lambda theirs, ours: ours[0] in "".join(theirs))
    member.claim()
    assert member.receive(names.greeting(["xa"], 2), names.PeerNames()).replies == [names.kick("a")]


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
        NameNegotiation(["a"], 1).receive(message, names.PeerNames())


def test_keepalives_are_understood_and_marked() -> None:
    assert names.encode(names.keepalive()) == b'{"type":"keepalive"}\n'
    reaction = NameNegotiation(["a"], 1).receive(names.keepalive(), names.PeerNames())
    assert reaction.alive and not reaction.replies


def test_choose_picks_among_the_remaining_candidates() -> None:
    member = NameNegotiation(["a", "b", "c"], 1, choose=lambda candidates: candidates[-1])
    member.receive(names.claimed("c"), names.PeerNames())
    assert member.claim() == "b"


def test_a_kick_drops_every_clashing_candidate() -> None:
    def share_a_letter(theirs: Iterable[str], ours: str) -> bool:
        return any(set(ours) & set(name) for name in theirs)

    member = NameNegotiation(["ab", "bc", "cd", "de"], 1, conflicts=share_a_letter)
    holder = names.PeerNames(claimed="b")
    member.receive(names.kick("b"), holder)
    assert member.candidates == ["cd", "de"]
