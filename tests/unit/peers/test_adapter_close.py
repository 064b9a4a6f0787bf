"""Shutting down does not wait for ever on a connection whose close cannot reach its peer:
the adapter waits ``CLOSE_GRACE``, then goes on; the close carries on in the background."""

from __future__ import annotations

import asyncio
import logging

import pytest
from tests.unit.fakes import FakeConnection, OneConnectionBackend

from weron.peers import adapter as adapter_module
from weron.peers import session as core
from weron.peers.adapter import Adapter


class StuckConnection(FakeConnection):
    """Closes once ``released``, as a close over a dead path returns only when SCTP gives up."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.closed = False

    async def close(self) -> None:
        await self.released.wait()
        self.closed = True


async def test_shutdown_waits_for_a_stuck_close_only_the_grace(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(adapter_module, "CLOSE_GRACE", 0.05)
    connection = StuckConnection()
    adapter = Adapter(
        "ws://127.0.0.1:9/", "c", "pw", "key", ["chat"], OneConnectionBackend(connection)
    )
    adapter._open(core.Open(1, "peer", initiator=False))
    with caplog.at_level(logging.INFO, logger="weron"):
        async with asyncio.timeout(2):
            await adapter._close_links()
    assert "Not waiting for connections still closing" in caplog.messages
    assert not connection.closed
    connection.released.set()  # the close went on meanwhile, and ends
    async with asyncio.timeout(2):
        while adapter._background:
            await asyncio.sleep(0.005)
    assert connection.closed
