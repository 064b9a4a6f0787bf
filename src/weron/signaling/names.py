"""Name negotiation on the id channel (weron-protocol.md §4), as a state machine without I/O
or timers: the named adapter feeds it messages and the ``kicks`` timer, and sends its replies.

Messages are JSON objects written back to back (Go's ``json.Encoder``: one per line)::

    {"type":"greeting","ids":{"<name>":{}},"timestamp":<unix ns>}
    {"type":"kick","id":"<name>"}   {"type":"backoff"}   {"type":"claimed","id":"<name>"}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

NameMessage = dict[str, Any]


class NameMessageError(ValueError):
    """Bytes on the id channel that are not name-negotiation messages."""


class AllNamesClaimedError(RuntimeError):
    def __init__(self) -> None:
        super().__init__("all available names have been claimed")


def greeting(names: Iterable[str], timestamp: int) -> NameMessage:
    return {"type": "greeting", "ids": {name: {} for name in names}, "timestamp": timestamp}


def kick(name: str) -> NameMessage:
    return {"type": "kick", "id": name}


def backoff() -> NameMessage:
    return {"type": "backoff"}


def claimed(name: str) -> NameMessage:
    return {"type": "claimed", "id": name}


def keepalive() -> NameMessage:
    """Ours, not the original's: lets peers of ours notice a dead member within ``timeout``.
    Go peers skip message types they do not know, so it stays compatible."""
    return {"type": "keepalive"}


def encode(message: NameMessage) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(data: bytes) -> list[NameMessage]:
    """Every JSON object in one id-channel message; garbage raises :class:`NameMessageError`."""
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
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            raise NameMessageError("id channel message is not a typed JSON object")
        messages.append(value)


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
    older timestamp and a candidate of ours, so it may tell us to back off."""

    claimed: str | None = None
    older_rival: bool = False


@dataclass(slots=True)
class Reaction:
    """What to do after a message: replies to send back on the same channel, whether to back
    off (wait ``kicks``, greet again, restart the claim timer), and a peer's claimed name."""

    replies: list[NameMessage] = field(default_factory=list)
    back_off: bool = False
    peer_name: str | None = None
    alive: bool = False  # the peer sends keepalives: hold it to them


class NameNegotiation:
    def __init__(
        self,
        names: Sequence[str],
        timestamp: int,
        conflicts: Callable[[Iterable[str], str], bool] = names_overlap,
        choose: Callable[[Sequence[str]], str] = first,
    ) -> None:
        self.timestamp = timestamp
        self._conflicts = conflicts
        self._choose = choose
        self.candidates: list[str] = [name for name in names if name.strip()]
        self.name: str | None = None

    def greetings(self) -> list[NameMessage]:
        """What to send on a new id channel."""
        if self.name is None:
            return [greeting(self.candidates, self.timestamp)]
        return [greeting([self.name], self.timestamp), claimed(self.name)]

    def receive(self, message: NameMessage, peer: PeerNames) -> Reaction:
        """React to ``message`` from the peer whose id channel state is ``peer``."""
        kind = message.get("type")
        reaction = Reaction()
        if kind == "greeting":
            ids = message.get("ids")
            timestamp = message.get("timestamp")
            if not isinstance(ids, dict) or not isinstance(timestamp, int):
                raise NameMessageError("greeting without ids or timestamp")
            rivals = any(name in self.candidates for name in ids)
            peer.older_rival = rivals and timestamp < self.timestamp
            if rivals and self.name is None and self.timestamp < timestamp:
                reaction.replies.append(backoff())  # we were first: they wait
                return reaction
            if self.name is not None and self._conflicts(ids.keys(), self.name):
                reaction.replies.append(kick(self.name))
        elif kind == "kick":
            name = message.get("id")
            # Only the holder may push us off a name: it announced its claim before kicking.
            if isinstance(name, str) and name == peer.claimed:
                self._drop_clashing(name)
        elif kind == "backoff":
            # Only while negotiating, and only from an older rival: a member that rejoined the
            # signaler may tell us to wait before it learns that we hold our name already.
            reaction.back_off = self.name is None and peer.older_rival
        elif kind == "keepalive":
            reaction.alive = True
        elif kind == "claimed":
            name = message.get("id")
            if not isinstance(name, str):
                raise NameMessageError("claimed without an id")
            reaction.peer_name = peer.claimed = name
            if self.name is None:  # taken: never claim it
                self._drop_clashing(name)
        else:
            raise NameMessageError(f"unknown id channel message type {str(kind)[:32]!r}")
        return reaction

    def _drop_clashing(self, name: str) -> None:
        """Not only ``name``: every candidate that clashes with it (for the IP VPN, any
        candidate sharing one of its addresses)."""
        self.candidates = [
            candidate
            for candidate in self.candidates
            if candidate != name and not self._conflicts([name], candidate)
        ]

    def claim(self) -> str:
        """Claim one of the remaining candidates, chosen by ``choose`` (by default the first,
        in ``names`` order: deterministic). Held for the life of the process: connections,
        and the name with them, outlive signaler reconnects."""
        if not self.candidates:
            raise AllNamesClaimedError
        self.name = self._choose(self.candidates)
        self.candidates = []
        return self.name
