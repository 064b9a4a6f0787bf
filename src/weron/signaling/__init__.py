"""Signaling: the wire core (messages, envelope crypto; no I/O) and the signaler client."""

from typing import Final

# The original's default signaler, run by its author, not by this project: the default --raddr,
# kept for compatibility with the original's commands.
PUBLIC_SIGNALER: Final = "wss://weron.up.railway.app/"
