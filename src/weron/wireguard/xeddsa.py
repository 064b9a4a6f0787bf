"""Signatures made with a WireGuard (X25519) key: XEdDSA, as Signal specifies it.

Why: a gonet card names a member's WireGuard public key, and anyone with the room key can
write one (docs/gonet-cards.md). A signature by that key ties the card to its member without
a second key to keep: every member, and every identity file ``wg genkey`` wrote, can sign.

How. An X25519 key is a scalar ``k`` on the Montgomery form of the curve Ed25519 lives on. The
Edwards point ``E = kB`` has the Montgomery u-coordinate of the X25519 public key; its sign bit
is lost in u, so the signing key is the one of ``A = (E.y, sign 0)``: ``a = k`` or ``-k``. The
signature is then an ordinary Ed25519 one by ``a`` (the nonce hashed from ``a``, the message
and 64 random bytes), which any Ed25519 verifier checks against ``A``, computed from u alone:
``y = (u - 1) / (u + 1)``. Signing uses libsodium's constant-time scalar and point operations
(PyNaCl); verifying, libsodium's Ed25519 and one field inversion of public values (some 80 µs
in all: a member with the room key may send many cards). Nothing here is curve arithmetic of
our own.
"""

from __future__ import annotations

import hashlib
import os
from typing import Final

import nacl.bindings as sodium
from nacl.exceptions import CryptoError

SIGNATURE_SIZE: Final = 64
_P: Final = 2**255 - 19
_HASH1_PREFIX: Final = b"\xfe" + b"\xff" * 31  # hash_1: SHA-512 of (2^256 - 2) || X


def _reduce(digest: bytes) -> bytes:
    """A 64-byte hash as a scalar modulo the group order."""
    return bytes(sodium.crypto_core_ed25519_scalar_reduce(digest))


def _clamped(private: bytes) -> bytes:
    """The scalar X25519 multiplies by (RFC 7748): what the key is, whatever bits were kept."""
    scalar = bytearray(private)
    scalar[0] &= 248
    scalar[31] &= 127
    scalar[31] |= 64
    return bytes(scalar)


def sign(private: bytes, message: bytes, random: bytes | None = None) -> bytes:
    """The 64-byte signature of ``message`` by the X25519 private key ``private``."""
    k = _clamped(private)
    edwards = bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(k))
    a = _reduce(k + bytes(32))
    if edwards[31] & 0x80:
        a = bytes(sodium.crypto_core_ed25519_scalar_negate(a))
    public = edwards[:31] + bytes([edwards[31] & 0x7F])
    z = os.urandom(64) if random is None else random
    r = _reduce(hashlib.sha512(_HASH1_PREFIX + a + message + z).digest())
    big_r = bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(r))
    h = _reduce(hashlib.sha512(big_r + public + message).digest())
    s = sodium.crypto_core_ed25519_scalar_add(r, sodium.crypto_core_ed25519_scalar_mul(h, a))
    return big_r + bytes(s)


def edwards_public(public: bytes) -> bytes | None:
    """The Ed25519 public key an X25519 public key signs with, None for a u with none."""
    u = int.from_bytes(public, "little")
    if len(public) != 32 or u >= _P or (u + 1) % _P == 0:
        return None
    y = (u - 1) * pow(u + 1, -1, _P) % _P
    return y.to_bytes(32, "little")  # sign bit 0


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``message`` signed by the X25519 public key ``public``."""
    edwards = edwards_public(public)
    if edwards is None or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        sodium.crypto_sign_open(signature + message, edwards)
    except CryptoError:  # BadSignatureError, or a point libsodium refuses
        return False
    return True
