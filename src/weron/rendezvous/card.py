"""A member's *card*: its WireGuard public key and the candidate addresses of its socket —
what members exchange to meet, whatever the rendezvous (signaler or DHT)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from weron.json_object import json_object
from weron.wireguard.keys import KeyFormatError, decode_key, encode_key
from weron.wireguard.nat.paths import Candidate

MAX_CANDIDATES: Final = 16


class CardError(ValueError):
    """A payload that is not a member card."""


@dataclass(frozen=True, slots=True)
class Card:
    public_key: bytes
    candidates: tuple[Candidate, ...]

    @property
    def id(self) -> str:
        return encode_key(self.public_key)

    def encode(self) -> bytes:
        document = {"publicKey": self.id, "candidates": [c.encode() for c in self.candidates]}
        return json.dumps(document, separators=(",", ":")).encode()


def _candidate(text: object) -> Candidate:
    if not isinstance(text, str):
        raise CardError("a candidate is a 'KIND HOST:PORT' string")
    try:
        return Candidate.parse(text)
    except ValueError as exc:
        raise CardError(f"candidate {text[:64]!r}: {exc}") from None


def decode_card(payload: bytes) -> Card:
    document = json_object(payload, "card", CardError)
    key = document.get("publicKey")
    candidates = document.get("candidates")
    if not isinstance(key, str) or not isinstance(candidates, list):
        raise CardError("publicKey (string) and candidates (list) are required")
    try:
        public_key = decode_key(key)
    except KeyFormatError as exc:
        raise CardError(f"publicKey: {exc}") from None
    return Card(public_key, tuple(_candidate(item) for item in candidates[:MAX_CANDIDATES]))
