"""`gonet`'s command line around a rendezvous that fails: one clear line, no traceback."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections.abc import AsyncIterator, Iterator

import click
import pytest

from weron.apps import gonet
from weron.cli.gonet import gonet_command
from weron.rendezvous.card import Card

pytestmark = pytest.mark.usefixtures("restore_logging")


class LockedOut:
    """A rendezvous that cannot let us in (as a DHT no node of which answers could be)."""

    async def members(self) -> AsyncIterator[Card]:
        await asyncio.Event().wait()  # nobody comes
        yield Card(b"", ())

    async def joined(self) -> None:
        raise RuntimeError("no DHT node answers")

    async def announce(self, card: Card) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest.fixture
def open_stdin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Standard input that stays open (a user who types nothing) for 20 s at most: a chat
    that does not end by itself ends there, at the end of its input, with no error."""
    read, write = os.pipe()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.FileIO(read, "r")))
    writer = io.FileIO(write, "w")
    closing = threading.Timer(20, writer.close)
    closing.start()
    yield
    closing.cancel()
    writer.close()  # a second close does nothing


@pytest.mark.usefixtures("open_stdin")
def test_a_rendezvous_that_cannot_let_us_in_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gonet, "_rendezvous", lambda *_: LockedOut())
    with pytest.raises(click.ClickException) as raised:
        gonet_command.main(
            ["--raddr", "ws://127.0.0.1:9/", "--name", "alice", "lobby/room/key"],
            standalone_mode=False,
        )
    assert raised.value.message == "cannot join the room: no DHT node answers"
    assert "alice!" not in capsys.readouterr().out
