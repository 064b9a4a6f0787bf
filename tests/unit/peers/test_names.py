"""Name negotiation: two state machines talking to each other, no channels, no timers."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from weron.peers import names
from weron.peers.names import AllNamesClaimedError, NameMessageError, NameNegotiation


def exchange(
    sender: NameNegotiation, receiver: NameNegotiation, view: names.PeerNames | None = None
) -> names.Reaction:
    """Deliver ``sender``'s greetings to ``receiver`` (``view``: what the receiver knows of
    the sender's channel); return the last reaction."""
    view = view if view is not None else names.PeerNames()
    reaction = names.Reaction()
    for message in sender.greetings():
        reaction = receiver.receive(names.decode(names.encode(message))[0], view, 0.0)
    return reaction


def test_wire_shapes_are_go_compatible() -> None:
    assert names.encode(names.Greeting(("a",), 7)) == (
        b'{"type":"greeting","ids":{"a":{}},"timestamp":7}\n'
    )
    assert names.encode(names.Kick("a")) == b'{"type":"kick","id":"a"}\n'
    assert names.encode(names.Backoff()) == b'{"type":"backoff"}\n'
    assert names.encode(names.Claimed("a")) == b'{"type":"claimed","id":"a"}\n'


def test_decode_reads_back_to_back_values() -> None:
    data = b'{"type":"greeting","ids":{},"timestamp":1}\n{"type":"claimed","id":"x"}\n'
    assert names.decode(data) == [names.Greeting((), 1), names.Claimed("x")]
    assert names.decode(b"  \n") == []


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",
        b"{",
        b"[1]",
        b'{"id":"x"}',
        b'"text"',
        b'{"type":"greeting","ids":["a"],"timestamp":1}',
        b'{"type":"greeting","ids":{"a":{}}}',
        b'{"type":"claimed","id":7}',
        b'{"type":"kick"}',
    ],
)
def test_decode_rejects_garbage(data: bytes) -> None:
    with pytest.raises(NameMessageError):
        names.decode(data)


def test_unknown_types_decode_and_are_refused_by_the_negotiation() -> None:
    """A newer peer's message type reaches the negotiation, which refuses it (the named
    adapter logs it); its other messages still count."""
    (unknown, claimed) = names.decode(b'{"type":"future","x":1}{"type":"claimed","id":"a"}')
    assert unknown == names.Unknown("future")
    negotiation = NameNegotiation(["a", "b"], timestamp=1)
    with pytest.raises(NameMessageError, match="future"):
        negotiation.receive(unknown, names.PeerNames(), 0.0)
    assert negotiation.receive(claimed, names.PeerNames(), 0.0).peer_name == "a"


def test_the_older_member_makes_the_younger_back_off_then_kicks_its_name() -> None:
    older = NameNegotiation(["user1", "user2"], timestamp=1)
    younger = NameNegotiation(["user1", "user2"], timestamp=2)
    seen_by_younger = names.PeerNames()
    reaction = exchange(younger, older)
    assert reaction.replies == [names.Backoff()]
    # the younger never makes the older wait
    assert exchange(older, younger, seen_by_younger).replies == []
    assert younger.receive(reaction.replies[0], seen_by_younger, 0.0).back_off
    assert older.claim(0.0) == "user1"
    # A greeting sent before the claim arrived is kicked; the claim itself drops the name.
    assert older.receive(names.Greeting(("user1", "user2"), 2), names.PeerNames(), 0.0).replies == [
        names.Kick("user1")
    ]
    younger.receive(names.Claimed("user1"), seen_by_younger, 0.0)  # sent to all on claiming
    younger.receive(names.Kick("user1"), seen_by_younger, 0.0)
    assert exchange(younger, older).replies == []  # greeting again after backing off
    assert younger.claim(0.0) == "user2"


def test_kicks_count_only_from_the_holder_and_backoffs_only_from_an_older_rival() -> None:
    """A hostile member cannot keep a newcomer from every name by kicking, or stall it with
    backoffs: it would have to hold the name, or have greeted first for it."""
    newcomer = NameNegotiation(["a", "b"], timestamp=5)
    hostile = names.PeerNames()
    newcomer.receive(names.Greeting(("x",), 9), hostile, 0.0)  # younger, no shared candidate
    for name in ("a", "b"):
        newcomer.receive(names.Kick(name), hostile, 0.0)
    assert not newcomer.receive(names.Backoff(), hostile, 0.0).back_off
    newcomer.receive(names.Claimed("x"), hostile, 0.0)
    newcomer.receive(names.Kick("a"), hostile, 0.0)  # not the name it claimed
    assert newcomer.candidates == ["a", "b"]
    holder = names.PeerNames()
    newcomer.receive(names.Claimed("a"), holder, 0.0)
    newcomer.receive(names.Kick("a"), holder, 0.0)
    assert newcomer.claim(0.0) == "b"


