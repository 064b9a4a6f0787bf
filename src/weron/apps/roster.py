"""gonet's chat inside the tunnel, without I/O: the datagrams members send each other and the
roster of who is in the room under which (unique) name.

Datagrams are one ASCII line each, so a stock WireGuard peer can chat with ``nc -u``:
``HELLO <name>`` (join, and every few seconds as a heartbeat), ``MSG <text>``, ``BYE``.
Version 2 adds lines that are acknowledged, so that they survive a path that heals:
``VERSION 2`` (sent with every hello: this member acknowledges), ``LINE <epoch> <seq> <text>``
and ``ACK <epoch> <seq>``; members that never said ``VERSION 2`` get and send ``MSG``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Final

from weron.apps.ascii import is_printable_ascii

CHAT_PORT: Final = 4575
MAX_TEXT: Final = 1000
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,32}")
VERSION: Final = 2  # the highest chat version this member speaks
_EPOCH: Final = re.compile(r"[0-9a-f]{16}")
_NUMBER: Final = re.compile(r"[1-9][0-9]{0,17}")  # no leading zeros: one spelling per number


class ChatMessageError(ValueError):
    """A datagram that is not a chat message."""


@dataclass(frozen=True, slots=True)
class Hello:
    name: str


@dataclass(frozen=True, slots=True)
class Line:
    text: str


@dataclass(frozen=True, slots=True)
class Bye:
    pass


@dataclass(frozen=True, slots=True)
class Version:
    """The chat version a member speaks (absent: 1, plain ``MSG`` lines)."""

    number: int


@dataclass(frozen=True, slots=True)
class Posted:
    """A line to acknowledge: ``seq`` counts the sender's lines since it started, ``epoch``
    (random per start) tells a restarted sender's new lines from old duplicates."""

    epoch: str
    seq: int
    text: str


@dataclass(frozen=True, slots=True)
class Ack:
    epoch: str
    seq: int


ChatMessage = Hello | Line | Bye | Version | Posted | Ack


def valid_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None


def encode_chat(message: ChatMessage) -> bytes:
    if isinstance(message, Hello):
        return f"HELLO {message.name}\n".encode("ascii")
    if isinstance(message, Line):
        return f"MSG {message.text}\n".encode("ascii")
    if isinstance(message, Version):
        return f"VERSION {message.number}\n".encode("ascii")
    if isinstance(message, Posted):
        return f"LINE {message.epoch} {message.seq} {message.text}\n".encode("ascii")
    if isinstance(message, Ack):
        return f"ACK {message.epoch} {message.seq}\n".encode("ascii")
    return b"BYE\n"


def decode_chat(data: bytes) -> ChatMessage:
    """Strict: printable ASCII only, a known verb, a valid name, a bounded text."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ChatMessageError("not ASCII") from None
    text = text.removesuffix("\n")
    if not is_printable_ascii(text):
        raise ChatMessageError("control characters in a chat message")
    verb, _, rest = text.partition(" ")
    if verb == "HELLO" and valid_name(rest):
        return Hello(rest)
    if verb == "MSG" and rest and len(rest) <= MAX_TEXT:
        return Line(rest)
    if verb == "BYE" and not rest:
        return Bye()
    if verb == "VERSION" and _NUMBER.fullmatch(rest):
        return Version(int(rest))
    if verb in ("LINE", "ACK"):
        epoch, _, rest = rest.partition(" ")
        seq, _, line = rest.partition(" ")
        if _EPOCH.fullmatch(epoch) and _NUMBER.fullmatch(seq):
            if verb == "ACK" and not line:
                return Ack(epoch, int(seq))
            if verb == "LINE" and line and len(line) <= MAX_TEXT:
                return Posted(epoch, int(seq), line)
    raise ChatMessageError(f"not a chat message: {text[:40]!r}")


def tag(public_key: bytes) -> str:
    """Four hex digits that tell apart members who chose the same name."""
    return hashlib.blake2s(b"gonet name tag" + public_key).hexdigest()[:4]


@dataclass
class _Member:
    name: str
    last_seen: float


@dataclass
class Roster:
    """Members by public key. Names shown are unique: members sharing a name are all shown as
    ``name#tag`` — a rule every member applies alike, whoever joined first."""

    own_key: bytes
    own_name: str
    _members: dict[bytes, _Member] = field(default_factory=dict)

    def display(self, public_key: bytes) -> str:
        name = self.own_name if public_key == self.own_key else self._members[public_key].name
        clashes = (name == self.own_name) + sum(m.name == name for m in self._members.values())
        return f"{name}#{tag(public_key)}" if clashes > 1 else name

    def displays(self) -> dict[bytes, str]:
        """Every member's shown name (ours aside): compare two to see who is shown anew."""
        return {key: self.display(key) for key in self._members}

    @property
    def own_display(self) -> str:
        return self.display(self.own_key)

    def __contains__(self, public_key: bytes) -> bool:
        return public_key in self._members

    def hello(self, public_key: bytes, name: str, now: float) -> bool:
        """Record a member's hello; True when it just joined."""
        member = self._members.get(public_key)
        if member is None:
            self._members[public_key] = _Member(name, now)
            return True
        member.name = name
        member.last_seen = now
        return False

    def seen(self, public_key: bytes, now: float) -> None:
        member = self._members.get(public_key)
        if member is not None:
            member.last_seen = now

    def leave(self, public_key: bytes) -> str | None:
        """Remove a member; its last shown name, or None if it was not here."""
        if public_key not in self._members:
            return None
        shown = self.display(public_key)
        del self._members[public_key]
        return shown

    def expire(self, now: float, timeout: float) -> list[tuple[bytes, str]]:
        """Remove members silent for ``timeout``; their keys and shown names."""
        silent = [key for key, m in self._members.items() if now - m.last_seen >= timeout]
        return [(key, shown) for key in silent if (shown := self.leave(key)) is not None]
