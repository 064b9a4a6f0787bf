"""The status a console script is exiting with, once it is known.

Python does not tell an ``atexit`` hook how the process ends. The console entry points
(``weron.cli.entry``) record it here, so that a hook with work still under way (the
libdatachannel backend's closes, see ``weron.webrtc.libdatachannel_backend``) may end the
process itself with that status instead of waiting. Nothing is recorded in a library user's
program: such hooks wait there, as its author expects.
"""

from __future__ import annotations

_status: list[int] = []  # the one status, once recorded


def record(code: object) -> None:
    """Record ``SystemExit.code``: None is 0, an int itself, anything else (a message
    Python prints) 1, as Python turns them into the process's status."""
    _status[:] = [0 if code is None else code if isinstance(code, int) else 1]


def recorded() -> int | None:
    """The status recorded, or None outside a console script (or before it exits)."""
    return _status[0] if _status else None