def test_claimed_names_are_announced_and_reported() -> None:
    alice = NameNegotiation(["alice"], timestamp=1)
    alice.claim(0.0)
    assert alice.greetings() == [names.Greeting(("alice",), 1), names.Claimed("alice")]
    bob = NameNegotiation(["bob"], timestamp=2)
    assert bob.receive(names.Claimed("alice"), names.PeerNames(), 0.0).peer_name == "alice"


def test_no_name_left_is_an_error() -> None:
    member = NameNegotiation(["only"], timestamp=1)
    member.receive(names.Claimed("only"), names.PeerNames(), 0.0)
    with pytest.raises(AllNamesClaimedError, match="all available names have been claimed"):
        member.claim(0.0)


def test_custom_conflict_rule() -> None:
    """The IP VPN kicks when any address overlaps, not only on equal names."""
    member = NameNegotiation(["a"], 1, conflicts=lambda theirs, ours: ours[0] in "".join(theirs))
    member.claim(0.0)
    assert member.receive(names.Greeting(("xa",), 2), names.PeerNames(), 0.0).replies == [
        names.Kick("a")
    ]


def test_keepalives_are_understood_and_marked() -> None:
    assert names.encode(names.Keepalive()) == b'{"type":"keepalive"}\n'
    reaction = NameNegotiation(["a"], 1).receive(names.Keepalive(), names.PeerNames(), 0.0)
    assert reaction.alive and not reaction.replies


def test_choose_picks_among_the_remaining_candidates() -> None:
    member = NameNegotiation(["a", "b", "c"], 1, choose=lambda candidates: candidates[-1])
    member.receive(names.Claimed("c"), names.PeerNames(), 0.0)
    assert member.claim(0.0) == "b"


def test_a_kick_drops_every_clashing_candidate() -> None:
    def share_a_letter(theirs: Iterable[str], ours: str) -> bool:
        return any(set(ours) & set(name) for name in theirs)

    member = NameNegotiation(["ab", "bc", "cd", "de"], 1, conflicts=share_a_letter)
    holder = names.PeerNames(claimed="b")
    member.receive(names.Kick("b"), holder, 0.0)
    assert member.candidates == ["cd", "de"]


def claim_together(
    older: NameNegotiation, younger: NameNegotiation, now: float
) -> tuple[names.Reaction, names.Reaction]:
    """Both greeted (neither had connected in time to make the other back off), both claimed,
    then each one's greeting and claim reach the other: the reactions to the claims."""
    older_seen, younger_seen = names.PeerNames(), names.PeerNames()
    younger.receive(names.Greeting(tuple(older.candidates), older.timestamp), younger_seen, 0.0)
    older.receive(names.Greeting(tuple(younger.candidates), younger.timestamp), older_seen, 0.0)
    older.claim(0.0)
    younger.claim(0.0)
    assert older.name is not None and younger.name is not None
    to_older = older.receive(names.Claimed(younger.name), older_seen, now)
    to_younger = younger.receive(names.Claimed(older.name), younger_seen, now)
    return to_older, to_younger


def test_the_younger_of_two_simultaneous_claims_gives_the_name_up() -> None:
    older = NameNegotiation(["user1", "user2", "user3"], timestamp=1)
    younger = NameNegotiation(["user1", "user2", "user3"], timestamp=2)
    third = names.PeerNames()
    younger.receive(names.Claimed("user2"), third, 0.0)  # known to be taken before the claim
    to_older, to_younger = claim_together(older, younger, now=1.0)
    assert to_older.gave_up is None and older.name == "user1"
    assert to_younger.gave_up == "user1" and younger.name is None
    assert younger.candidates == ["user3"]  # neither the older's name nor the third's
    assert younger.greetings() == [names.Greeting(("user3",), 2)]
    assert younger.claim(2.0) == "user3"


def test_a_name_is_contested_only_just_after_the_claim() -> None:
    """A member that greets with a forged old timestamp and claims a settled member's name
    does not push it off: after ``contest`` seconds the name is held for good."""
    settled = NameNegotiation(["user1"], timestamp=5, contest=15.0)
    settled.claim(100.0)
    forger = names.PeerNames()
    settled.receive(names.Greeting(("user1",), 1), forger, 116.0)
    assert settled.receive(names.Claimed("user1"), forger, 116.0).gave_up is None
    assert settled.name == "user1"


