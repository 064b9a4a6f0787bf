"""The pure NAT cores: RFC 5780 verdicts, candidates, and the path finder's schedule."""

from __future__ import annotations

import itertools

import pytest

from weron.net.endpoints import Relayed
from weron.wireguard.nat.behavior import Behavior, NatReport, filtering, mapping
from weron.wireguard.nat.paths import (
    BACKGROUND_INTERVAL,
    DEAD_AFTER,
    DIRECT_BOUND,
    MAX_CARDS,
    PUNCH_INTERVAL,
    SLOW_AFTER,
    SLOW_PUNCH_INTERVAL,
    TRIAL,
    Candidate,
    Kind,
    PeerPaths,
    Route,
    Taken,
)

NEVER = -float("inf")
HOST = Candidate(Kind.HOST, ("10.0.1.2", 5000))
SRFLX = Candidate(Kind.SRFLX, ("198.51.100.2", 5000))
RELAY = Candidate(Kind.RELAY, ("198.51.100.1", 49152))


def test_mapping_and_filtering_follow_rfc_5780() -> None:
    a, b, c = ("198.51.100.2", 1), ("198.51.100.2", 2), ("198.51.100.2", 3)
    assert mapping(a, a, None) is Behavior.ENDPOINT_INDEPENDENT
    assert mapping(a, b, b) is Behavior.ADDRESS_DEPENDENT
    assert mapping(a, b, c) is Behavior.ADDRESS_AND_PORT_DEPENDENT
    assert mapping(a, None, None) is Behavior.UNKNOWN
    assert mapping(a, b, None) is Behavior.UNKNOWN
    assert filtering(True, True) is Behavior.ENDPOINT_INDEPENDENT
    assert filtering(False, True) is Behavior.ADDRESS_DEPENDENT
    assert filtering(False, False) is Behavior.ADDRESS_AND_PORT_DEPENDENT


def test_reports_say_what_the_nat_means_for_direct_connections() -> None:
    local, public = ("10.0.1.2", 5000), ("198.51.100.2", 5000)
    eim = NatReport(
        local, public, Behavior.ENDPOINT_INDEPENDENT, Behavior.ADDRESS_AND_PORT_DEPENDENT
    )
    text = "\n".join(eim.lines())
    assert "behind a NAT: yes" in text and "work with most peers" in text
    symmetric = NatReport(local, public, Behavior.ADDRESS_AND_PORT_DEPENDENT, Behavior.UNKNOWN)
    assert "relay (gonet --turn) is needed" in symmetric.verdict()
    open_host = NatReport(
        local, local, Behavior.ENDPOINT_INDEPENDENT, Behavior.ENDPOINT_INDEPENDENT
    )
    assert "no NAT" in open_host.verdict() and not open_host.behind_nat
    unknown = NatReport(local, public, Behavior.UNKNOWN, Behavior.UNKNOWN)
    assert "two addresses" in unknown.verdict()


def test_candidates_round_trip_and_reject_names_and_garbage() -> None:
    for candidate in (HOST, SRFLX, RELAY, Candidate(Kind.HOST, ("fd00::1", 7))):
        assert Candidate.parse(candidate.encode()) == candidate
    assert Candidate(Kind.HOST, ("2001:db8::1", 7)).encode() == "host [2001:db8::1]:7"
    assert Candidate.parse("host 2001:db8::1:7").endpoint == ("2001:db8::1", 7)  # unbracketed
    for text in ("", "host", "host 1.2.3.4", "host 1.2.3.4:0", "host 1.2.3.4:65536",
                 "host example.org:53", "prflx 1.2.3.4:5", "host 1.2.3.4:x"):  # fmt: skip
        with pytest.raises(ValueError):
            Candidate.parse(text)


def test_punching_probes_every_candidate_then_the_relay_after_the_bound() -> None:
    paths = PeerPaths((HOST, SRFLX, RELAY), 0.0)
    targets, lost = paths.step(0.0, NEVER, HOST.endpoint, relay=True)
    assert targets == [HOST.endpoint, SRFLX.endpoint, RELAY.endpoint] and not lost
    assert paths.step(PUNCH_INTERVAL / 2, NEVER, HOST.endpoint, relay=True)[0] == []
    assert len(paths.step(PUNCH_INTERVAL, NEVER, HOST.endpoint, relay=True)[0]) == 3
    targets, _ = paths.step(DIRECT_BOUND, NEVER, HOST.endpoint, relay=True)
    assert targets[3:] == [Relayed(*SRFLX.endpoint), Relayed(*RELAY.endpoint)]
    assert all(isinstance(t, Relayed) for t in targets[3:])
    assert len(paths.step(DIRECT_BOUND + 1, NEVER, HOST.endpoint, relay=False)[0]) == 3
    paths.step(SLOW_AFTER, NEVER, HOST.endpoint, relay=False)
    assert paths.step(SLOW_AFTER + PUNCH_INTERVAL, NEVER, None, relay=False)[0] == []
    assert paths.step(SLOW_AFTER + SLOW_PUNCH_INTERVAL, NEVER, None, relay=False)[0]


