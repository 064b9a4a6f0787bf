"""Name negotiation on the id channel (docs/wire-protocol.md#name-negotiation), as a state
machine without I/O or timers: the named adapter feeds it messages, the ``kicks`` timer and the
time, and sends its replies.

Messages are JSON objects written back to back (Go's ``json.Encoder``: one per line)::

    {"type":"greeting","ids":{"<name>":{}},"timestamp":<unix ns>,"features":["<feature>"]}
    {"type":"kick","id":"<name>"}   {"type":"backoff"}   {"type":"claimed","id":"<name>"}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# How often a member gives its name up to a simultaneous older claim: honest races are rare and
# end after one round; more can only be a member echoing every claim to churn our connections.
MAX_GIVE_UPS = 3
# How many names announced as claimed we remember to leave out after giving a name up: more
# than any community holds; a member announcing name after name cannot grow our memory.
MAX_TAKEN = 1024
# A greeting's features kept, and their length: more than any app advertises.
_MAX_FEATURES = 16
_MAX_FEATURE = 64


class NameMessageError(ValueError):
    """Bytes on the id channel that are not name-negotiation messages."""


class AllNamesClaimedError(RuntimeError):
    def __init__(self) -> None:
        super().__init__("all available names have been claimed")


@dataclass(frozen=True, slots=True)
class Greeting:
    """The names a member asks for (all its candidates, or the one it holds), and when it
    started: the older greeting wins a race. ``features`` (ours): what the member's app can
    take beyond the original's protocol; Go peers skip the field, and send none."""

    names: tuple[str, ...]
    timestamp: int
    features: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Kick:
    """``name`` is held by the sender: drop it from the candidates."""

    name: str


