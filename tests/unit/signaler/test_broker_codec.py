"""How relayed messages and kicks travel through Redis: encoded once, decoded strictly."""

from __future__ import annotations

import pytest

from weron.signaler.broker import RelayedMessage
from weron.signaler.broker.redis import decode, encode_relay

INSTANCE = b"\x01\x02\x03\x04\x05\x06\x07\x08"


@pytest.mark.parametrize(
    "message",
    [
        RelayedMessage("a" * 32, True, b"\xff\xfe not UTF-8 in a text frame"),
        RelayedMessage("sender", False, b""),
        RelayedMessage("x", False, bytes(range(256)) * 100),
    ],
)
def test_relay_round_trip(message: RelayedMessage) -> None:
    assert decode(encode_relay(INSTANCE, message)) == (INSTANCE, message)


def test_kick() -> None:
    assert decode(b"K" + INSTANCE) == (INSTANCE, None)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "truncated"),
        (b"K\x01\x02", "truncated"),
        (b"X" + INSTANCE, "unknown broker message type"),
        (b"R" + INSTANCE, "malformed relay message"),
        (b"R" + INSTANCE + b"q\x00", "malformed relay message"),
        (b"R" + INSTANCE + b"t\x05abc", "truncated relay message"),
    ],
)
def test_malformed_messages_are_refused(data: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        decode(data)
