"""The encrypted envelope around every relayed signaling message (docs/wire-protocol.md#envelope).

``nonce(12) || AES-256-GCM(ciphertext || tag(16))`` with ``key = SHA-224(key) || 0x00000000``.
The derivation is weak (no salt, no stretching) but it is what the original speaks; keeping it
is what lets our peers share a community with Go peers.
"""

from __future__ import annotations

import hashlib
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
KEY_SIZE: Final = 32


class EnvelopeError(ValueError):
    """The data is not an envelope sealed with our key (wrong key, truncated, tampered)."""


def derive_key(key: str) -> bytes:
    """Compatible key derivation: SHA-224 of the UTF-8 key, padded with four zero bytes."""
    digest = hashlib.sha224(key.encode("utf-8")).digest()
    return digest + bytes(KEY_SIZE - len(digest))


class Envelope:
    """Seals and opens relayed messages with one community key."""

    __slots__ = ("_aead",)

    def __init__(self, key: str) -> None:
        self._aead = AESGCM(derive_key(key))

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, None)

    def open(self, data: bytes) -> bytes:
        if len(data) < NONCE_SIZE + TAG_SIZE:
            raise EnvelopeError(
                f"envelope too short: {len(data)} bytes, need at least {NONCE_SIZE + TAG_SIZE}"
            )
        try:
            return self._aead.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], None)
        except InvalidTag:
            raise EnvelopeError("envelope does not authenticate (wrong key or tampered)") from None
