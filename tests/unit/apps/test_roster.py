"""gonet's chat messages and roster, and the shared console escaping."""

from __future__ import annotations

import contextlib
import random

import pytest

from weron.apps.console import escape, escape_controls
from weron.apps.roster import (
    Ack,
    Bye,
    ChatMessageError,
    Hello,
    Line,
    Posted,
    Roster,
    Version,
    decode_chat,
    encode_chat,
    tag,
)


def test_chat_messages_round_trip() -> None:
    epoch = "0123456789abcdef"
    for message in (
        Hello("alice"),
        Line("hi there: 1 + 1 = 2"),
        Bye(),
        Version(2),
        Posted(epoch, 1, "with  spaces and 7 7"),
        Posted(epoch, 10**17, "x" * 1000),
        Ack(epoch, 42),
    ):
        assert decode_chat(encode_chat(message)) == message
    assert encode_chat(Posted(epoch, 3, "hi")) == b"LINE 0123456789abcdef 3 hi\n"
    assert encode_chat(Ack(epoch, 3)) == b"ACK 0123456789abcdef 3\n"


def test_malformed_chat_messages_are_rejected() -> None:
    for data in (
        b"",
        b"HELLO",
        b"HELLO bad name",
        b"HELLO " + b"x" * 33,
        b"MSG ",
        b"MSG " + b"x" * 1001,
        b"MSG \x1b[2J",
        b"MSG caf\xc3\xa9",
        b"BYE now",
        b"WHAT ever",
        b"\xff\xfe",
        b"VERSION",
        b"VERSION 02",
        b"LINE 0123456789abcdef 1 ",
        b"LINE 0123456789abcdef 0 zero",
        b"LINE 0123456789ABCDEF 1 upper case",
        b"LINE 0123456789abcde 1 short epoch",
        b"LINE 0123456789abcdef 01 leading zero",
        b"LINE 0123456789abcdef 1 " + b"x" * 1001,
        b"ACK 0123456789abcdef",
        b"ACK 0123456789abcdef 1 more",
        b"ACK 0123456789abcdef 1234567890123456789",
    ):
        with pytest.raises(ChatMessageError):
            decode_chat(data)
    rng = random.Random(5)
    for length in range(64):
        data = rng.randbytes(length)
        with contextlib.suppress(ChatMessageError):  # anything else escaping fails the test
            assert isinstance(decode_chat(data), Hello | Line | Bye | Version | Posted | Ack)


def test_names_shown_are_unique_and_the_same_on_every_member() -> None:
    keys = [bytes([n]) * 32 for n in range(4)]
    rosters = [
        Roster(key, name) for key, name in zip(keys, ["ann", "bob", "ann", "cy"], strict=True)
    ]
    for roster in rosters:
        for key, name in zip(keys, ["ann", "bob", "ann", "cy"], strict=True):
            if key != roster.own_key:
                assert roster.hello(key, name, 0.0)
    shown = [[roster.display(key) for key in keys] for roster in rosters]
    assert all(view == shown[0] for view in shown)
    assert shown[0] == [f"ann#{tag(keys[0])}", "bob", f"ann#{tag(keys[2])}", "cy"]
    assert rosters[0].own_display == f"ann#{tag(keys[0])}"
    # Once the other ann leaves, the name is plain again.
    assert rosters[0].leave(keys[2]) == f"ann#{tag(keys[2])}"
    assert rosters[0].own_display == "ann"


def test_hello_leave_and_expiry() -> None:
    roster = Roster(b"\x00" * 32, "me")
    bob = b"\x01" * 32
    assert roster.hello(bob, "bob", 0.0) is True
    assert roster.hello(bob, "bob", 1.0) is False
    assert roster.expire(5.0, timeout=5.0) == []
    roster.seen(bob, 4.0)
    assert roster.expire(8.9, timeout=5.0) == []
    assert roster.expire(9.0, timeout=5.0) == [(bob, "bob")]
    assert roster.leave(bob) is None and bob not in roster


def test_escape_never_lets_terminal_controls_through() -> None:
    assert escape("plain text") == "plain text"
    assert escape("a\x1b[2Jb\x07\r\n") == "a\\x1b[2Jb\\x07\\x0d\\x0a"
    assert escape("caf\u00e9 \u202e \U0001f600 \\") == "caf\\xe9 \\u202e \\U0001f600 \\\\"
    every = "".join(chr(n) for n in range(0x110000) if not 0xD800 <= n < 0xE000)
    assert all(" " <= char <= "~" for char in escape(every))


def test_escape_controls_keeps_printable_unicode_for_weron_chat() -> None:
    assert escape_controls("café 😀 plain") == "café 😀 plain"
    assert escape_controls("a\x1b[2Jb\x07\t\u202e\\") == "a\\x1b[2Jb\\x07\\x09\\u202e\\\\"