def test_ipv6_candidates_are_punched_directly_never_through_our_ipv4_relay() -> None:
    ipv6_host = Candidate(Kind.HOST, ("2001:db8:1::2", 5000))
    ipv6_srflx = Candidate(Kind.SRFLX, ("2001:db8:1::3", 5000))
    paths = PeerPaths((ipv6_host, HOST, ipv6_srflx, SRFLX), 0.0)
    targets, _ = paths.step(DIRECT_BOUND, NEVER, None, relay=True)
    assert targets == [
        ipv6_host.endpoint,
        HOST.endpoint,
        ipv6_srflx.endpoint,
        SRFLX.endpoint,
        Relayed(*SRFLX.endpoint),
    ]


def test_a_direct_path_stops_probing_a_relayed_one_keeps_trying_direct() -> None:
    paths = PeerPaths((HOST, SRFLX, RELAY), 0.0)
    now = 10.0
    assert paths.step(now, now, SRFLX.endpoint, relay=True) == ([], False)
    assert paths.route(SRFLX.endpoint) is Route.DIRECT
    assert paths.route(RELAY.endpoint) is Route.RELAY  # the peer's relay, reached directly
    assert paths.route(Relayed(*SRFLX.endpoint)) is Route.RELAY  # through our relay
    relayed = Relayed(*RELAY.endpoint)
    targets, _ = paths.step(now + 1, now + 1, relayed, relay=True)
    assert targets == [HOST.endpoint, SRFLX.endpoint]  # background direct probes
    assert paths.step(now + 2, now + 2, relayed, relay=True)[0] == []
    assert paths.step(now + 1 + BACKGROUND_INTERVAL, now + 5, relayed, relay=True)[0]


def test_silence_loses_the_path_once_and_punching_starts_again() -> None:
    paths = PeerPaths((SRFLX,), 0.0)
    assert paths.step(1.0, 1.0, SRFLX.endpoint, relay=False) == ([], False)
    targets, lost = paths.step(1.0 + DEAD_AFTER, 1.0, SRFLX.endpoint, relay=False)
    assert lost and targets == [SRFLX.endpoint] and not paths.alive
    assert paths.step(1.0 + DEAD_AFTER + PUNCH_INTERVAL, 1.0, None, relay=False)[1] is False
    paths.update((SRFLX, RELAY), 20.0)  # new candidates: a fresh bound before the relay
    assert len(paths.step(20.0, 1.0, None, relay=True)[0]) == 2


FORGED = Candidate(Kind.HOST, ("203.0.113.66", 6666))


def test_a_forged_card_adds_candidates_and_never_takes_the_path_away() -> None:
    """A hostile member hands out a card with the peer's key and its own addresses: while the
    path works nothing is probed, the route stays, and once the path is lost the proven
    endpoint and the genuine card's candidates are punched along with the forged one."""
    paths = PeerPaths((HOST, SRFLX), 0.0)
    assert paths.step(1.0, 1.0, SRFLX.endpoint, relay=False) == ([], False)  # direct, alive
    paths.update((FORGED,), 2.0)
    assert paths.step(2.0, 2.0, SRFLX.endpoint, relay=False) == ([], False)
    assert paths.route(SRFLX.endpoint) is Route.DIRECT
    targets, lost = paths.step(2.0 + DEAD_AFTER, 2.0, SRFLX.endpoint, relay=False)
    assert lost and set(targets) == {FORGED.endpoint, HOST.endpoint, SRFLX.endpoint}
    assert targets[0] == SRFLX.endpoint  # where the peer's authenticated packets came from


def forged_cards(count: int) -> list[tuple[Candidate, ...]]:
    return [forged_card(n) for n in range(count)]


def forged_card(n: int) -> tuple[Candidate, ...]:
    return (Candidate(Kind.HOST, (f"203.0.{113 + n // 60000}.66", 1024 + n % 60000)),)


def test_cards_in_one_name_are_all_tried_bounded_and_the_proven_one_is_kept() -> None:
    genuine = (HOST, SRFLX)
    paths = PeerPaths((FORGED,), 0.0)  # a forged card came first: it stays, as first cards do
    assert paths.update(genuine, 0.5) is Taken.NEW
    paths.step(1.0, 1.0, SRFLX.endpoint, relay=False)  # the genuine path proven
    forged = forged_cards(MAX_CARDS)
    assert [paths.update(card, 2.0) for card in forged] == [Taken.NEW] * 2 + [Taken.REFUSED] * 2
    later = 2.0 + TRIAL  # the two on trial were tried: the next two take their slots
    assert [paths.update(card, later) for card in forged[2:]] == [Taken.NEW] * 2
    assert paths.update(forged[-1], later + 1) is Taken.HELD  # punching goes on
    assert len(paths.cards) == MAX_CARDS and genuine in paths.cards and (FORGED,) in paths.cards
    assert forged[0] not in paths.cards and forged[1] not in paths.cards
    targets, _ = paths.step(later + DEAD_AFTER, 1.0, SRFLX.endpoint, relay=False)
    assert targets[0] == SRFLX.endpoint and HOST.endpoint in targets
    assert len(targets) == 2 + MAX_CARDS - 1  # bounded: the genuine two, one of each other


