"""Checking the URLs users type (``--raddr``): a typo is one clear line, never a traceback
from deep inside a connection attempt."""

from __future__ import annotations

import urllib.parse
from collections.abc import Collection
from typing import Final

# The original's default signaler, run by its author, not by this project: the default --raddr,
# kept for compatibility with the original's commands.
PUBLIC_SIGNALER: Final = "wss://weron.up.railway.app/"


def parse_url(text: str, schemes: Collection[str]) -> urllib.parse.SplitResult | None:
    """``text`` split into its parts if it is a URL of one of ``schemes`` with a host and a
    valid port (if any); else None (urllib raises only later, on ``.port``)."""
    try:
        parts = urllib.parse.urlsplit(text.strip())
        _ = parts.port
    except ValueError:  # "Invalid IPv6 URL", a port that is not a number or out of range
        return None
    if parts.scheme not in schemes or not parts.hostname:
        return None
    return parts
