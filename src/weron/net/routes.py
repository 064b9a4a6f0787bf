"""Who a routing key (a claimed IP address, a MAC) belongs to, first come first served, without
I/O (issue 12: no member can impersonate another).

A key held by a live holder is never taken by a later one: the later one waits in line and
gets the key once every earlier holder is gone. So a member that claims another's address gets
none of its traffic while that member stays, and when the impostor leaves the route still
points at the rightful holder; a member that reconnects before its old link is known to be
dead gets its keys as soon as the old link ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

H = TypeVar("H")


class RouteTable(Generic[H]):
    """Keys to holders (compared by identity). :attr:`current` is what packets are routed by:
    a plain dict, so the hot path stays one lookup."""

    def __init__(self) -> None:
        self.current: dict[bytes, H] = {}
        self._lines: dict[bytes, list[H]] = {}  # holders in arrival order, the current first

    def add(self, holder: H, keys: Iterable[bytes]) -> list[bytes]:
        """Queue ``holder`` for each of ``keys``; the keys it does not get now (held by
        another) are returned."""
        waiting: list[bytes] = []
        for key in dict.fromkeys(keys):
            line = self._lines.setdefault(key, [])
            if any(each is holder for each in line):
                continue
            line.append(holder)
            if len(line) == 1:
                self.current[key] = holder
            else:
                waiting.append(key)
        return waiting

    def remove(self, holder: H, keys: Iterable[bytes]) -> None:
        """``holder`` is gone: each of its keys goes to the next holder in line, if any."""
        for key in dict.fromkeys(keys):
            line = self._lines.get(key)
            if line is None:
                continue
            line[:] = [each for each in line if each is not holder]
            if line:
                self.current[key] = line[0]
            else:
                del self._lines[key]
                self.current.pop(key, None)
