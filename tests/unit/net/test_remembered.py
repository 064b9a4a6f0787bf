"""The state file of claimed addresses: per community and networks, atomic, best effort."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import pytest

from weron.net.remembered import ClaimMemory, default_state_file

NAME = '["10.0.0.7/24"]'
OTHER = '["10.0.0.9/24"]'


def test_a_remembered_name_is_recalled_by_its_key_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "vpn-ip.json"
    ClaimMemory(path, "community-a 10.0.0.1/24").remember(NAME)
    ClaimMemory(path, "community-b 10.0.0.1/24").remember(OTHER)
    assert ClaimMemory(path, "community-a 10.0.0.1/24").recall() == NAME
    assert ClaimMemory(path, "community-b 10.0.0.1/24").recall() == OTHER
    assert ClaimMemory(path, "community-a 10.1.0.1/24").recall() is None
    assert path.stat().st_mode & 0o777 == 0o600
    assert [entry.name for entry in path.parent.iterdir()] == ["vpn-ip.json"]  # no temporary


def test_the_recalled_name_is_chosen_while_it_is_a_candidate(tmp_path: Path) -> None:
    memory = ClaimMemory(tmp_path / "s.json", "c n")
    memory.remember(NAME)
    choose = memory.prefer_recalled(lambda candidates: candidates[0])
    assert choose([OTHER, NAME]) == NAME
    assert choose([OTHER]) == OTHER  # kicked off it: another, as without a memory


def test_no_path_remembers_nothing() -> None:
    memory = ClaimMemory(None, "c n")
    memory.remember(NAME)
    assert memory.recall() is None
    assert memory.prefer_recalled(random.choice)([OTHER]) == OTHER


def test_an_unreadable_state_file_is_a_warning_and_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.json"
    path.write_text("{not json")
    memory = ClaimMemory(path, "c n")
    with caplog.at_level(logging.WARNING, logger="weron"):
        assert memory.recall() is None
        memory.remember(NAME)
    assert "Ignoring an unreadable state file" in caplog.messages
    assert json.loads(path.read_text()) == {"claims": {"c n": NAME}}


def test_a_state_file_that_cannot_be_written_costs_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="weron"):
        ClaimMemory(blocker / "s.json", "c n").remember(NAME)
    assert any("Cannot remember the claimed addresses" in m for m in caplog.messages)


def test_default_locations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_state_file("x.json") == Path("/var/lib/weron/x.json")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_file("x.json") == tmp_path / "weron" / "x.json"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")  # as the XDG specification says
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_state_file("x.json") == tmp_path / ".local" / "state" / "weron" / "x.json"
