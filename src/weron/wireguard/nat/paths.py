"""Candidates and the choice of a path to one peer (hole punching), without I/O.

A member advertises *candidates*: its socket's local addresses (``host``), the public mapping
STUN saw (``srflx``) and its TURN relay (``relay``). To reach a peer, both sides send probes
to all of the other's candidates at the same time, every half second: each probe opens our
own NAT toward that candidate, so the other side's probes get in. WireGuard itself is the
probe (the handshake initiation, or an empty transport message once a session exists): the
handshake completes on the first path that answers, and roaming keeps the path that works.

If no direct path works within ``DIRECT_BOUND``, probes also go through our TURN relay to the
peer's public and relayed candidates. On the relay, direct paths keep being probed in the
background, and the first direct probe that arrives moves both sides back (roaming). A path
silent for ``DEAD_AFTER`` is lost: punching starts again (the owner also refreshes its
candidates, which a NAT that changed our mapping made stale).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from weron.net.endpoints import Endpoint, Relayed

PUNCH_INTERVAL: Final = 0.5
SLOW_PUNCH_INTERVAL: Final = 2.0  # after SLOW_AFTER of punching without success
SLOW_AFTER: Final = 30.0
DIRECT_BOUND: Final = 5.0
BACKGROUND_INTERVAL: Final = 5.0
KEEPALIVE: Final = 2.0  # persistent keepalive: NAT mappings stay, silence means loss
DEAD_AFTER: Final = 6.0
MAX_CANDIDATES: Final = 8  # tried of each card
MAX_CARDS: Final = 4  # distinct cards in one peer's name whose candidates are all tried
# A card held is punched this long before a newer card may take its place: a flood of cards
# in one name cannot push a card out untried, and new cards come in at most MAX_CARDS - 1 per
# TRIAL, so punching restarts (each new card's) leave DIRECT_BOUND to the relay in between.
TRIAL: Final = 4 * DIRECT_BOUND


class Kind(StrEnum):
    HOST = "host"
    SRFLX = "srflx"
    RELAY = "relay"


class Taken(StrEnum):
    """What became of a card handed to :meth:`PeerPaths.update`."""

    NEW = "new"  # its candidates join those punched; punching starts again
    HELD = "held"  # held already: nothing changes
    # ignored: every card held is on trial or kept, or it is unsigned while the peer signs its
    # cards, or it is older than all the peer's signed cards held (replayed)
    REFUSED = "refused"


class Route(StrEnum):
    DIRECT = "direct"
    RELAY = "relay"


@dataclass(frozen=True, slots=True)
class Candidate:
    kind: Kind
    endpoint: Endpoint

    def encode(self) -> str:
        host, port = self.endpoint
        return f"{self.kind} [{host}]:{port}" if ":" in host else f"{self.kind} {host}:{port}"

    @classmethod
    def parse(cls, text: str) -> Candidate:
        """``KIND HOST:PORT`` with an IPv4 or IPv6 address; ValueError otherwise."""
        kind, _, address = text.partition(" ")
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not a HOST:PORT candidate: {text[:64]!r}")
        ipaddress.ip_address(host)  # raises ValueError: candidates are addresses, not names
        return cls(Kind(kind), (host, int(port)))


def _ipv4(endpoint: Endpoint) -> bool:
    return ":" not in endpoint[0]


class PeerPaths:
    """Path finding toward one peer: feed it the time and the WireGuard state, get where to
    probe, whether the path was just lost, and the route in use.

    Cards come from the rendezvous, where anyone with the room's key can write one in the
    peer's name. A card the peer signed (``issued``: when it made it, see
    ``weron.rendezvous.card``) is its own: once one came, only signed cards count, the
    ``MAX_CARDS`` newest, and cards without a signature are ignored. Until then (a peer of an
    earlier version) a card only adds candidates: those of up to ``MAX_CARDS`` distinct cards
    are all tried, and so is the endpoint the peer's authenticated packets came from
    (``proven``), which no card takes away. A forged card costs a few probes, never the path.
    When all slots are taken, a new card replaces the oldest one that was punched for its
    ``TRIAL``, except the first card and the one holding ``proven``; if there is none, the new
    card is refused. So a flood in the peer's name never pushes out the first card, nor any
    card before it was tried (see docs/gonet-cards.md).
    """

    def __init__(
        self, candidates: tuple[Candidate, ...], started: float, issued: int | None = None
    ) -> None:
        self._since: dict[tuple[Candidate, ...], float] = {}  # each card held: when it came
        self._issued: dict[tuple[Candidate, ...], int] = {}  # the peer's signed cards
        self._first = candidates[:MAX_CANDIDATES]  # kept for good: a flood cannot push it out
        self.candidates: tuple[Candidate, ...] = ()  # of every card, interleaved
        self.proven: Endpoint | None = None
        self.started = started  # when punching (re)started
        self.alive = False
        self.last_probe = -float("inf")
        self._relay_endpoints: frozenset[Endpoint] = frozenset()
        self.update(candidates, started, issued)

    @property
    def cards(self) -> list[tuple[Candidate, ...]]:
        """The cards held, newest first."""
        if self._issued:
            return sorted(self._issued, key=self._issued.__getitem__, reverse=True)
        return list(reversed(self._since))

    @property
    def signed(self) -> bool:
        """Whether the peer signs its cards (one signed card came)."""
        return bool(self._issued)

    def update(
        self, candidates: tuple[Candidate, ...], now: float, issued: int | None = None
    ) -> Taken:
        """A card from the rendezvous (``issued``: when the peer made it, for a card it
        signed): its candidates join those of the cards held (punching starts again), unless
        all slots are taken by cards that stay for now."""
        card = candidates[:MAX_CANDIDATES]
        taken = self._take_signed(card, issued) if issued is not None else self._take(card, now)
        if taken is not Taken.NEW:
            return taken
        merged: dict[Endpoint, Candidate] = {}
        held_cards = self.cards
        for rank in range(MAX_CANDIDATES):  # each card's first candidates first
            for held in held_cards:
                if rank < len(held):
                    merged.setdefault(held[rank].endpoint, held[rank])
        self.candidates = tuple(merged.values())
        self._relay_endpoints = frozenset(
            c.endpoint for c in self.candidates if c.kind is Kind.RELAY
        )
        self.started = now
        self.last_probe = -float("inf")
        return Taken.NEW

    def _take_signed(self, card: tuple[Candidate, ...], issued: int) -> Taken:
        """The peer's own card: it replaces every unsigned one, and the oldest of its own once
        ``MAX_CARDS`` are held; an older one than all those held (replayed) is refused."""
        if card in self._issued:
            self._issued[card] = max(issued, self._issued[card])
            return Taken.HELD
        self._since.clear()
        if len(self._issued) >= MAX_CARDS:
            oldest = min(self._issued, key=self._issued.__getitem__)
            if issued <= self._issued[oldest]:
                return Taken.REFUSED
            del self._issued[oldest]
        self._issued[card] = issued
        return Taken.NEW

    def _take(self, card: tuple[Candidate, ...], now: float) -> Taken:
        if self._issued:  # the peer signs its cards: this one is another member's
            return Taken.REFUSED
        if card in self._since:
            return Taken.HELD
        if len(self._since) >= MAX_CARDS:
            tried = [
                c
                for c in self._since
                if c != self._first
                and now - self._since[c] >= TRIAL
                and all(x.endpoint != self.proven for x in c)
            ]
            if not tried:
                return Taken.REFUSED
            del self._since[min(tried, key=self._since.__getitem__)]
        self._since[card] = now
        return Taken.NEW

    def route(self, endpoint: Endpoint | None) -> Route | None:
        """How packets to ``endpoint`` travel: through a relay (ours, or the peer's relayed
        address) or directly."""
        if endpoint is None:
            return None
        if isinstance(endpoint, Relayed) or endpoint in self._relay_endpoints:
            return Route.RELAY
        return Route.DIRECT

    def step(
        self, now: float, last_received: float, endpoint: Endpoint | None, relay: bool
    ) -> tuple[list[Endpoint], bool]:
        """Where to send a probe now, and whether the path in use was just lost.
        ``last_received``: when the peer last authenticated a packet to us; ``relay``:
        whether we have a TURN allocation."""
        alive = now - last_received < DEAD_AFTER
        lost = self.alive and not alive
        if lost:
            self.started = now
            self.last_probe = -float("inf")
        self.alive = alive
        direct = [c.endpoint for c in self.candidates]
        if alive and endpoint is not None and not isinstance(endpoint, Relayed):
            self.proven = endpoint  # where the peer's authenticated packets come from
        if alive:
            if self.route(endpoint) is Route.DIRECT:
                return [], lost
            if now - self.last_probe < BACKGROUND_INTERVAL:
                return [], lost
            self.last_probe = now
            return [e for e in direct if e not in self._relay_endpoints], lost
        interval = SLOW_PUNCH_INTERVAL if now - self.started >= SLOW_AFTER else PUNCH_INTERVAL
        if now - self.last_probe < interval:
            return [], lost
        self.last_probe = now
        if self.proven is not None:  # first: the path most likely to come back
            direct = [self.proven, *(e for e in direct if e != self.proven)]
        if relay and now - self.started >= DIRECT_BOUND:
            direct += [
                Relayed(*c.endpoint)
                for c in self.candidates
                if c.kind is not Kind.HOST and _ipv4(c.endpoint)  # our relays are IPv4
            ]
        return direct, lost
