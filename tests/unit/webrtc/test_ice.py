"""The --ice flag format and candidate lines."""

from __future__ import annotations

import pytest

from weron.webrtc import IceServer, candidate_line
from weron.webrtc.ice import IceConfigError, parse_ice_server, peer_config


def test_stun_and_turn_entries() -> None:
    assert parse_ice_server("stun:stun.example:3478") == IceServer("stun:stun.example:3478")
    turn = parse_ice_server("user:pa:ss@turn:turn.example:3478?transport=tcp")
    assert turn == IceServer("turn:turn.example:3478?transport=tcp", "user", "pa:ss")
    assert turn.is_turn


@pytest.mark.parametrize(
    "entry", ["turn:host:3478", "user@turn:host:3478", "u:p@stun:host", "stun:", "http://x"]
)
def test_bad_entries_are_explained(entry: str) -> None:
    with pytest.raises(IceConfigError):
        parse_ice_server(entry)


def test_force_relay_needs_a_turn_server() -> None:
    with pytest.raises(IceConfigError, match="no TURN server"):
        peer_config(["stun:host:3478"], force_relay=True)
    config = peer_config(["u:p@turn:host:3478", ""], force_relay=True)
    assert config.relay_only and len(config.ice_servers) == 1


def test_candidate_lines() -> None:
    line = "candidate:1 1 udp 2130706431 10.0.0.1 50000 typ host"
    assert candidate_line(line) == line
    assert candidate_line("a=" + line + "\r\n") == line
    for bad in ("", "candidate:1 1 udp", "hello world", line + "\nmore"):
        with pytest.raises(ValueError):
            candidate_line(bad)
