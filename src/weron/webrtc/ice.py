"""The ``--ice`` flag: ``stun:host:port`` and ``user:credential@turn:host:port[?transport=]``."""

from __future__ import annotations

from collections.abc import Iterable

from weron.webrtc import IceServer, PeerConfig


class IceConfigError(ValueError):
    """An ``--ice`` entry or ``--force-relay`` cannot be used; the message says why."""


def parse_ice_server(entry: str) -> IceServer:
    entry = entry.strip()
    if entry.startswith(("stun:", "stuns:")):
        if not entry.split(":", 1)[1]:
            raise IceConfigError(f"STUN server {entry!r} has no host")
        return IceServer(entry)
    credentials, separator, url = entry.rpartition("@")
    if not separator or not url.startswith(("turn:", "turns:")):
        raise IceConfigError(
            f"ICE server {entry!r} is neither stun:host:port nor username:credential@turn:host:port"
        )
    username, colon, credential = credentials.partition(":")
    if not colon or not username or not credential:
        raise IceConfigError(f"TURN server {url!r} needs username:credential@ before it")
    return IceServer(url, username, credential)


def peer_config(
    entries: Iterable[str], *, force_relay: bool = False, mtu: int | None = None
) -> PeerConfig:
    servers = tuple(parse_ice_server(entry) for entry in entries if entry.strip())
    if force_relay and not any(server.is_turn for server in servers):
        raise IceConfigError("TURN is forced (--force-relay), but no TURN server is configured")
    return PeerConfig(servers, relay_only=force_relay, mtu=mtu)
