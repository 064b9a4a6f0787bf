"""The mDNS adapter where it cannot run: names pass through to the engine, one warning.
(Lookups against responders run in a namespace: tests/netlab/test_mdns_candidates.py.)"""

from __future__ import annotations

import socket

import pytest

from weron.webrtc import mdns_resolver
from weron.webrtc.mdns_resolver import MdnsResolver

HIDDEN = "candidate:1 1 udp 2113937151 0a1b2c3d-0000-4000-8000-000000000001.local 5000 typ host"


async def test_without_an_mdns_socket_candidates_pass_unchanged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[tuple[str, int]] = []

    def refuse(group: tuple[str, int]) -> socket.socket:
        attempts.append(group)
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(mdns_resolver, "_socket", refuse)
    resolver = MdnsResolver(timeout=0.1)
    assert await resolver.resolve_candidate(HIDDEN) == HIDDEN
    assert await resolver.resolve_candidate(HIDDEN) == HIDDEN
    assert len(attempts) == 1  # tried once, said once
    warnings = [r for r in caplog.records if "no mDNS socket" in r.getMessage()]
    assert len(warnings) == 1
    resolver.close()


async def test_addresses_and_other_names_are_not_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    def unexpected(group: tuple[str, int]) -> socket.socket:
        raise AssertionError("no socket for what needs no lookup")

    monkeypatch.setattr(mdns_resolver, "_socket", unexpected)
    resolver = MdnsResolver()
    plain = "candidate:1 1 udp 2130706431 192.168.1.2 5000 typ host"
    assert await resolver.resolve_candidate(plain) == plain
    assert await resolver.resolve("printer.example.com") is None
    resolver.close()
