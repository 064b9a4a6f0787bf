"""The Noise_IKpsk2 handshake exactly as WireGuard runs it (paper §5.4.2-§5.4.3): pure
functions from keys and messages to messages, chaining keys, hashes and transport keys.

Who the peers are, timestamps, indices and timers are the device's business (``device.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from weron.wireguard.crypto import (
    KEY_SIZE,
    PrivateKey,
    aead_decrypt,
    aead_encrypt,
    hash_,
    kdf1,
    kdf2,
    kdf3,
)
from weron.wireguard.messages import (
    CONSTRUCTION,
    IDENTIFIER,
    MAC_SIZE,
    Initiation,
    Response,
)

INITIAL_CHAINING_KEY: Final = hash_(CONSTRUCTION)
INITIAL_HASH: Final = hash_(INITIAL_CHAINING_KEY, IDENTIFIER)
NO_PSK: Final = bytes(KEY_SIZE)
_NO_MAC: Final = bytes(MAC_SIZE)


@dataclass(slots=True)
class HandshakeState:
    """Where a half-done handshake stands: the chaining key, the transcript hash, and the
    ephemeral key of the side that is waiting."""

    chaining_key: bytes
    hash: bytes
    ephemeral: PrivateKey | None = None
    remote_ephemeral: bytes = b""


@dataclass(frozen=True, slots=True)
class TransportKeys:
    send: bytes
    receive: bytes


@dataclass(frozen=True, slots=True)
class ConsumedInitiation:
    peer_public_key: bytes
    timestamp: bytes
    state: HandshakeState


def create_initiation(
    static: PrivateKey,
    peer_public_key: bytes,
    static_static: bytes,
    ephemeral: PrivateKey,
    sender: int,
    timestamp: bytes,
) -> tuple[Initiation, HandshakeState]:
    """The initiation (MACs still zero) and the state to consume the response with.
    ``static_static`` is DH(static, peer's static), computed once per peer."""
    chaining_key = kdf1(INITIAL_CHAINING_KEY, ephemeral.public)
    hash_value = hash_(hash_(INITIAL_HASH, peer_public_key), ephemeral.public)
    chaining_key, key = kdf2(chaining_key, ephemeral.exchange(peer_public_key))
    encrypted_static = aead_encrypt(key, 0, static.public, hash_value)
    hash_value = hash_(hash_value, encrypted_static)
    chaining_key, key = kdf2(chaining_key, static_static)
    encrypted_timestamp = aead_encrypt(key, 0, timestamp, hash_value)
    hash_value = hash_(hash_value, encrypted_timestamp)
    message = Initiation(
        sender, ephemeral.public, encrypted_static, encrypted_timestamp, _NO_MAC, _NO_MAC
    )
    return message, HandshakeState(chaining_key, hash_value, ephemeral)


def consume_initiation(
    static: PrivateKey, message: Initiation, static_static_of: dict[bytes, bytes]
) -> ConsumedInitiation:
    """Decrypt who is calling and when; raises DecryptError (or KeyError for a static key
    we do not know, ValueError for a low-order ephemeral)."""
    chaining_key = kdf1(INITIAL_CHAINING_KEY, message.ephemeral)
    hash_value = hash_(hash_(INITIAL_HASH, static.public), message.ephemeral)
    chaining_key, key = kdf2(chaining_key, static.exchange(message.ephemeral))
    peer_public_key = aead_decrypt(key, 0, message.encrypted_static, hash_value)
    hash_value = hash_(hash_value, message.encrypted_static)
    chaining_key, key = kdf2(chaining_key, static_static_of[peer_public_key])
    timestamp = aead_decrypt(key, 0, message.encrypted_timestamp, hash_value)
    hash_value = hash_(hash_value, message.encrypted_timestamp)
    state = HandshakeState(chaining_key, hash_value, remote_ephemeral=message.ephemeral)
    return ConsumedInitiation(peer_public_key, timestamp, state)


def create_response(
    state: HandshakeState,
    peer_public_key: bytes,
    psk: bytes,
    ephemeral: PrivateKey,
    sender: int,
    receiver: int,
) -> tuple[Response, TransportKeys]:
    """The responder's answer (MACs still zero) and its transport keys."""
    chaining_key = kdf1(state.chaining_key, ephemeral.public)
    hash_value = hash_(state.hash, ephemeral.public)
    chaining_key = kdf1(chaining_key, ephemeral.exchange(state.remote_ephemeral))
    chaining_key = kdf1(chaining_key, ephemeral.exchange(peer_public_key))
    chaining_key, tau, key = kdf3(chaining_key, psk)
    hash_value = hash_(hash_value, tau)
    encrypted_nothing = aead_encrypt(key, 0, b"", hash_value)
    receive, send = kdf2(chaining_key, b"")
    message = Response(sender, receiver, ephemeral.public, encrypted_nothing, _NO_MAC, _NO_MAC)
    return message, TransportKeys(send=send, receive=receive)


def consume_response(
    state: HandshakeState, static: PrivateKey, psk: bytes, message: Response
) -> TransportKeys:
    """The initiator's transport keys; DecryptError when the responder is not who we called
    or does not hold the same pre-shared key."""
    assert state.ephemeral is not None
    chaining_key = kdf1(state.chaining_key, message.ephemeral)
    hash_value = hash_(state.hash, message.ephemeral)
    chaining_key = kdf1(chaining_key, state.ephemeral.exchange(message.ephemeral))
    chaining_key = kdf1(chaining_key, static.exchange(message.ephemeral))
    chaining_key, tau, key = kdf3(chaining_key, psk)
    hash_value = hash_(hash_value, tau)
    aead_decrypt(key, 0, message.encrypted_nothing, hash_value)
    send, receive = kdf2(chaining_key, b"")
    return TransportKeys(send=send, receive=receive)
