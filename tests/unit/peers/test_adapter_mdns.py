"""The adapter resolves a browser's ``.local`` candidates beside its other steps: the engine
gets the address once it is known, and other candidates are not held up meanwhile."""

from __future__ import annotations

import asyncio

from tests.unit.fakes import FakeConnection, OneConnectionBackend

from weron.peers import session as core
from weron.peers.adapter import Adapter, _Link

HIDDEN = "candidate:1 1 udp 2113937151 0a1b2c3d-0000-4000-8000-000000000001.local 5000 typ host"
PLAIN = "candidate:2 1 udp 1677729535 203.0.113.9 6000 typ srflx raddr 0.0.0.0 rport 0"


class CountingConnection(FakeConnection):
    """Records the candidates the engine gets."""

    def __init__(self) -> None:
        self.added: list[str] = []
        self.changed = asyncio.Event()

    async def add_candidate(self, candidate: str) -> None:
        self.added.append(candidate)
        self.changed.set()


class SlowResolver:
    """Answers once released, as a responder on the LAN does after a while."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.release = asyncio.Event()
        self.closed = False

    async def resolve_candidate(self, candidate: str) -> str:
        await self.release.wait()
        if self.address is None:
            return candidate
        return candidate.replace(candidate.split()[4], self.address)

    def close(self) -> None:
        self.closed = True


async def added_after(connection: CountingConnection, count: int) -> list[str]:
    async with asyncio.timeout(10):
        while len(connection.added) < count:
            connection.changed.clear()
            await connection.changed.wait()
    return connection.added


def link_with(resolver: SlowResolver) -> tuple[_Link, CountingConnection]:
    connection = CountingConnection()
    backend = OneConnectionBackend(connection)
    adapter = Adapter("ws://127.0.0.1:9/", "c", "pw", "key", ["chat"], backend)
    adapter.mdns = resolver  # type: ignore[assignment]
    link = _Link(adapter, core.Open(1, "browser", initiator=False))
    return link, connection


async def test_local_candidate_is_added_with_its_address_after_others() -> None:
    resolver = SlowResolver("192.168.1.20")
    link, connection = link_with(resolver)
    link.steps.put_nowait(core.AddCandidate(1, HIDDEN))
    link.steps.put_nowait(core.AddCandidate(1, PLAIN))
    assert await added_after(connection, 1) == [PLAIN]  # not held up by the lookup
    resolver.release.set()
    assert await added_after(connection, 2) == [
        PLAIN,
        HIDDEN.replace(HIDDEN.split()[4], "192.168.1.20"),
    ]
    await link.close()


async def test_unresolved_name_goes_to_the_engine_as_it_is() -> None:
    resolver = SlowResolver(None)
    resolver.release.set()
    link, connection = link_with(resolver)
    link.steps.put_nowait(core.AddCandidate(1, HIDDEN))
    assert await added_after(connection, 1) == [HIDDEN]
    await link.close()


async def test_closing_cancels_lookups() -> None:
    resolver = SlowResolver("192.168.1.20")
    link, connection = link_with(resolver)
    link.steps.put_nowait(core.AddCandidate(1, HIDDEN))
    async with asyncio.timeout(10):
        while not link.lookups:
            await asyncio.sleep(0)
    (lookup,) = link.lookups
    await link.close()
    await asyncio.gather(lookup, return_exceptions=True)
    assert lookup.cancelled()
    assert connection.added == []


async def test_no_lookup_with_force_relay() -> None:
    resolver = SlowResolver("192.168.1.20")
    link, connection = link_with(resolver)
    link.adapter.config.force_relay = True
    link.steps.put_nowait(core.AddCandidate(1, HIDDEN))
    assert await added_after(connection, 1) == [HIDDEN]
    assert not link.lookups
    await link.close()
