"""A gonet room name ``lobby/room/key`` and every secret derived from it.

The key is a human-chosen password, so it is stretched with Argon2id (salted with the lobby and
room, so no table serves two rooms) before HKDF expands it into independent secrets, one per
purpose label. Rendezvous names depend on ``lobby/room`` only: a member with another key joins
the same signaler community, but cannot open our envelopes nor complete a handshake with us,
so it sees nothing and is seen by nobody — and cannot lock us out by creating the community
first with another password.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

_DOMAIN: Final = b"weron gonet v1"
# Argon2id cost: ~0.2 s and 64 MiB once per start (RFC 9106's second recommended option).
ARGON2_MEMORY_KIB: Final = 64 * 1024
ARGON2_ITERATIONS: Final = 3
ARGON2_LANES: Final = 4


class RoomError(ValueError):
    """Not a ``lobby/room/key`` room name."""


@dataclass(frozen=True, slots=True)
class Room:
    lobby: str
    room: str
    key: str = ""

    @classmethod
    def parse(cls, text: str) -> Room:
        """``lobby/room/key``: three non-empty parts (the key may contain further slashes)."""
        parts = text.split("/", 2)
        if len(parts) != 3 or not all(part.strip() for part in parts):
            raise RoomError("expected LOBBY/ROOM/KEY, three non-empty parts separated by '/'")
        return cls(*parts)

    def __repr__(self) -> str:  # never print the key
        return f"Room(lobby={self.lobby!r}, room={self.room!r})"


@dataclass(frozen=True, slots=True)
class RoomSecrets:
    community: str
    password: str
    signaling_key: str
    psk: bytes
    dht: bytes  # the DHT records' signing seed, encryption key and slot names come from it
    place: bytes  # from lobby/room only: names that need no secret

    def __repr__(self) -> str:
        return f"RoomSecrets(community={self.community!r})"


def _encode(*parts: str) -> bytes:
    """Unambiguous concatenation: each part length-prefixed."""
    out = bytearray()
    for part in parts:
        data = part.encode("utf-8")
        out += len(data).to_bytes(4, "big") + data
    return bytes(out)


def _expand(secret: bytes, label: str, length: int = 32) -> bytes:
    info = _DOMAIN + b" " + label.encode()
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def place_of(room: Room) -> bytes:
    """What names the room without its key (the signaler community, the DHT slots, what
    cards are signed for): cheap, unlike :func:`derive`."""
    return HKDF(hashes.SHA256(), 32, salt=_DOMAIN, info=b"place").derive(
        _encode(room.lobby, room.room)
    )


def derive(room: Room) -> RoomSecrets:
    """Everything gonet needs from the room name (same input, same secrets, on every peer)."""
    place = place_of(room)
    salt = hashlib.blake2s(_DOMAIN + b" argon2 salt" + place).digest()[:16]
    stretched = Argon2id(
        salt=salt,
        length=32,
        iterations=ARGON2_ITERATIONS,
        lanes=ARGON2_LANES,
        memory_cost=ARGON2_MEMORY_KIB,
    ).derive(_encode(room.lobby, room.room, room.key))
    return RoomSecrets(
        community="gonet-" + _expand(place, "community", 16).hex(),
        password=_expand(place, "community password").hex(),
        signaling_key=_expand(stretched, "signaling key").hex(),
        psk=_expand(stretched, "wireguard psk"),
        dht=_expand(stretched, "dht"),
        place=place,
    )
