"""Printable ASCII: all a gonet chat message may hold, and all the terminal prints of a peer's
text unescaped. Its own pure module so the pure roster need not import the terminal's."""

from __future__ import annotations


def is_printable_ascii(text: str) -> bool:
    return all(" " <= char <= "~" for char in text)
