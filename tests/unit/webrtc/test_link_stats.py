"""Both backends report a connection's figures: the candidate pair in use, round trip and
bytes each way (two real connections in this process)."""

from __future__ import annotations

import asyncio

import pytest
from tests.unit.webrtc.pairs import WAIT, channel_pair

from weron.webrtc import Backend, LinkStats, PathKind, PeerConfig
from weron.webrtc.aiortc_backend import AiortcBackend

rtc = pytest.importorskip("weron.webrtc.libdatachannel_backend")

BACKENDS = [rtc.LibdatachannelBackend(), AiortcBackend()]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
async def test_stats_show_the_pair_in_use_and_bytes_that_grow(backend: Backend) -> None:
    async with channel_pair(backend) as (ours, theirs, pair):
        before = pair.offerer.stats()
        for _ in range(10):
            await ours.send(b"x" * 1000)
        async with asyncio.timeout(WAIT):
            for _ in range(10):
                await theirs.receive()
        sent, received = pair.offerer.stats(), pair.answerer.stats()
        assert sent.bytes_sent is not None and before.bytes_sent is not None
        assert sent.bytes_sent >= before.bytes_sent + 10_000
        assert received.bytes_received is not None and received.bytes_received >= 10_000
        assert sent.path in (PathKind.HOST, PathKind.PRFLX)
        assert sent.local_address and sent.remote_address
        assert sent.local_type == "host"
        assert sent.rtt is None or sent.rtt >= 0


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
async def test_a_new_connection_has_no_pair_yet(backend: Backend) -> None:
    class Quiet:
        def on_candidate(self, candidate: str) -> None: ...
        def on_channel(self, channel: object) -> None: ...
        def on_state(self, state: object) -> None: ...

    connection = backend.peer_connection(PeerConfig(), Quiet())
    try:
        stats = connection.stats()
        assert stats.path is None and stats.remote_address is None
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("local", "remote", "path"),
    [
        ("host", "host", PathKind.HOST),
        ("host", "prflx", PathKind.PRFLX),
        ("srflx", "host", PathKind.SRFLX),
        ("prflx", "srflx", PathKind.SRFLX),
        ("host", "relay", PathKind.RELAY),
        ("relay", "srflx", PathKind.RELAY),
        (None, None, None),
    ],
)
def test_the_path_is_the_least_direct_side(
    local: str | None, remote: str | None, path: PathKind | None
) -> None:
    assert LinkStats(local_type=local, remote_type=remote).path == path
