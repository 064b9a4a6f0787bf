"""A signaler that hangs rather than dies (suspended with SIGSTOP, then SIGCONT), real processes."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect

from tests.e2e.processes import SignalerProcess
from weron.manager import Manager, ManagerError

StartSignaler = Callable[..., SignalerProcess]


async def test_members_stay_joined_through_a_suspended_signaler(
    signaler_factory: StartSignaler,
) -> None:
    """The pongs the members sent while the signaler was stopped wait unread behind its due
    heartbeat timers: it must read them rather than drop every member at once on SIGCONT."""
    signaler = signaler_factory("--heartbeat", "2s")
    url = signaler.join_url("hang", "pw")
    async with (
        asyncio.timeout(15),
        connect(url, ping_interval=None) as first,
        connect(url, ping_interval=None) as second,
    ):
        os.kill(signaler.process.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(3)  # past the heartbeat: a pong is overdue by the clock
        finally:
            os.kill(signaler.process.pid, signal.SIGCONT)
        await asyncio.sleep(1.5)  # the signaler's next heartbeat judges again
        await first.send("still here")
        assert await second.recv() == "still here"
    assert "no pong within heartbeat" not in signaler.logs()


async def test_manager_gives_up_on_a_suspended_signaler(
    signaler_factory: StartSignaler,
) -> None:
    """A signaler that accepts connections (the kernel does) but answers nothing: the
    management client says so after its timeout instead of a bare "ReadTimeout"."""
    signaler = signaler_factory("--api-password", "api-secret")
    os.kill(signaler.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(ManagerError, match="did not answer within 1s"):
            await Manager(signaler.http_url, "admin", "api-secret", timeout=1.0).list()
    finally:
        os.kill(signaler.process.pid, signal.SIGCONT)
    assert await Manager(signaler.http_url, "admin", "api-secret").list() == []
