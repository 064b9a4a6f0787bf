"""XEdDSA: signatures by an X25519 (WireGuard) key, checked by a plain Ed25519 verifier."""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from weron.wireguard import xeddsa
from weron.wireguard.crypto import PrivateKey

P = 2**255 - 19


def test_the_edwards_key_is_the_one_an_ed25519_seed_gives_its_x25519_twin() -> None:
    """Independent of our signing: an Ed25519 key and the X25519 key of the same hashed seed
    (libsodium's conversion) are one point; ours, from u alone, is it with sign bit 0."""
    for _ in range(20):
        seed = os.urandom(32)
        edwards = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        x25519 = X25519PrivateKey.from_private_bytes(hashlib.sha512(seed).digest()[:32])
        ours = xeddsa.edwards_public(x25519.public_key().public_bytes_raw())
        assert ours == edwards[:31] + bytes([edwards[31] & 0x7F])


def test_a_signature_verifies_for_its_key_and_message_only() -> None:
    for _ in range(50):
        key, other = PrivateKey.generate(), PrivateKey.generate()
        message = os.urandom(40)
        signature = xeddsa.sign(key.raw(), message)
        assert len(signature) == xeddsa.SIGNATURE_SIZE
        assert xeddsa.verify(key.public, message, signature)
        edwards = xeddsa.edwards_public(key.public)
        assert edwards is not None  # and OpenSSL's Ed25519 agrees with libsodium's:
        Ed25519PublicKey.from_public_bytes(edwards).verify(signature, message)
        assert not xeddsa.verify(other.public, message, signature)
        assert not xeddsa.verify(key.public, message + b"!", signature)
        tampered = bytearray(signature)
        tampered[40] ^= 1
        assert not xeddsa.verify(key.public, message, bytes(tampered))
        assert not xeddsa.verify(key.public, message, signature[:-1])


def test_any_32_bytes_sign_as_the_key_x25519_makes_of_them() -> None:
    """wg genkey clamps, a hand-made key may not: X25519 clamps when it uses it, so do we."""
    for raw in (bytes(32), b"\xff" * 32, os.urandom(32)):
        key = PrivateKey(raw)
        assert xeddsa.verify(key.public, b"m", xeddsa.sign(raw, b"m"))


def test_the_nonce_is_fresh_unless_given() -> None:
    key = PrivateKey.generate()
    assert xeddsa.sign(key.raw(), b"m") != xeddsa.sign(key.raw(), b"m")
    fixed = bytes(64)
    assert xeddsa.sign(key.raw(), b"m", fixed) == xeddsa.sign(key.raw(), b"m", fixed)


def test_public_values_with_no_edwards_key_verify_nothing() -> None:
    signature = xeddsa.sign(PrivateKey.generate().raw(), b"m")
    for public in ((P - 1).to_bytes(32, "little"), P.to_bytes(32, "little"), b"\xff" * 32, b""):
        assert xeddsa.edwards_public(public) is None
        assert not xeddsa.verify(public, b"m", signature)
    assert not xeddsa.verify(bytes(32), b"m", signature)  # u = 0: a point, not this signer's
