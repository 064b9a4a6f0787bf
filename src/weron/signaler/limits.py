"""Bookkeeping of the connection limits: connections per source, and rate-limited reports of
what the limits dropped. Pure: the connection layer passes in addresses and ``now``."""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Final

_IPV6_SOURCE_PREFIX: Final = 64  # one host or site usually holds a whole /64


def source_of(host: str) -> str:
    """The source a peer address counts against: IPv4 addresses as they are (IPv4-mapped IPv6
    too), IPv6 addresses by their /64, anything else (a Unix socket) as given."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, _IPV6_SOURCE_PREFIX), strict=False)
        return str(network)
    return str(address)


class SourceLimit:
    """Counts open connections per source; ``limit`` 0 means no limit."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[str] = Counter()

    def admit(self, source: str) -> bool:
        """Count one more connection of ``source``, unless it already holds ``limit``."""
        if self._limit and self._open[source] >= self._limit:
            return False
        self._open[source] += 1
        return True

    def release(self, source: str) -> None:
        self._open[source] -= 1
        if self._open[source] <= 0:
            del self._open[source]


class DropReport:
    """Collects connections dropped by a limit, for one log line at most every ``interval``
    seconds: a flood must not turn into a flood of log lines."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next_report = float("-inf")
        self._counts: Counter[str] = Counter()
        self._sources: set[str] = set()

    def record(self, reason: str, source: str, now: float) -> float | None:
        """Count one drop. Returns the delay after which to :meth:`take` the report (0: now)
        when one should be scheduled, ``None`` when one already is."""
        pending = bool(self._counts)
        self._counts[reason] += 1
        self._sources.add(source)
        if pending:
            return None
        return max(0.0, self._next_report - now)

    def take(self, now: float) -> tuple[dict[str, int], int]:
        """The drops by reason and the number of distinct sources since the last report."""
        counts, sources = dict(self._counts), len(self._sources)
        self._counts.clear()
        self._sources.clear()
        self._next_report = now + self._interval
        return counts, sources