def test_a_signed_card_takes_every_slot_from_a_flood_that_came_before_it() -> None:
    """Forged cards fill every slot and keep coming; the peer's signed card still gets in
    (the unsigned ones are dropped and refused from then on), and so do its newer cards,
    while its older ones (replayed) are refused once ``MAX_CARDS`` newer ones are held."""
    genuine = (HOST, SRFLX)
    flood = map(forged_card, itertools.count())
    paths = PeerPaths(next(flood), 0.0)
    assert [paths.update(next(flood), 0.1) for _ in range(MAX_CARDS)] == [Taken.NEW] * (
        MAX_CARDS - 1
    ) + [Taken.REFUSED]
    assert not paths.signed
    assert paths.update(genuine, 0.2, issued=1000) is Taken.NEW
    assert paths.signed and paths.cards == [genuine]
    assert paths.candidates == genuine and paths.started == 0.2  # punching starts over
    assert all(paths.update(next(flood), 0.3 + n * TRIAL) is Taken.REFUSED for n in range(9))
    assert paths.update(genuine, 0.4, issued=2000) is Taken.HELD  # the same card again
    moved = [((Candidate(Kind.SRFLX, ("198.51.100.2", 6000 + n)),)) for n in range(MAX_CARDS)]
    assert [paths.update(card, 1.0, issued=3000 + n) for n, card in enumerate(moved)] == (
        [Taken.NEW] * MAX_CARDS
    )
    assert paths.cards == moved[::-1]  # newest first; the oldest (genuine) went
    assert paths.update(genuine, 2.0, issued=2000) is Taken.REFUSED  # replayed: older
    assert paths.candidates[0] == moved[-1][0]  # the newest card is punched first


def test_an_older_card_after_a_restart_is_taken_unless_every_slot_is_held() -> None:
    """The peer was killed and came back on another port with its clock behind: its new card
    is older than the one held. Fewer than ``MAX_CARDS`` held: it is taken (punched after the
    newer-looking one); ``MAX_CARDS`` held (it moved that often), refused until the tunnel is
    removed when the peer times out, and a new tunnel takes any card."""
    before = (Candidate(Kind.HOST, ("192.0.2.1", 40000)),)
    restarted = (Candidate(Kind.HOST, ("192.0.2.1", 40001)),)
    paths = PeerPaths(before, 0.0, issued=5000)
    assert paths.update(restarted, 1.0, issued=4000) is Taken.NEW
    assert paths.cards == [before, restarted] and paths.started == 1.0
    moved = [(Candidate(Kind.HOST, ("192.0.2.1", 41000 + n)),) for n in range(MAX_CARDS)]
    full = PeerPaths(moved[0], 0.0, issued=5000)
    for n, card in enumerate(moved[1:], 1):
        assert full.update(card, 0.0, issued=5000 + n) is Taken.NEW
    assert full.update(restarted, 1.0, issued=4000) is Taken.REFUSED
    assert PeerPaths(restarted, 2.0, issued=4000).candidates == restarted


def test_a_flood_of_cards_before_any_path_never_pushes_out_a_card_untried() -> None:
    """A hostile member writes card after card in a peer's name before any path to it was
    proven: the first card stays, every card held is punched for its whole trial, and new
    cards take turns at most ``MAX_CARDS - 1`` per ``TRIAL`` (bounded memory and probes)."""
    genuine = (HOST, SRFLX)
    paths = PeerPaths(genuine, 0.0)
    flood = map(forged_card, itertools.count())
    taken = [paths.update(next(flood), 0.1 * n) for n in range(100)]  # 10 s of flood
    assert genuine in paths.cards and len(paths.cards) == MAX_CARDS
    assert taken.count(Taken.NEW) == MAX_CARDS - 1  # the others were refused
    targets, _ = paths.step(10.0, NEVER, None, relay=False)
    assert HOST.endpoint in targets and SRFLX.endpoint in targets and len(targets) == 5
    now = 10.0
    while now < 10 * TRIAL:  # the flood goes on: the genuine card is never pushed out
        paths.update(next(flood), now)
        assert genuine in paths.cards and len(paths.cards) == MAX_CARDS
        now += 0.1
    # A genuine card that came second, into a free slot, is punched for its whole trial.
    second = PeerPaths((FORGED,), 0.0)
    assert second.update(genuine, 0.1) is Taken.NEW
    held_until = 0.1
    now = 0.2
    while genuine in second.cards:
        second.update(next(flood), now)
        held_until = now
        now += 0.1
    assert held_until >= 0.1 + TRIAL - 0.1  # untouched while on trial, then replaced