def test_a_member_cut_off_from_every_peer_gives_its_name_to_one_settled_meanwhile() -> None:
    """Suspended or cut off, we could not hear a newcomer claim our name; back, its claim is
    settled and ours contestable again from the first message, as a newcomer's would be."""
    sleeper = NameNegotiation(["user1", "user2"], timestamp=5, contest=15.0)
    sleeper.claim(100.0)
    sleeper.cut_off(timestamp=50)
    newcomer = names.PeerNames()
    sleeper.receive(names.Greeting(("user1",), 20), newcomer, 200.0)  # started while we slept
    assert sleeper.receive(names.Claimed("user1"), newcomer, 214.0).gave_up == "user1"
    assert sleeper.claim(215.0) == "user2"
    joined_after = names.PeerNames()  # one that joins after our return cannot take it
    sleeper.receive(names.Greeting(("user2",), 60), joined_after, 216.0)
    assert sleeper.receive(names.Claimed("user2"), joined_after, 216.0).gave_up is None


def test_a_cut_off_claim_is_contested_only_just_after_the_return() -> None:
    sleeper = NameNegotiation(["user1"], timestamp=5, contest=15.0)
    sleeper.claim(100.0)
    sleeper.cut_off(timestamp=50)
    sleeper.receive(names.Keepalive(), names.PeerNames(), 200.0)  # a peer answers again
    late = names.PeerNames()
    sleeper.receive(names.Greeting(("user1",), 20), late, 216.0)
    assert sleeper.receive(names.Claimed("user1"), late, 216.0).gave_up is None
    assert sleeper.name == "user1"


def test_equal_or_missing_timestamps_never_take_a_name() -> None:
    member = NameNegotiation(["a"], timestamp=5)
    member.claim(0.0)
    assert member.receive(names.Claimed("a"), names.PeerNames(), 0.0).gave_up is None  # no greeting
    same_age = names.PeerNames()
    member.receive(names.Greeting(("a",), 5), same_age, 0.0)
    assert member.receive(names.Claimed("a"), same_age, 0.0).gave_up is None
    assert member.name == "a"


def test_a_clashing_claim_counts_like_an_equal_one() -> None:
    """For the IP VPN a rival's claim takes our name when any address overlaps."""

    def share_a_letter(theirs: Iterable[str], ours: str) -> bool:
        return any(set(ours) & set(name) for name in theirs)

    younger = NameNegotiation(["ab", "cd"], timestamp=2, conflicts=share_a_letter)
    younger.claim(0.0)
    older = names.PeerNames()
    younger.receive(names.Greeting(("bx",), 1), older, 0.0)
    assert younger.receive(names.Claimed("bx"), older, 1.0).gave_up == "ab"
    assert younger.candidates == ["cd"]


def test_a_member_echoing_every_claim_takes_no_more_than_three_names() -> None:
    member = NameNegotiation([f"user{n}" for n in range(1, 10)], timestamp=5)
    echoer = names.PeerNames()
    member.receive(names.Greeting((), 1), echoer, 0.0)
    given_up = []
    for _ in range(5):
        name = member.claim(0.0)
        reaction = member.receive(names.Claimed(name), echoer, 0.0)
        if reaction.gave_up is None:
            break
        given_up.append(reaction.gave_up)
    assert given_up == ["user1", "user2", "user3"]
    assert member.name == "user4"


def test_names_announced_as_claimed_are_remembered_up_to_a_bound() -> None:
    member = NameNegotiation(["a"], timestamp=5)
    announcer = names.PeerNames()
    for number in range(names.MAX_TAKEN + 500):
        member.receive(names.Claimed(f"name{number}"), announcer, 0.0)
    assert len(member._taken) == names.MAX_TAKEN


def test_greeting_features_are_ours_and_optional() -> None:
    """Go peers skip the field, so a greeting without features is the original's bytes."""
    greeting = names.Greeting(("a",), 7, frozenset({"vnet-hdr"}))
    assert names.encode(greeting) == (
        b'{"type":"greeting","ids":{"a":{}},"timestamp":7,"features":["vnet-hdr"]}\n'
    )
    assert names.decode(names.encode(greeting)) == [greeting]
    odd = b'{"type":"greeting","ids":{},"timestamp":1,"features":["x",3,"y"]}'
    assert names.decode(odd) == [names.Greeting((), 1, frozenset({"x", "y"}))]
    not_a_list = b'{"type":"greeting","ids":{},"timestamp":1,"features":"vnet-hdr"}'
    assert names.decode(not_a_list) == [names.Greeting((), 1)]
    negotiation = names.NameNegotiation(["a"], 1, features=frozenset({"vnet-hdr"}))
    view = names.PeerNames()
    names.NameNegotiation(["b"], 2).receive(negotiation.greetings()[0], view, 0.0)
    assert view.features == {"vnet-hdr"}