@dataclass(frozen=True, slots=True)
class Backoff:
    """The sender asked for a candidate of ours first: wait before claiming."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """The sender holds ``name`` now."""

    name: str


@dataclass(frozen=True, slots=True)
class Keepalive:
    """Ours, not the original's: lets peers of ours notice a dead member within ``timeout``.
    Go peers skip message types they do not know, so it stays compatible."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """A message type the negotiation does not know (a newer peer's): refused by
    :meth:`NameNegotiation.receive`, so the caller logs it."""

    type: str


NameMessage = Greeting | Kick | Backoff | Claimed | Keepalive | Unknown


def encode(message: NameMessage) -> bytes:
    return json.dumps(_wire(message), separators=(",", ":")).encode() + b"\n"


def _wire(message: NameMessage) -> dict[str, Any]:
    match message:
        case Greeting(names, timestamp, features):
            greeting = {
                "type": "greeting",
                "ids": {name: {} for name in names},
                "timestamp": timestamp,
            }
            return {**greeting, "features": sorted(features)} if features else greeting
        case Kick(name):
            return {"type": "kick", "id": name}
        case Backoff():
            return {"type": "backoff"}
        case Claimed(name):
            return {"type": "claimed", "id": name}
        case Keepalive():
            return {"type": "keepalive"}
        case Unknown(kind):
            return {"type": kind}


def decode(data: bytes) -> list[NameMessage]:
    """Every message in one id-channel message (JSON objects back to back); garbage, or a
    known type without its fields, raises :class:`NameMessageError`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NameMessageError("id channel message is not UTF-8") from None
    decoder = json.JSONDecoder()
    messages: list[NameMessage] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return messages
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise NameMessageError(f"id channel message is not JSON: {exc}") from None
        messages.append(_read(value))


def _read(value: object) -> NameMessage:
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise NameMessageError("id channel message is not a typed JSON object")
    kind: str = value["type"]
    if kind == "greeting":
        ids, timestamp = value.get("ids"), value.get("timestamp")
        if not isinstance(ids, dict) or not isinstance(timestamp, int):
            raise NameMessageError("greeting without ids or timestamp")
        features = value.get("features")
        known = frozenset(
            feature[:_MAX_FEATURE]
            for feature in (features if isinstance(features, list) else ())[:_MAX_FEATURES]
            if isinstance(feature, str)
        )
        return Greeting(tuple(str(name) for name in ids), timestamp, known)
    if kind in ("kick", "claimed"):
        name = value.get("id")
        if not isinstance(name, str):
            raise NameMessageError(f"{kind} without an id")
        return Kick(name) if kind == "kick" else Claimed(name)
    if kind == "backoff":
        return Backoff()
    if kind == "keepalive":
        return Keepalive()
    return Unknown(kind[:32])


def first(candidates: Sequence[str]) -> str:
    return candidates[0]


def names_overlap(theirs: Iterable[str], ours: str) -> bool:
    """Default conflict rule: they greet with our claimed name."""
    return ours in set(theirs)


@dataclass(slots=True)
class PeerNames:
    """What one peer told us on its id channel: the rules for ``kick`` and ``backoff`` need
    it, so that a member can only push others off names it holds itself (docs/peer-sessions.md).

    ``claimed``: the name it announced as ``claimed``. ``older_rival``: it greeted with an
    older timestamp and a candidate of ours, so it may tell us to back off. ``timestamp``: its
    greeting's, which decides who keeps a name both claimed at once. ``features``: its
    greeting's (see :class:`Greeting`)."""

    claimed: str | None = None
    older_rival: bool = False
    timestamp: int | None = None
    features: frozenset[str] = frozenset()


@dataclass(slots=True)
class Reaction:
    """What to do after a message: replies to send back on the same channel, whether to back
    off (wait ``kicks``, greet again, restart the claim timer), and a peer's claimed name."""

    replies: list[NameMessage] = field(default_factory=list)
    back_off: bool = False
    peer_name: str | None = None
    alive: bool = False  # the peer sends keepalives: hold it to them
    gave_up: str | None = None  # an older member claimed our name too: claim another


class NameNegotiation:
    """One member's claim. Two members whose timers fire together can claim one name (each
    claims before the other's ``claimed`` arrives); the younger by greeting timestamp then
    gives it up and claims another, but only within ``contest`` seconds of its claim: later,
    a name is held for good, so a member that greets with a forged old timestamp cannot push
    a settled member off its name (it could only have won the race by claiming first), nor
    more than :data:`MAX_GIVE_UPS` times."""

    def __init__(
        self,
        names: Sequence[str],
        timestamp: int,
        conflicts: Callable[[Iterable[str], str], bool] = names_overlap,
        choose: Callable[[Sequence[str]], str] = first,
        contest: float = 15.0,
        features: frozenset[str] = frozenset(),
    ) -> None:
        self.timestamp = timestamp
        self.features = features
        self._conflicts = conflicts
        self._choose = choose
        self._contest = contest
        self._names = [name for name in names if name.strip()]
        self._taken: set[str] = set()  # names peers announced as claimed
        self.candidates: list[str] = list(self._names)
        self.name: str | None = None
        self._claimed_at: float | None = 0.0  # None: cut off, contestable until a peer answers
        self._give_ups = 0

    def greetings(self) -> list[NameMessage]:
        """What to send on a new id channel."""
        if self.name is None:
            return [Greeting(tuple(self.candidates), self.timestamp, self.features)]
        return [Greeting((self.name,), self.timestamp, self.features), Claimed(self.name)]

    def receive(self, message: NameMessage, peer: PeerNames, now: float) -> Reaction:
        """React to ``message`` from the peer whose id channel state is ``peer``."""
        reaction = Reaction()
        if self._claimed_at is None:  # a peer answers: we are back
            self._claimed_at = now
        match message:
            case Greeting(ids, timestamp, features):
                peer.timestamp, peer.features = timestamp, features
                rivals = any(name in self.candidates for name in ids)
                peer.older_rival = rivals and timestamp < self.timestamp
                if rivals and self.name is None and self.timestamp < timestamp:
                    reaction.replies.append(Backoff())  # we were first: they wait
                elif self.name is not None and self._conflicts(ids, self.name):
                    reaction.replies.append(Kick(self.name))
            case Kick(name):
                # Only the holder may push us off a name: it announced its claim before kicking.
                if name == peer.claimed:
                    self._drop_clashing(name)
            case Backoff():
                # Only while negotiating, and only from an older rival: a member that rejoined
                # the signaler may tell us to wait before it learns that we hold our name.
                reaction.back_off = self.name is None and peer.older_rival
            case Keepalive():
                reaction.alive = True
            case Claimed(name):
                self._claimed(name, peer, now, reaction)
            case Unknown(kind):
                raise NameMessageError(f"unknown id channel message type {kind!r}")
        return reaction

    def _claimed(self, name: str, peer: PeerNames, now: float, reaction: Reaction) -> None:
        reaction.peer_name = peer.claimed = name
        if len(self._taken) < MAX_TAKEN:
            self._taken.add(name)
        if self.name is None:  # taken: never claim it
            self._drop_clashing(name)
        elif self._yields_to(name, peer, now):
            reaction.gave_up = self.name
            self._give_ups += 1
            self.name = None
            self.candidates = list(self._names)
            for taken in self._taken:
                self._drop_clashing(taken)

    def _drop_clashing(self, name: str) -> None:
        """Not only ``name``: every candidate that clashes with it (for the IP VPN, any
        candidate sharing one of its addresses)."""
        self.candidates = [
            candidate
            for candidate in self.candidates
            if candidate != name and not self._conflicts([name], candidate)
        ]

    def _yields_to(self, name: str, peer: PeerNames, now: float) -> bool:
        """Whether ``peer``, which claimed ``name``, takes our name from us: it clashes with
        ours, the peer greeted before us, and our claim is still contestable."""
        assert self.name is not None
        return (
            (name == self.name or self._conflicts([name], self.name))
            and peer.timestamp is not None
            and peer.timestamp < self.timestamp
            and (self._claimed_at is None or now - self._claimed_at <= self._contest)
            and self._give_ups < MAX_GIVE_UPS
        )

    def cut_off(self, timestamp: int) -> None:
        """Every peer stopped answering (our process was suspended, or our network cut): a
        member that came meanwhile could not hear our claim, may hold our name by now, and is
        settled on it when we are back. We come back as a newcomer would, greeting as of
        ``timestamp``, our name contestable again from when a peer first answers: a clash is
        then ours to resolve by claiming another (one that joins after our return cannot take it
        from us, nor can a member that cannot cut us off from every peer make us contest it)."""
        if self.name is not None:
            self.timestamp = timestamp
            self._claimed_at = None

    def claim(self, now: float) -> str:
        """Claim one of the remaining candidates, chosen by ``choose`` (by default the first,
        in ``names`` order: deterministic). Held for the life of the process (connections,
        and the name with them, outlive signaler reconnects) unless an older member claimed
        it at the same time."""
        if not self.candidates:
            raise AllNamesClaimedError
        self.name = self._choose(self.candidates)
        self.candidates = []
        self._claimed_at = now
        return self.name
