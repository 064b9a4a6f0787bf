"""A member's *card*: its WireGuard public key and the candidate addresses of its socket —
what members exchange to meet, whatever the rendezvous (signaler or DHT).

A card may carry a *proof*: the XEdDSA signature of its content by the key it names, over the
room (``context``) and the time it was made (``issued``, ms since the epoch), so that a card
in another member's name can be told from that member's own (docs/gonet-cards.md). Cards
without one (members of earlier versions) still decode; readers that ignore the two fields
read the same card as before.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass, replace
from typing import Final

from weron.json_object import json_object
from weron.wireguard import xeddsa
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.keys import KeyFormatError, decode_key, encode_key
from weron.wireguard.nat.paths import Candidate

MAX_CANDIDATES: Final = 16
_SIGNED: Final = b"weron gonet card 1\0"


class CardError(ValueError):
    """A payload that is not a member card."""


@dataclass(frozen=True, slots=True)
class Card:
    public_key: bytes
    candidates: tuple[Candidate, ...]
    issued: int | None = None  # ms since the epoch, with a proof
    proof: bytes | None = None

    @property
    def id(self) -> str:
        return encode_key(self.public_key)

    def encode(self) -> bytes:
        document: dict[str, object] = {
            "publicKey": self.id,
            "candidates": [c.encode() for c in self.candidates],
        }
        if self.proof is not None:
            document["issued"] = self.issued
            document["proof"] = base64.b64encode(self.proof).decode("ascii")
        return json.dumps(document, separators=(",", ":")).encode()

    def signed(self, key: PrivateKey, context: bytes, issued: int) -> Card:
        """This card with the proof that ``key`` (the key it names) made it, for ``context``
        (the room) at ``issued``."""
        unsigned = replace(self, issued=issued, proof=None)
        return replace(unsigned, proof=xeddsa.sign(key.raw(), unsigned._signed_part(context)))

    def proven(self, context: bytes) -> bool:
        """Whether the card carries a proof by the key it names, made for ``context``."""
        if self.proof is None or self.issued is None:
            return False
        return xeddsa.verify(self.public_key, self._signed_part(context), self.proof)

    def _signed_part(self, context: bytes) -> bytes:
        assert self.issued is not None
        return b"".join(
            (
                _SIGNED,
                struct.pack(">H", len(context)),
                context,
                self.public_key,
                struct.pack(">Q", self.issued),
                "\n".join(c.encode() for c in self.candidates).encode(),
            )
        )


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
    issued, proof = document.get("issued"), document.get("proof")
    if proof is None:
        issued = None
    elif not (type(issued) is int and 0 <= issued < 1 << 63 and isinstance(proof, str)):
        raise CardError("a proof (string) comes with issued (ms since the epoch)")
    else:
        try:
            proof = base64.b64decode(proof, validate=True)
        except binascii.Error:
            raise CardError("proof: not base64") from None
    return Card(
        public_key,
        tuple(_candidate(item) for item in candidates[:MAX_CANDIDATES]),
        issued,
        proof,
    )
