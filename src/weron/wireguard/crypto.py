"""The primitives the WireGuard paper names, built only from maintained libraries: BLAKE2s
(hashlib), X25519 and ChaCha20-Poly1305 (cryptography), XChaCha20-Poly1305 (libsodium via PyNaCl).

Nothing here is a home-made primitive: HMAC and the HKDF-style ``kdf`` are the constructions the
paper defines on top of BLAKE2s.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

KEY_SIZE: Final = 32
TAG_SIZE: Final = 16
TIMESTAMP_SIZE: Final = 12
_TAI64_EPOCH: Final = 0x400000000000000A  # TAI64 label of 1970-01-01 00:00:10 TAI (= Unix 0)
_WHITENER_MASK: Final = 0xFFFFFF  # round nanoseconds down (~16 ms): no fine timing leak


class DecryptError(ValueError):
    """A ciphertext does not authenticate under the key and associated data."""


def hash_(*parts: bytes) -> bytes:
    """HASH(parts...): BLAKE2s-256 of the concatenation."""
    digest = hashlib.blake2s()
    for part in parts:
        digest.update(part)
    return digest.digest()


def mac(key: bytes, data: bytes) -> bytes:
    """MAC(key, data): keyed BLAKE2s with a 16-byte output (MAC1, MAC2, cookies)."""
    return hashlib.blake2s(data, digest_size=16, key=key).digest()


def hmac_(key: bytes, data: bytes) -> bytes:
    """HMAC(key, data) with BLAKE2s-256, as the paper's KDF uses it."""
    return hmac.digest(key, data, hashlib.blake2s)


def kdf1(key: bytes, data: bytes) -> bytes:
    return hmac_(hmac_(key, data), b"\x01")


def kdf2(key: bytes, data: bytes) -> tuple[bytes, bytes]:
    prk = hmac_(key, data)
    first = hmac_(prk, b"\x01")
    return first, hmac_(prk, first + b"\x02")


def kdf3(key: bytes, data: bytes) -> tuple[bytes, bytes, bytes]:
    prk = hmac_(key, data)
    first = hmac_(prk, b"\x01")
    second = hmac_(prk, first + b"\x02")
    return first, second, hmac_(prk, second + b"\x03")


def nonce(counter: int) -> bytes:
    """The AEAD nonce: 32 zero bits then the 64-bit little-endian counter."""
    return b"\x00\x00\x00\x00" + counter.to_bytes(8, "little")


def aead_encrypt(key: bytes, counter: int, plaintext: bytes, associated: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(nonce(counter), plaintext, associated)


def aead_decrypt(key: bytes, counter: int, ciphertext: bytes, associated: bytes) -> bytes:
    try:
        return ChaCha20Poly1305(key).decrypt(nonce(counter), ciphertext, associated)
    except InvalidTag:
        raise DecryptError("does not authenticate") from None


def xaead_encrypt(key: bytes, nonce24: bytes, plaintext: bytes, associated: bytes) -> bytes:
    return crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, associated, nonce24, key)


def xaead_decrypt(key: bytes, nonce24: bytes, ciphertext: bytes, associated: bytes) -> bytes:
    try:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, associated, nonce24, key)
    except CryptoError:
        raise DecryptError("does not authenticate") from None


class PrivateKey:
    """An X25519 private key with its public half computed once."""

    __slots__ = ("_key", "public")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_SIZE:
            raise ValueError(f"a private key is {KEY_SIZE} bytes, got {len(raw)}")
        self._key = X25519PrivateKey.from_private_bytes(raw)
        self.public: bytes = self._key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(X25519PrivateKey.generate().private_bytes_raw())

    def raw(self) -> bytes:
        return self._key.private_bytes_raw()

    def exchange(self, public: bytes) -> bytes:
        """DH(private, public); a low-order public key (all-zero result) raises ValueError."""
        return self._key.exchange(X25519PublicKey.from_public_bytes(public))


def tai64n(unix_ns: int | None = None) -> bytes:
    """TAI64N label of a wall-clock time (12 bytes, big-endian, so byte order = time order)."""
    ns = time.time_ns() if unix_ns is None else unix_ns
    seconds, nanoseconds = divmod(ns, 1_000_000_000)
    nanoseconds &= ~_WHITENER_MASK
    return (_TAI64_EPOCH + seconds).to_bytes(8, "big") + nanoseconds.to_bytes(4, "big")
