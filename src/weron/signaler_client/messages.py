"""Signaling message shapes exchanged between peers through the relay
(docs/wire-protocol.md#signaling-messages).

Pure data and JSON: no crypto, no I/O. ``payload`` is raw bytes here and base64 on the wire
(Go's encoding of ``[]byte``: standard alphabet with padding).
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from dataclasses import dataclass
from typing import Any

from weron.json_object import json_object


class SignalingMessageError(ValueError):
    """A decrypted message is not a signaling message we understand."""


class MessageType(enum.StrEnum):
    INTRODUCTION = "introduction"
    OFFER = "offer"
    ANSWER = "answer"
    CANDIDATE = "candidate"


EXCHANGE_TYPES = frozenset({MessageType.OFFER, MessageType.ANSWER, MessageType.CANDIDATE})


@dataclass(frozen=True, slots=True)
class Introduction:
    """A newcomer announcing its id to every member of the community."""

    sender: str


@dataclass(frozen=True, slots=True)
class Exchange:
    """An offer, answer or candidate addressed from one peer to another."""

    type: MessageType
    sender: str
    recipient: str
    payload: bytes

    def __post_init__(self) -> None:
        if self.type not in EXCHANGE_TYPES:
            raise SignalingMessageError(f"{self.type!s} is not an offer, answer or candidate")


SignalingMessage = Introduction | Exchange


def encode_message(message: SignalingMessage) -> bytes:
    """JSON bytes of a message, field names as the Go peers expect them."""
    if isinstance(message, Introduction):
        document: dict[str, str] = {"type": MessageType.INTRODUCTION.value, "from": message.sender}
    else:
        document = {
            "type": message.type.value,
            "from": message.sender,
            "to": message.recipient,
            "payload": base64.b64encode(message.payload).decode("ascii"),
        }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _string_field(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise SignalingMessageError(f"field {name!r} must be a string, got {type(value).__name__}")
    return value


def decode_message(data: bytes) -> SignalingMessage:
    """Parse JSON bytes into a message; any deviation raises :class:`SignalingMessageError`."""
    document = json_object(data, "signaling message", SignalingMessageError)
    kind = _string_field(document, "type")
    try:
        message_type = MessageType(kind)
    except ValueError:
        raise SignalingMessageError(f"unknown message type {kind[:64]!r}") from None
    sender = _string_field(document, "from")
    if message_type is MessageType.INTRODUCTION:
        return Introduction(sender=sender)
    recipient = _string_field(document, "to")
    encoded = document.get("payload")
    if encoded is None:
        payload = b""
    elif isinstance(encoded, str):
        try:
            payload = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise SignalingMessageError(f"payload is not valid base64: {exc}") from None
    else:
        raise SignalingMessageError(
            f"field 'payload' must be a base64 string, got {type(encoded).__name__}"
        )
    return Exchange(type=message_type, sender=sender, recipient=recipient, payload=payload)


def encode_session_description(kind: MessageType, sdp: str) -> bytes:
    """Payload of an offer/answer: the JSON session description the Go peers marshal."""
    if kind not in (MessageType.OFFER, MessageType.ANSWER):
        raise SignalingMessageError(f"a session description is an offer or an answer, not {kind!s}")
    return json.dumps({"type": kind.value, "sdp": sdp}, separators=(",", ":")).encode("utf-8")


def decode_session_description(payload: bytes) -> tuple[MessageType, str]:
    """Inverse of :func:`encode_session_description`, with clear errors."""
    document = json_object(payload, "session description", SignalingMessageError)
    kind = _string_field(document, "type")
    if kind not in (MessageType.OFFER.value, MessageType.ANSWER.value):
        raise SignalingMessageError(
            f"session description type must be offer or answer, got {kind[:64]!r}"
        )
    return MessageType(kind), _string_field(document, "sdp")
