"""ICE candidate lines: which ones lie inside excluded networks, and session descriptions
without them (the backends only call this, and log each drop through it).

An overlay (a VPN's own addresses, ``PeerConfig.excluded_networks``) must never carry its own
underlay: a candidate on a tunnel address, once the tunnel is up, makes a pair that runs
through the tunnel itself and dies with it. A candidate is excluded when its address, or the
address it was derived from (``raddr``: a reflexive candidate's base), lies inside one of the
networks. Hostnames (mDNS ``.local`` names) are no addresses: they are kept.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Collection
from typing import Final

from weron.log import get_logger
from weron.webrtc import IpNetwork

log = get_logger(__name__)

_CANDIDATE: Final = "a=candidate:"
_END: Final = "a=end-of-candidates"
_ADDRESS_FIELD: Final = 4  # candidate:<foundation> <component> <transport> <priority> <address>


def address_excluded(address: str, networks: Collection[IpNetwork]) -> bool:
    """Whether ``address`` is an IP address inside one of ``networks`` (``False`` for a
    hostname)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 zone
    except ValueError:
        return False
    return any(ip.version == network.version and ip in network for network in networks)


def candidate_excluded(candidate: str, networks: Collection[IpNetwork]) -> bool:
    """Whether a candidate line (with or without ``a=``) has its address or its related
    address inside one of ``networks``; a line too short to have an address is not."""
    fields = candidate.split()
    addresses = fields[_ADDRESS_FIELD : _ADDRESS_FIELD + 1]
    addresses += [value for key, value in itertools.pairwise(fields) if key == "raddr"]
    return any(address_excluded(address, networks) for address in addresses)


def excluded_candidates(sdp: str, networks: Collection[IpNetwork]) -> tuple[str, list[str]]:
    """``sdp`` without its candidate lines inside ``networks``, and those lines."""
    kept, dropped = [], []
    for line in sdp.splitlines(keepends=True):
        if line.startswith(_CANDIDATE) and candidate_excluded(line, networks):
            dropped.append(line.strip())
        else:
            kept.append(line)
    return "".join(kept), dropped


def dropped(candidate: str, side: str) -> None:
    """The debug line a backend logs for each candidate it drops (``side``: whose)."""
    log.debug("Dropping ICE candidate inside an excluded network", side=side, candidate=candidate)


def remote_description(sdp: str, networks: Collection[IpNetwork]) -> str:
    """A remote session description without its candidates inside ``networks``."""
    kept, lines = excluded_candidates(sdp, networks)
    for line in lines:
        dropped(line, "remote")
    return kept


def remote_candidate_kept(candidate: str, networks: Collection[IpNetwork]) -> bool:
    """Whether to add a trickled remote candidate (dropped ones are logged)."""
    if candidate_excluded(candidate, networks):
        dropped(candidate, "remote")
        return False
    return True


def without_candidates(sdp: str) -> str:
    """``sdp`` without its candidates (nor the end-of-candidates mark): for a backend whose
    every candidate is trickled anyway, so the description carries none, as before."""
    return "".join(
        line for line in sdp.splitlines(keepends=True) if not line.startswith((_CANDIDATE, _END))
    )
