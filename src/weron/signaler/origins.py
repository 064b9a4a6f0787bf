"""Which browser origins may join communities (docs/browser.md#origins).

Browsers send ``Origin`` with every WebSocket handshake; our CLI peers and the Go peers send
none and are not checked. A page may join when it came from this signaler (its origin names the
host and port the request was sent to) or from an origin the operator allowed: otherwise any web
site a member visits could join communities with what it knows, through the member's browser.
"""

from __future__ import annotations

import urllib.parse
from typing import Final

ANY: Final = "*"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class OriginError(ValueError):
    """An allowed origin is not ``scheme://host[:port]``."""


def _split(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a serialized origin, ``None`` for ``null`` or anything else."""
    try:
        parts = urllib.parse.urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def normalize_origin(origin: str) -> str:
    """The canonical form of an allowed origin (``https://a.example:443`` is
    ``https://a.example``), or ``*``; :class:`OriginError` for anything else."""
    if origin.strip() == ANY:
        return ANY
    split = _split(origin)
    if split is None:
        raise OriginError(
            f"allowed origin {origin!r} is not scheme://host[:port] (e.g. https://chat.example)"
        )
    scheme, host, port = split
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if port == _DEFAULT_PORTS[scheme] else f":{port}")


def _same_host(origin: tuple[str, str, int], host_header: str) -> bool:
    """Whether the origin names the ``Host`` the request was sent to (the signaler's own
    origin: the page was served from here). A ``Host`` without a port matches the scheme's
    default port, which a TLS-terminating proxy in front of us uses."""
    scheme, host, port = origin
    try:
        parts = urllib.parse.urlsplit("//" + host_header.strip())
        request_host, request_port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return False
    if not request_host or request_host != host:
        return False
    return (request_port if request_port is not None else _DEFAULT_PORTS[scheme]) == port


def origin_allowed(origin: str, host_header: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a join carrying ``Origin: origin`` may proceed; ``allowed`` holds normalized
    origins (see :func:`normalize_origin`)."""
    if ANY in allowed:
        return True
    split = _split(origin)
    if split is None:
        return False  # "null" (a file or sandboxed page) or garbage
    if host_header is not None and _same_host(split, host_header):
        return True
    return normalize_origin(origin) in allowed
