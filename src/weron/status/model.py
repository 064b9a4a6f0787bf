"""What `weron status` reports, as plain records and their JSON form (no I/O here).

The JSON form is the control socket's reply and ``weron status --json``'s output; reading it
back checks every field, since it comes from another process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from weron.webrtc import LinkStats


class StatusFormatError(ValueError):
    """A status document that is not what this module writes."""


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """One link to a peer: who, how it is doing, which way it goes, how much it carried."""

    id: str
    name: str
    state: str
    connected_since: float | None  # Unix time
    channels: tuple[str, ...]
    path: str | None  # host, srflx or relay
    local_type: str | None
    remote_type: str | None
    local_address: str | None
    remote_address: str | None
    rtt: float | None  # seconds
    bytes_sent: int | None
    bytes_received: int | None

    @classmethod
    def of(
        cls,
        peer_id: str,
        name: str,
        state: str,
        since: float | None,
        channels: tuple[str, ...],
        stats: LinkStats | None,
    ) -> PeerStatus:
        stats = stats if stats is not None else LinkStats()
        return cls(
            id=peer_id,
            name=name,
            state=state,
            connected_since=since,
            channels=channels,
            path=None if stats.path is None else stats.path.value,
            local_type=stats.local_type,
            remote_type=stats.remote_type,
            local_address=stats.local_address,
            remote_address=stats.remote_address,
            rtt=stats.rtt,
            bytes_sent=stats.bytes_sent,
            bytes_received=stats.bytes_received,
        )

    @property
    def direct(self) -> bool | None:
        """Straight to the peer (host or through a NAT's mapping) rather than relayed."""
        return None if self.path is None else self.path != "relay"


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    """One peer process: what it runs, where, as whom, and its peers."""

    pid: int
    command: str
    community: str
    id: str
    name: str
    peers: tuple[PeerStatus, ...]


def to_json(status: ProcessStatus) -> dict[str, Any]:
    document = asdict(status)
    document["peers"] = [{**asdict(peer), "direct": peer.direct} for peer in status.peers]
    for peer in document["peers"]:
        peer["channels"] = list(peer["channels"])
    return document


_PEER_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "name": (str,),
    "state": (str,),
    "connected_since": (float, int, type(None)),
    "path": (str, type(None)),
    "local_type": (str, type(None)),
    "remote_type": (str, type(None)),
    "local_address": (str, type(None)),
    "remote_address": (str, type(None)),
    "rtt": (float, int, type(None)),
    "bytes_sent": (int, type(None)),
    "bytes_received": (int, type(None)),
}
_PROCESS_FIELDS: dict[str, tuple[type, ...]] = {
    "pid": (int,),
    "command": (str,),
    "community": (str,),
    "id": (str,),
    "name": (str,),
}


def _checked(document: object, fields: dict[str, tuple[type, ...]], what: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise StatusFormatError(f"{what} is not an object")
    for key, types in fields.items():
        value = document.get(key)
        if not isinstance(value, types) or isinstance(value, bool):
            raise StatusFormatError(f"{what}: bad or missing {key!r}")
    return document


def from_json(document: object) -> ProcessStatus:
    """Read a process's status back; :class:`StatusFormatError` if it is not one."""
    process = _checked(document, _PROCESS_FIELDS, "status")
    peers = process.get("peers")
    if not isinstance(peers, list):
        raise StatusFormatError("status: bad or missing 'peers'")
    read = []
    for item in peers:
        peer = _checked(item, _PEER_FIELDS, "peer")
        channels = peer.get("channels")
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise StatusFormatError("peer: bad or missing 'channels'")
        values = {key: peer[key] for key in _PEER_FIELDS}
        read.append(PeerStatus(channels=tuple(channels), **values))
    return ProcessStatus(peers=tuple(read), **{key: process[key] for key in _PROCESS_FIELDS})
