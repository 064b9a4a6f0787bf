"""A private BitTorrent DHT on loopback: a few libtorrent nodes that know each other, for the
`gonet --dht` tests (nothing leaves the machine: no public bootstrap node is configured)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from tests.e2e.processes import free_udp_port

if TYPE_CHECKING:
    import libtorrent as lt

    from weron.rendezvous.card import Card

# The record writers' libtorrent sessions: they joined the nodes' routing tables, so they stay
# up (answering) until the nodes stop; gone, every later lookup would wait for them to time out.
_WRITERS: list[lt.session] = []


@contextmanager
def dht_nodes(count: int = 4) -> Iterator[list[tuple[str, int]]]:
    """Start ``count`` DHT nodes in this process; yields their addresses."""
    try:
        import libtorrent as lt
    except ImportError:
        pytest.skip("libtorrent is not installed (pip install libtorrent)")
    nodes = [("127.0.0.1", free_udp_port()) for _ in range(count)]
    sessions = []
    for host, port in nodes:
        settings: lt.settings_pack = {
            "listen_interfaces": f"{host}:{port}",
            "enable_dht": True,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "dht_bootstrap_nodes": "",
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_ignore_dark_internet": False,
            "dht_enforce_node_id": False,
            "dht_block_ratelimit": 1000,  # every member comes from 127.0.0.1
            # Four nodes hold every record of the room: each answers every lookup of it.
            "dht_upload_rate_limit": 1_000_000,
            "alert_mask": 0,
        }
        sessions.append(lt.session(settings))
    for session in sessions:
        for node in nodes:
            session.add_dht_node(node)
    deadline = time.monotonic() + 10
    while any(not s.is_dht_running() for s in sessions) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield nodes
    finally:
        for session in sessions + _WRITERS:
            session.pause()
        sessions.clear()
        _WRITERS.clear()


def write_fake_records(nodes: list[tuple[str, int]], room: str, published: list[float]) -> None:
    """The insider lock: a member with the room key fills the room's slots with records of
    members that do not exist (slot N published at ``published[N]``), then leaves the room (its
    DHT node stays up, as a node of the public DHT would)."""
    from weron.rendezvous.card import Card
    from weron.wireguard.crypto import PrivateKey
    from weron.wireguard.nat.paths import Candidate, Kind

    fake = (Candidate(Kind.HOST, ("192.0.2.9", 9)),)
    write_records(
        nodes,
        room,
        {slot: (Card(PrivateKey.generate().public, fake), at) for slot, at in enumerate(published)},
    )


def write_records(
    nodes: list[tuple[str, int]], room: str, records: dict[int, tuple[Card, float]]
) -> None:
    """What a member with the room key may write: in each slot given, a card of its choice
    published when it says."""
    import asyncio

    from weron.rendezvous.dht import DhtSession, RoomKeys, seal_record
    from weron.rendezvous.room import Room, derive

    keys = RoomKeys.derive(derive(Room.parse(room)))

    async def write() -> None:
        session = DhtSession(nodes)
        try:
            for slot, (card, published) in records.items():
                value = seal_record(keys, slot, card, published)
                for _ in range(10):  # until the routing table knows the nodes
                    if await session.put(keys, keys.salts[slot], value) > 0:
                        break
                    await asyncio.sleep(1)
                else:
                    raise AssertionError(f"record {slot} was stored on no node")
        finally:
            _WRITERS.append(session.detach())

    asyncio.run(write())
