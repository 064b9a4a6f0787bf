"""The chat screen the chat apps share (`weron chat`, `gonet`): output lines with a prompt
on terminals and clean lines in pipes, stdin lines from terminals and pipes alike, and escaping
of anything a peer sends that a terminal would interpret.

On a terminal the last line is the prompt with the line being typed: every other line (messages,
notices, log lines) is printed above it and the prompt is drawn again, so nothing lands glued
to it and what is being typed never vanishes. To know what is being typed, a terminal's input
is read key by key (:class:`LineEditor`) instead of line by line."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import os
import signal
import sys
import termios
import threading
import unicodedata
from collections.abc import Awaitable, Iterator, Sequence
from typing import Final, TextIO

from weron.apps.ascii import is_printable_ascii

_ERASE_BELOW: Final = "\x1b[J"
_COLUMNS: Final = 80  # when the terminal does not tell its width
_LOGGERS: Final = ("weron",)  # whose log lines are printed above the prompt


def _columns(text: str) -> int:
    """Terminal columns ``text`` takes: wide characters two, combining ones none."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )


class Screen:
    """Writes chat output; the prompt and the line being typed only on a terminal, so that
    piped output stays one clean line per event. Notices (what the app tells the user, not a
    chat event) go to ``err``."""

    def __init__(self, out: TextIO, err: TextIO | None = None) -> None:
        self._out = out
        self._err = err if err is not None else sys.stderr
        self.interactive = out.isatty()
        self._prompt = ""
        self._typed = ""
        self._drawn = ""  # what the prompt region shows now

    @property
    def prompt(self) -> str:
        return self._prompt

    @prompt.setter
    def prompt(self, prompt: str) -> None:
        self._prompt = prompt
        self._redraw()

    @property
    def typed(self) -> str:
        """The line being typed (kept by :class:`LineEditor`)."""
        return self._typed

    @typed.setter
    def typed(self, text: str) -> None:
        self._typed = text
        self._redraw()

    def line(self, text: str) -> None:
        """One line of chat output (a message, a join, a status)."""
        self.above(self._out, f"{text}\n")

    def notice(self, text: str) -> None:
        """One line telling the user something (a hint, a line that waits)."""
        self.above(self._err, f"{text}\n")

    def enter(self) -> None:
        """The typed line was sent: it stays on screen as typed, under a new prompt."""
        self._typed = ""
        if self._drawn:
            self._drawn = ""
            self._write(self._out, "\n")
        self._redraw()

    def close(self) -> None:
        """Erase the prompt: the shell's prompt comes next, on a line of its own."""
        self._write(self._out, self._erase())
        self._drawn = ""

    def above(self, stream: TextIO, text: str) -> None:
        """Write ``text`` (whole lines) to ``stream`` above the prompt."""
        if not self.interactive:
            self._write(stream, text)
            return
        self._write(self._out, self._erase())
        self._drawn = ""
        self._write(stream, text)
        self._redraw()

    def _erase(self) -> str:
        """Back to the start of the prompt region (it may wrap over several rows), erased."""
        if not self._drawn:
            return ""
        try:
            width = os.get_terminal_size(self._out.fileno()).columns or _COLUMNS
        except (OSError, ValueError):
            width = _COLUMNS
        rows = max(0, _columns(self._drawn) - 1) // width
        return "\r" + (f"\x1b[{rows}A" if rows else "") + _ERASE_BELOW

    def _redraw(self) -> None:
        if not self.interactive:
            return
        shown = self._prompt + self._typed
        self._write(self._out, self._erase() + shown)
        self._drawn = shown

    @staticmethod
    def _write(stream: TextIO, text: str) -> None:
        if text:
            stream.write(text)
            stream.flush()


class _LogsAbove:
    """A log handler's stream that writes above the prompt."""

    def __init__(self, screen: Screen, stream: TextIO) -> None:
        self._screen = screen
        self._stream = stream

    def write(self, text: str) -> int:
        self._screen.above(self._stream, text)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


@contextlib.contextmanager
def _logs_above(screen: Screen) -> Iterator[None]:
    """While the screen is in use, log lines to its terminal are printed above the prompt."""
    moved: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []
    if screen.interactive:
        for name in _LOGGERS:
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream.isatty():
                    stream = handler.stream
                    handler.setStream(_LogsAbove(screen, stream))
                    moved.append((handler, stream))
    try:
        yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


