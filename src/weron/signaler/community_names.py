"""Which community names the signaler accepts.

The original accepts any string. Here names holding control characters (C0, DEL, C1) are refused:
they serve no honest purpose and end up in administrators' terminals (``weron manager list``),
logs and databases (PostgreSQL refuses NUL in text).
"""

from __future__ import annotations


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code < 0xA0


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a community, or ``None`` if it can."""
    for index, char in enumerate(name):
        if _is_control(char):
            return (
                f"community name holds a control character (U+{ord(char):04X} at {index}): "
                "control characters are not allowed"
            )
    return None
