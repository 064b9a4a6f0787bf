"""The chat screen the chat apps share (`weron chat`, `gonet`): output lines with a prompt
on terminals and clean lines in pipes, stdin lines from terminals and pipes alike, and escaping
of anything a peer sends that a terminal would interpret."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Final, TextIO

_CLEAR_LINE: Final = "\r\x1b[0K"


class Screen:
    """Writes chat output; the prompt and line clearing only on a terminal, so that piped
    output stays one clean line per event."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self.name = ""

    def write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def line(self, text: str) -> None:
        if self._tty:
            self.write(f"{_CLEAR_LINE}{text}\n{_CLEAR_LINE}{self.name}> ")
        else:
            self.write(f"{text}\n")


def _read_lines(
    stdin: TextIO, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]
) -> None:
    """Blocking reads in a thread: works for terminals, pipes and files alike."""
    try:
        for line in stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
    finally:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(queue.put_nowait, None)


def read_lines(stdin: TextIO) -> asyncio.Queue[str | None]:
    """A queue of the lines read from ``stdin``, then None at its end."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(
        target=_read_lines,
        args=(stdin, asyncio.get_running_loop(), lines),
        daemon=True,
        name="stdin",
    ).start()
    return lines


async def next_line(
    lines: asyncio.Queue[str | None], background: Sequence[asyncio.Task[None]]
) -> str | None:
    """The next line from :func:`read_lines` (None at the end of input); if one of the
    ``background`` tasks ends first, what ended it is raised (a wrong password, a lost
    rendezvous...)."""
    line_task = asyncio.ensure_future(lines.get())
    done, _ = await asyncio.wait({line_task, *background}, return_when=asyncio.FIRST_COMPLETED)
    for task in background:
        if task in done:
            line_task.cancel()
            task.result()
    return line_task.result()


def is_printable_ascii(text: str) -> bool:
    return all(" " <= char <= "~" for char in text)


def escape(text: str) -> str:
    """``text`` with everything but printable ASCII (and the backslash itself) escaped, so
    a peer cannot move our cursor, recolour or clear our terminal."""
    if is_printable_ascii(text) and "\\" not in text:
        return text
    return "".join(
        _escaped(char) if not " " <= char <= "~" or char == "\\" else char for char in text
    )


def escape_controls(text: str) -> str:
    """Like :func:`escape`, but printable non-ASCII text (``café``, emoji) stays as it is:
    only control, format (bidirectional overrides) and unassigned characters are escaped —
    for chats that carry UTF-8, as `weron chat` does."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(
        _escaped(char) if char == "\\" or not (char.isprintable() or char == " ") else char
        for char in text
    )


def _escaped(char: str) -> str:
    if char == "\\":
        return "\\\\"
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