class LineEditor:
    """Reads a terminal key by key, without its echo and line editing, into ``lines``; the
    screen draws the line being typed. Keys: text, Enter, Backspace, Ctrl-U (erase the line),
    Ctrl-W (erase a word), Ctrl-D on an empty line (end of input); Ctrl-C and Ctrl-Z keep their
    signals; escape sequences (arrow keys...) are ignored."""

    def __init__(self, fd: int, screen: Screen, lines: asyncio.Queue[str | None]) -> None:
        self._fd = fd
        self._screen = screen
        self._lines = lines
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._escape = ""  # an escape sequence being skipped
        self._saved = termios.tcgetattr(fd)
        self._reading = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._raw()
        loop.add_reader(self._fd, self._readable)
        # Back from Ctrl-Z: the shell set the terminal its way meanwhile.
        loop.add_signal_handler(signal.SIGCONT, self._resumed)
        self._reading = True

    def stop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._reading:
            self._reading = False
            loop.remove_reader(self._fd)
        loop.remove_signal_handler(signal.SIGCONT)
        termios.tcsetattr(self._fd, termios.TCSANOW, self._saved)

    def _raw(self) -> None:
        mode = termios.tcgetattr(self._fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self._fd, termios.TCSANOW, mode)

    def _resumed(self) -> None:
        self._raw()
        self._screen.typed = self._screen.typed

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except OSError:  # the terminal hung up
            data = b""
        if not data:
            self._end()
            return
        for char in self._decoder.decode(data):
            self.key(char)

    def _end(self) -> None:
        if self._reading:
            self._reading = False
            asyncio.get_running_loop().remove_reader(self._fd)
        self._lines.put_nowait(None)

    def key(self, char: str) -> None:
        """Handle one typed character."""
        screen = self._screen
        if self._escape:
            self._escape += char
            if _escape_done(self._escape):
                self._escape = ""
        elif char == "\x1b":
            self._escape = char
        elif char in "\r\n":
            self._lines.put_nowait(screen.typed)
            screen.enter()
        elif char in "\x7f\b":
            screen.typed = screen.typed[:-1]
        elif char == "\x15":
            screen.typed = ""
        elif char == "\x17":
            kept = screen.typed.rstrip()
            screen.typed = kept[: len(kept) - len(kept.split(" ")[-1])]
        elif char == "\x04":
            if not screen.typed:
                self._end()
        elif char.isprintable() or char == "\t":
            screen.typed += char


def _escape_done(sequence: str) -> bool:
    """Whether an escape sequence (``ESC [ ... final``, ``ESC O x``, ``ESC x``) is complete."""
    if len(sequence) < 2:
        return False
    if sequence[1] in "[O":
        return len(sequence) > 2 and (sequence[1] == "O" or "@" <= sequence[-1] <= "~")
    return True


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


@contextlib.contextmanager
def console(
    stdin: TextIO, stdout: TextIO, stderr: TextIO | None = None
) -> Iterator[tuple[Screen, asyncio.Queue[str | None]]]:
    """The screen, and a queue of the lines read from ``stdin`` then None at its end; on
    leaving, the terminal is as it was (its mode, no prompt left on screen)."""
    screen = Screen(stdout, stderr)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    editor: LineEditor | None = None
    if screen.interactive and stdin.isatty():
        editor = LineEditor(stdin.fileno(), screen, lines)
        editor.start()
    else:
        threading.Thread(
            target=_read_lines,
            args=(stdin, asyncio.get_running_loop(), lines),
            daemon=True,
            name="stdin",
        ).start()
    try:
        with _logs_above(screen):
            yield screen, lines
    finally:
        if editor is not None:
            editor.stop()
        screen.close()


async def until(awaitable: Awaitable[object], background: Sequence[asyncio.Task[None]]) -> None:
    """Wait for ``awaitable``; if one of the ``background`` tasks ends first, what ended it is
    raised (a wrong password, a lost rendezvous...)."""
    waiting = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({waiting, *background}, return_when=asyncio.FIRST_COMPLETED)
    for task in background:
        if task in done:
            waiting.cancel()
            task.result()
    await waiting


async def next_line(
    lines: asyncio.Queue[str | None], background: Sequence[asyncio.Task[None]]
) -> str | None:
    """The next line from :func:`console` (None at the end of input), or what ended one of
    the ``background`` tasks raised."""
    line = asyncio.ensure_future(lines.get())
    await until(line, background)
    return line.result()


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
