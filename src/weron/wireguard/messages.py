"""WireGuard's four message types and their exact layouts (WireGuard paper §5.4).

Every message starts with a little-endian 32-bit word: the type in the low byte and three zero
(reserved) bytes, which is what tells WireGuard apart from STUN on a shared socket.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

CONSTRUCTION: Final = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER: Final = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1: Final = b"mac1----"
LABEL_COOKIE: Final = b"cookie--"

INITIATION: Final = 1
RESPONSE: Final = 2
COOKIE_REPLY: Final = 3
TRANSPORT: Final = 4

INITIATION_SIZE: Final = 148
RESPONSE_SIZE: Final = 92
COOKIE_REPLY_SIZE: Final = 64
TRANSPORT_HEADER_SIZE: Final = 16
TRANSPORT_MIN_SIZE: Final = 32  # header + the tag of an empty (keepalive) payload
MAC_SIZE: Final = 16
COOKIE_NONCE_SIZE: Final = 24

# Offsets of MAC1 and MAC2: each covers everything before it.
INITIATION_MAC1: Final = INITIATION_SIZE - 2 * MAC_SIZE  # 116
RESPONSE_MAC1: Final = RESPONSE_SIZE - 2 * MAC_SIZE  # 60

_INITIATION: Final = struct.Struct("<II32s48s28s16s16s")
_RESPONSE: Final = struct.Struct("<III32s16s16s16s")
_COOKIE_REPLY: Final = struct.Struct("<II24s32s")
TRANSPORT_HEADER: Final = struct.Struct("<IIQ")


class WireGuardMessageError(ValueError):
    """Bytes that are not a well-formed WireGuard message."""


@dataclass(frozen=True, slots=True)
class Initiation:
    sender: int
    ephemeral: bytes
    encrypted_static: bytes
    encrypted_timestamp: bytes
    mac1: bytes
    mac2: bytes

    def pack(self) -> bytes:
        return _INITIATION.pack(
            INITIATION,
            self.sender,
            self.ephemeral,
            self.encrypted_static,
            self.encrypted_timestamp,
            self.mac1,
            self.mac2,
        )


@dataclass(frozen=True, slots=True)
class Response:
    sender: int
    receiver: int
    ephemeral: bytes
    encrypted_nothing: bytes
    mac1: bytes
    mac2: bytes

    def pack(self) -> bytes:
        return _RESPONSE.pack(
            RESPONSE,
            self.sender,
            self.receiver,
            self.ephemeral,
            self.encrypted_nothing,
            self.mac1,
            self.mac2,
        )


@dataclass(frozen=True, slots=True)
class CookieReply:
    receiver: int
    nonce: bytes
    encrypted_cookie: bytes

    def pack(self) -> bytes:
        return _COOKIE_REPLY.pack(COOKIE_REPLY, self.receiver, self.nonce, self.encrypted_cookie)


def message_type(data: bytes) -> int:
    """The type of a datagram that looks like WireGuard (1-4, reserved bytes zero), else 0."""
    if len(data) < 4 or data[1] or data[2] or data[3] or not 1 <= data[0] <= 4:
        return 0
    return data[0]


def parse_initiation(data: bytes) -> Initiation:
    if len(data) != INITIATION_SIZE:
        raise WireGuardMessageError(f"initiation must be {INITIATION_SIZE} bytes, got {len(data)}")
    _, sender, ephemeral, static, timestamp, mac1, mac2 = _INITIATION.unpack(data)
    return Initiation(sender, ephemeral, static, timestamp, mac1, mac2)


def parse_response(data: bytes) -> Response:
    if len(data) != RESPONSE_SIZE:
        raise WireGuardMessageError(f"response must be {RESPONSE_SIZE} bytes, got {len(data)}")
    _, sender, receiver, ephemeral, nothing, mac1, mac2 = _RESPONSE.unpack(data)
    return Response(sender, receiver, ephemeral, nothing, mac1, mac2)


def parse_cookie_reply(data: bytes) -> CookieReply:
    if len(data) != COOKIE_REPLY_SIZE:
        raise WireGuardMessageError(
            f"cookie reply must be {COOKIE_REPLY_SIZE} bytes, got {len(data)}"
        )
    _, receiver, nonce, cookie = _COOKIE_REPLY.unpack(data)
    return CookieReply(receiver, nonce, cookie)
