"""The asyncio side of `weron forward` that needs no sockets: reading a UDP channel's frames."""

from __future__ import annotations

import pytest
from tests.unit.fakes import FakeChannel

from weron.apps.port_forward import _udp_frames
from weron.log import LogQuota
from weron.net import port_forward as proto
from weron.webrtc import ChannelClosedError


async def test_udp_frames_skip_what_does_not_decode_and_end_with_the_channel() -> None:
    conn = FakeChannel(
        proto.datagram_frame(1, b"first"),
        b"",  # empty: not a frame
        b"\xff\x00",  # an unknown frame type
        proto.datagram_frame(2, b"second"),
    )
    frames = []
    with pytest.raises(ChannelClosedError):
        async for frame in _udp_frames(conn, "peer", LogQuota()):
            frames.append(frame)
    assert frames == [proto.Datagram(1, b"first"), proto.Datagram(2, b"second")]
