"""Browsers' hidden host candidates (``<uuid>.local``) in a namespace of this test's own, with
multicast routed over lo and two addresses on a veth pair: our resolver against a responder
(and a hostile one's packets), and both engines connecting to a peer whose only candidates are
such names: one of ours disguised as Chromium, and real Chromium (docs/browser.md#local-
candidates)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netlab.lab import lab_unavailable
from tests.devtools import chromium_missing
from weron.webrtc.backends import libdatachannel_problem

_ROOT = Path(__file__).resolve().parents[2]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def namespace() -> Iterator[str]:
    if (reason := lab_unavailable()) is not None:
        pytest.skip(reason)
    name = f"bhmdns{os.getpid() % 100000:05d}{time.monotonic_ns() % 997:03d}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up", "multicast", "on")
        _ip("-n", name, "route", "add", "224.0.0.0/4", "dev", "lo")
        _ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        for index, link in enumerate(("v0", "v1"), start=1):
            _ip("-n", name, "addr", "add", f"192.0.2.{index}/24", "dev", link)
            _ip("-n", name, "link", "set", link, "up")
        _ip("-n", name, "route", "add", "default", "dev", "v0")  # Chromium gathers nothing without
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def probe(namespace: str, *args: str) -> dict[str, object]:
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.netlab.mdns_probe", *args],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    parsed: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return parsed


def test_resolver_answers_known_names_only(namespace: str) -> None:
    result = probe(namespace, "resolve")
    assert result["known"] == "192.0.2.77"  # despite garbage and a decoy answer before it
    assert result["unknown"] is None
    assert result["not_local"] is None
    assert isinstance(result["queries"], int) and result["queries"] >= 2


@pytest.mark.parametrize("backend", ["aiortc", "libdatachannel"])
def test_engines_connect_to_a_peer_behind_local_names(namespace: str, backend: str) -> None:
    if backend == "libdatachannel" and (reason := libdatachannel_problem()) is not None:
        pytest.skip(reason)
    result = probe(namespace, "connect", backend)
    assert result["received"] == "hello over a hidden candidate"
    hidden, added = result["hidden"], result["added"]
    assert isinstance(hidden, list) and isinstance(added, list) and hidden
    assert all(".local " in line for line in hidden)
    assert all(".local " not in line and " 192.0.2." in line for line in added)


@pytest.mark.parametrize("backend", ["aiortc", "libdatachannel"])
def test_engines_connect_to_chromium_behind_its_local_names(namespace: str, backend: str) -> None:
    """Real Chromium with its default settings: its only host candidate is a .local name that
    its own responder answers; our answer reaches it without candidates."""
    if (missing := chromium_missing()) is not None:
        pytest.skip(missing)
    if backend == "libdatachannel" and (reason := libdatachannel_problem()) is not None:
        pytest.skip(reason)
    result = probe(namespace, "chromium", backend)
    assert (result["from_chromium"], result["to_chromium"]) == (
        "hello from chromium",
        "hello from weron",
    )
    hidden, added = result["hidden"], result["added"]
    assert isinstance(hidden, list) and isinstance(added, list) and hidden
    assert all(".local " in line for line in hidden)
    assert all(".local " not in line and " 192.0.2." in line for line in added)
