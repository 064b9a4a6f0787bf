"""Peers: join a community through a signaler and connect to every other member over WebRTC.

:class:`~weron.peers.adapter.Adapter` yields a :class:`Peer` per open data channel;
:class:`~weron.peers.named.NamedAdapter` also negotiates a unique name per member.
"""

from __future__ import annotations

from dataclasses import dataclass

from weron.webrtc import DataChannel


@dataclass(frozen=True, slots=True)
class Peer:
    """One open data channel to one remote member. ``conn.receive()`` raises
    :class:`weron.webrtc.ChannelClosedError` once the member is gone."""

    peer_id: str
    channel_id: str
    conn: DataChannel
