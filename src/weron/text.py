"""Text from other machines, made safe to print on a terminal."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with what a terminal would act on (ESC, CSI, CR, ...) or hide escaped as
    ``\\xNN``/``\\uNNNN``: names and messages come from a signaler or a peer, perhaps a
    hostile one."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)
