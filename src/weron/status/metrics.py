"""A peer process's figures in the Prometheus text format (no I/O here): the same as
`weron status` shows, one sample per link, labelled by peer id and name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from weron.prometheus import Family, render
from weron.status.model import PeerStatus, ProcessStatus
from weron.webrtc import PathKind

PATHS: Final = tuple(kind.value for kind in PathKind)


def families(status: ProcessStatus) -> list[Family]:
    def per_peer(
        name: str, kind: str, help_text: str, value: Callable[[PeerStatus], float | None]
    ) -> Family:
        samples = tuple(
            (_labels(peer), number) for peer in status.peers if (number := value(peer)) is not None
        )
        return Family(name, kind, help_text, samples)

    path_samples = tuple(
        ({**_labels(peer), "path": path}, 1.0 if peer.path == path else 0.0)
        for peer in status.peers
        for path in PATHS
    )
    return [
        Family(
            "weron_peers",
            "gauge",
            "Links to peers, by connection state",
            tuple(
                ({"state": state}, float(sum(peer.state == state for peer in status.peers)))
                for state in sorted({peer.state for peer in status.peers})
            ),
        ),
        per_peer(
            "weron_peer_connected",
            "gauge",
            "1 while the link to the peer is connected",
            lambda peer: 1.0 if peer.state == "connected" else 0.0,
        ),
        Family(
            "weron_peer_path",
            "gauge",
            "1 for the way the link goes: host, srflx (through a NAT) or relay (TURN)",
            path_samples,
        ),
        per_peer("weron_peer_rtt_seconds", "gauge", "Round trip to the peer", lambda p: p.rtt),
        per_peer(
            "weron_peer_sent_bytes_total",
            "counter",
            "Bytes sent to the peer",
            lambda peer: peer.bytes_sent,
        ),
        per_peer(
            "weron_peer_received_bytes_total",
            "counter",
            "Bytes received from the peer",
            lambda peer: peer.bytes_received,
        ),
        per_peer(
            "weron_peer_connected_since_seconds",
            "gauge",
            "When the link first connected (Unix time)",
            lambda peer: peer.connected_since,
        ),
    ]


def _labels(peer: PeerStatus) -> dict[str, str]:
    return {"peer": peer.id, "name": peer.name}


def exposition(status: ProcessStatus) -> bytes:
    return render(families(status))
