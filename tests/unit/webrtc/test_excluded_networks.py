"""Both backends between two real peer connections in this process: no candidate inside
``PeerConfig.excluded_networks`` is reported, put in a description, used, or accepted.

The networks excluded are host addresses this machine has (its own candidates, all but one
address), so the connection still works over the one left."""

from __future__ import annotations

import ipaddress

import pytest
from tests.unit.webrtc.pairs import Pair, channel_pair, negotiate

from weron.webrtc import Backend, PeerConfig
from weron.webrtc.aiortc_backend import AiortcBackend, AiortcPeerConnection
from weron.webrtc.candidates import candidate_excluded

rtc = pytest.importorskip("weron.webrtc.libdatachannel_backend")

BACKENDS = [rtc.LibdatachannelBackend(), AiortcBackend()]


def _candidates(pair: Pair) -> list[str]:
    """Every local candidate either side made known: trickled or in its description."""
    lines = [*pair.offering.candidates, *pair.answering.candidates]
    for sdp in (pair.offer, pair.answer):
        lines += [line[2:] for line in sdp.splitlines() if line.startswith("a=candidate:")]
    return lines


def _remote_candidates(pair: Pair) -> list[str]:
    """The candidates the answering connection took from the offering one."""
    answerer = pair.answerer
    if isinstance(answerer, AiortcPeerConnection):
        sctp = answerer._pc.sctp
        assert sctp is not None
        ice = sctp.transport.transport
        return [
            f"candidate:{c.foundation} 1 udp 1 {c.ip} {c.port}" for c in ice.getRemoteCandidates()
        ]
    assert isinstance(answerer, rtc.LibdatachannelPeerConnection)
    description = str(answerer._pc.remote_description())
    return [line[2:] for line in description.splitlines() if line.startswith("a=candidate:")]


async def _excluded(backend: Backend) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Networks of all host addresses this backend gathers but one."""
    async with channel_pair(backend) as (_, _, pair):
        addresses = {line.split()[4] for line in _candidates(pair)}
    if len(addresses) < 2:
        pytest.skip("needs two host addresses (here: IPv4 and IPv6 on one interface)")
    return tuple(ipaddress.ip_network(address) for address in sorted(addresses)[1:])


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
async def test_excluded_candidates_are_neither_sent_nor_used(backend: Backend) -> None:
    excluded = await _excluded(backend)
    config = PeerConfig(excluded_networks=excluded)
    async with channel_pair(backend, config) as (ours, theirs, pair):
        await ours.send(b"over the address left")
        assert await theirs.receive() == b"over the address left"
        assert _candidates(pair)
        assert not [line for line in _candidates(pair) if candidate_excluded(line, excluded)]
        for pc in (pair.offerer, pair.answerer):
            if isinstance(pc, AiortcPeerConnection):  # no socket left there to pair with
                sctp = pc._pc.sctp
                assert sctp is not None
                connection = sctp.transport.transport.iceGatherer._connection
                bound = [protocol.local_candidate.to_sdp() for protocol in connection._protocols]
                assert bound
                assert not [line for line in bound if candidate_excluded(line, excluded)]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
async def test_excluded_remote_candidates_are_dropped(backend: Backend) -> None:
    excluded = await _excluded(backend)
    pair = await negotiate(backend, answer_config=PeerConfig(excluded_networks=excluded))
    try:
        ours, theirs = await pair.channels()
        await ours.send(b"still connected")
        assert await theirs.receive() == b"still connected"
        sent = pair.offering.candidates + pair.offer.splitlines()
        assert [line for line in sent if candidate_excluded(line, excluded)]
        taken = _remote_candidates(pair)
        assert taken
        assert not [line for line in taken if candidate_excluded(line, excluded)]
    finally:
        await pair.close()
