"""The envelope must be byte-compatible with the Go peers: AES-256-GCM, SHA-224 key + 4 zeros."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from weron.signaler_client.envelope import Envelope, EnvelopeError, derive_key

PLAINTEXT = b'{"type":"introduction","from":"a"}'
# nonce bytes(range(12)), key "mykey", PLAINTEXT: computed once with the low-level API.
KNOWN_VECTOR = bytes.fromhex(
    "000102030405060708090a0bfc46ea113f5aae7918049400b34f8c2cbe5718615c8ae6c6636c50662c16d887"
    "517f3e63a2a1ef7e0ab4db5447734dbe2b37"
)


def expected_key(key: str) -> bytes:
    return hashlib.sha224(key.encode("utf-8")).digest() + b"\x00\x00\x00\x00"


def gcm_encrypt(key: str, nonce: bytes, plaintext: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(expected_key(key)), modes.GCM(nonce)).encryptor()
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    return nonce + ciphertext + encryptor.tag


def gcm_decrypt(key: str, data: bytes) -> bytes:
    nonce, ciphertext, tag = data[:12], data[12:-16], data[-16:]
    decryptor = Cipher(algorithms.AES(expected_key(key)), modes.GCM(nonce, tag)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


@pytest.mark.parametrize("key", ["mykey", "", "ключ 🔑"])
def test_derive_key_is_sha224_padded_with_zeros(key: str) -> None:
    derived = derive_key(key)
    assert len(derived) == 32
    assert derived == expected_key(key)
    assert derived.endswith(bytes(4))


def test_seal_decrypts_with_independent_aes_gcm() -> None:
    sealed = Envelope("mykey").seal(PLAINTEXT)
    assert len(sealed) == 12 + len(PLAINTEXT) + 16
    assert gcm_decrypt("mykey", sealed) == PLAINTEXT


def test_open_accepts_independent_aes_gcm() -> None:
    data = gcm_encrypt("other key", bytes(12), b"\xffnot utf-8\x00")
    assert Envelope("other key").open(data) == b"\xffnot utf-8\x00"


def test_known_vector() -> None:
    assert gcm_encrypt("mykey", bytes(range(12)), PLAINTEXT) == KNOWN_VECTOR
    assert Envelope("mykey").open(KNOWN_VECTOR) == PLAINTEXT


def test_empty_plaintext_round_trip() -> None:
    envelope = Envelope("k")
    sealed = envelope.seal(b"")
    assert len(sealed) == 28
    assert envelope.open(sealed) == b""


def test_fresh_nonce_per_seal() -> None:
    envelope = Envelope("mykey")
    first, second = envelope.seal(PLAINTEXT), envelope.seal(PLAINTEXT)
    assert first[:12] != second[:12]
    assert first != second
    assert envelope.open(first) == envelope.open(second) == PLAINTEXT


def test_wrong_key_is_rejected() -> None:
    with pytest.raises(EnvelopeError):
        Envelope("wrong").open(KNOWN_VECTOR)


@pytest.mark.parametrize("size", [0, 1, 12, 27])
def test_truncated_data_is_rejected(size: int) -> None:
    with pytest.raises(EnvelopeError, match="too short"):
        Envelope("mykey").open(KNOWN_VECTOR[:size])


@pytest.mark.parametrize("position", [0, 11, 12, len(KNOWN_VECTOR) - 17, len(KNOWN_VECTOR) - 1])
def test_flipped_bit_is_rejected(position: int) -> None:
    tampered = bytearray(KNOWN_VECTOR)
    tampered[position] ^= 0x01
    with pytest.raises(EnvelopeError):
        Envelope("mykey").open(bytes(tampered))


def test_envelope_error_is_a_value_error() -> None:
    assert issubclass(EnvelopeError, ValueError)
