"""Which candidate lines lie inside excluded networks, and descriptions without them."""

from __future__ import annotations

import io
import ipaddress
import json

import pytest

from weron.log import configure
from weron.webrtc.candidates import (
    address_excluded,
    candidate_excluded,
    excluded_candidates,
    remote_candidate_kept,
    remote_description,
    without_candidates,
)

OVERLAY = (ipaddress.ip_network("10.77.0.0/16"), ipaddress.ip_network("fd00:77::/64"))
TUN = "candidate:2 1 UDP 2114977535 10.77.0.66 58499 typ host"
LAN = "candidate:1 1 UDP 2122260223 192.168.1.20 58500 typ host"
SRFLX_OF_TUN = (
    "candidate:3 1 UDP 1686052607 203.0.113.9 61000 typ srflx raddr 10.77.0.66 rport 58499"
)
SRFLX_OF_LAN = "candidate:4 1 UDP 1686052607 203.0.113.9 61001 typ srflx raddr 192.168.1.20 rport 1"


@pytest.mark.parametrize(
    ("address", "excluded"),
    [
        ("10.77.0.66", True),
        ("10.78.0.1", False),
        ("fd00:77::5", True),
        ("fd00:77::5%tun0", True),
        ("fd00:78::5", False),
        ("0a4d:0042::1", False),  # an IPv6 address is never inside an IPv4 network
        ("3f2c1e9a-2b1c-4d5e-8f90-123456789abc.local", False),  # mDNS: no address
        ("", False),
    ],
)
def test_addresses_inside_the_networks(address: str, excluded: bool) -> None:
    assert address_excluded(address, OVERLAY) is excluded


@pytest.mark.parametrize(
    ("candidate", "excluded"),
    [
        (TUN, True),
        ("a=" + TUN, True),
        (LAN, False),
        (SRFLX_OF_TUN, True),  # its base is the tunnel address
        (SRFLX_OF_LAN, False),
        ("candidate:5 1 UDP 2122194687 fd00:77::9 4000 typ host", True),
        ("candidate:1 1 udp 1", False),  # too short: no address to judge
    ],
)
def test_candidates_by_address_and_related_address(candidate: str, excluded: bool) -> None:
    assert candidate_excluded(candidate, OVERLAY) is excluded


def test_nothing_is_excluded_without_networks() -> None:
    assert not candidate_excluded(TUN, ())


SDP = (
    "v=0\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    "a=mid:0\r\n"
    f"a={LAN}\r\n"
    f"a={TUN}\r\n"
    f"a={SRFLX_OF_TUN}\r\n"
    "a=end-of-candidates\r\n"
    "a=sctp-port:5000\r\n"
)


def test_a_description_loses_its_excluded_candidates_only() -> None:
    kept, dropped = excluded_candidates(SDP, OVERLAY)
    assert dropped == [f"a={TUN}", f"a={SRFLX_OF_TUN}"]
    assert kept == (
        "v=0\r\n"
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
        "a=mid:0\r\n"
        f"a={LAN}\r\n"
        "a=end-of-candidates\r\n"
        "a=sctp-port:5000\r\n"
    )
    assert excluded_candidates(SDP, ()) == (SDP, [])


def test_a_description_without_any_candidate() -> None:
    assert without_candidates(SDP) == (
        "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\na=sctp-port:5000\r\n"
    )


@pytest.mark.usefixtures("restore_logging")
def test_each_drop_is_one_debug_line() -> None:
    stream = io.StringIO()
    configure(6, stream=stream)
    assert remote_description(SDP, OVERLAY) == excluded_candidates(SDP, OVERLAY)[0]
    assert not remote_candidate_kept(TUN, OVERLAY)
    assert remote_candidate_kept(LAN, OVERLAY)
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["level"], line["side"], line["candidate"]) for line in logged] == [
        ("debug", "remote", f"a={TUN}"),
        ("debug", "remote", f"a={SRFLX_OF_TUN}"),
        ("debug", "remote", TUN),
    ]
