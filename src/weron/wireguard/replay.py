"""The receive counter's sliding window (the RFC 6479 idea: a bitmap behind the highest counter).

A counter is checked *before* decryption (cheap rejection) and only marked as seen *after* the
packet authenticated, so forged packets cannot move the window.
"""

from __future__ import annotations

from typing import Final

WINDOW_SIZE: Final = 8192 - 64  # as many counters behind the newest as wireguard-go accepts
REJECT_AFTER_MESSAGES: Final = (1 << 64) - (1 << 13) - 1
_MASK: Final = (1 << WINDOW_SIZE) - 1


class ReplayWindow:
    """Bit ``i`` of ``_seen`` says whether counter ``newest - i`` was received."""

    __slots__ = ("_newest", "_seen")

    def __init__(self) -> None:
        self._newest = -1
        self._seen = 0

    def acceptable(self, counter: int) -> bool:
        """Could ``counter`` be new? (No state change.)"""
        if counter >= REJECT_AFTER_MESSAGES:
            return False
        behind = self._newest - counter
        if behind < 0:
            return True
        return behind < WINDOW_SIZE and not (self._seen >> behind) & 1

    def mark(self, counter: int) -> bool:
        """Record an authenticated ``counter``; False if it was a replay or too old after all."""
        if not self.acceptable(counter):
            return False
        ahead = counter - self._newest
        if ahead >= WINDOW_SIZE:
            self._seen = 1
            self._newest = counter
        elif ahead > 0:
            self._seen = ((self._seen << ahead) | 1) & _MASK
            self._newest = counter
        else:
            self._seen |= 1 << -ahead
        return True
