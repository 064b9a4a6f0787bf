"""The signaling client library against a real signaler: envelopes, wrong keys and passwords,
reconnection after the signaler comes back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.conftest import StartSignaler
from tests.e2e.processes import start_signaler
from weron.signaler_client.client import JoinRefusedError, SignalingClient, SignalingError
from weron.signaler_client.messages import Exchange, Introduction, MessageType


def client(
    url: str, key: str = "mykey", password: str = "pw", timeout: float = 10.0
) -> SignalingClient:
    return SignalingClient(url, "community", password, key, timeout=timeout)


async def test_members_exchange_sealed_messages(signaler_factory: StartSignaler) -> None:
    signaler = signaler_factory()
    alice, bob, eve = (
        client(signaler.ws_url),
        client(signaler.ws_url),
        client(signaler.ws_url, "other"),
    )
    alice_session = await alice.connect()
    bob_session = await bob.connect()
    eve_session = await eve.connect()
    await alice_session.send(Introduction("alice"))
    offer = Exchange(MessageType.OFFER, "bob", "alice", b'{"type":"offer","sdp":"v=0"}')
    async with asyncio.timeout(5):
        assert await bob_session.receive() == Introduction("alice")
        await bob_session.send(offer)
        assert await alice_session.receive() == offer
    with pytest.raises(TimeoutError):  # eve's key opens nothing: everything is skipped
        async with asyncio.timeout(0.5):
            await eve_session.receive()
    for member in (alice, bob, eve):
        await member.close()


async def test_wrong_password_is_reported_as_such(signaler_factory: StartSignaler) -> None:
    signaler = signaler_factory()
    owner = client(signaler.ws_url)
    await owner.connect()
    intruder = client(signaler.ws_url, password="guess", timeout=0.2)
    with pytest.raises(JoinRefusedError, match="wrong password"):
        async for _ in intruder.sessions():
            pass
    await owner.close()


async def test_bad_addresses_are_clear_errors() -> None:
    with pytest.raises(SignalingError, match="not a ws:// or wss:// URL"):
        client("http://localhost:1/")
    with pytest.raises(SignalingError, match="cannot connect"):
        await client("ws://127.0.0.1:9/", timeout=1).connect()


async def test_reconnects_after_the_signaler_restarts(tmp_path: Path) -> None:
    signaler = start_signaler(tmp_path)
    sessions = 0
    member = client(signaler.ws_url, timeout=0.5)
    try:
        async with asyncio.timeout(30):
            async for session in member.sessions():
                sessions += 1
                await session.send(Introduction(f"member-{sessions}"))
                if sessions == 2:
                    break
                await asyncio.to_thread(signaler.stop)
                async for _ in session:  # ends when the connection drops
                    pass
                signaler = start_signaler(tmp_path, port=signaler.port)
    finally:
        signaler.stop()
    assert sessions == 2


async def test_a_refused_rejoin_is_retried_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After a restart of an in-memory signaler, a squatter owns the community with another
    password: a member keeps trying (and says why) instead of leaving for good, and gets back
    in once the squatter is gone. A first join with a wrong password still fails at once."""
    signaler = start_signaler(tmp_path)
    member = client(signaler.ws_url, timeout=0.5)
    squatter = client(signaler.ws_url, password="squatted", timeout=0.5)
    sessions = 0
    try:
        async with asyncio.timeout(30):
            async for session in member.sessions():
                sessions += 1
                if sessions == 2:
                    break
                await asyncio.to_thread(signaler.stop)
                async for _ in session:  # ends when the connection drops
                    pass
                signaler = start_signaler(tmp_path, port=signaler.port)
                await squatter.connect()  # before the member's next attempt
                loop = asyncio.get_running_loop()
                loop.call_later(2, lambda: asyncio.ensure_future(squatter.close()))
    finally:
        signaler.stop()
    assert sessions == 2
    refusals = [r for r in caplog.records if "refused our password on rejoining" in r.getMessage()]
    assert refusals and all(record.levelname == "WARNING" for record in refusals)
