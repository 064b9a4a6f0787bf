"""The chat screen: clean lines in pipes; on a terminal, everything above a prompt that keeps
the line being typed, and a key-by-key line editor."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator

import pytest
from tests.terminal import Terminal

from weron import log as weron_log
from weron.apps.console import LineEditor, Screen, console


class FakeTerminal(io.StringIO):
    """Output that says it is a terminal (80 columns: it has no size to tell)."""

    def isatty(self) -> bool:
        return True


def shown(out: io.StringIO, width: int = 80) -> Terminal:
    terminal = Terminal(width)
    terminal.feed(out.getvalue())
    return terminal


def test_in_a_pipe_every_event_is_one_clean_line_and_notices_go_to_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    screen = Screen(out, err)
    screen.prompt = "alice> "
    screen.line(".ws://localhost:1337/")
    screen.typed = "half"
    screen.notice("nobody here")
    screen.line("+bob@one")
    screen.close()
    assert out.getvalue() == ".ws://localhost:1337/\n+bob@one\n"
    assert err.getvalue() == "nobody here\n"


def test_lines_go_above_the_prompt_and_the_typed_line_is_redrawn() -> None:
    out = FakeTerminal()
    screen = Screen(out, out)
    screen.line(".ws://localhost:1337/")
    screen.prompt = "alice> "
    screen.typed = "half a line"
    screen.line("bob@one: hello")
    screen.notice("a notice")
    terminal = shown(out)
    assert terminal.rows == [
        ".ws://localhost:1337/",
        "bob@one: hello",
        "a notice",
        "alice> half a line",
    ]
    assert terminal.cursor_row == "alice> half a line"


def test_a_typed_line_wrapping_over_rows_is_erased_whole() -> None:
    out = FakeTerminal()
    screen = Screen(out, out)
    screen.prompt = "alice> "
    screen.typed = "x" * 170  # three rows of 80 columns with the prompt
    screen.line("bob@one: hello")
    assert shown(out).rows == ["bob@one: hello", *_rows("alice> " + "x" * 170)]


def _rows(text: str) -> list[str]:
    return [text[start : start + 80] for start in range(0, len(text), 80)]


def test_an_entered_line_stays_and_a_new_prompt_follows() -> None:
    out = FakeTerminal()
    screen = Screen(out, out)
    screen.prompt = "alice> "
    screen.typed = "sent"
    screen.enter()
    assert shown(out).rows == ["alice> sent", "alice> "]


def test_closing_erases_the_prompt_so_the_shell_prompt_gets_a_line_of_its_own() -> None:
    out = FakeTerminal()
    screen = Screen(out, out)
    screen.line("+bob@one")
    screen.prompt = "alice> "
    screen.typed = "unfinished"
    screen.close()
    terminal = shown(out)
    assert terminal.rows == ["+bob@one", ""]
    assert terminal.cursor_row == ""


@pytest.mark.usefixtures("restore_logging")
async def test_log_lines_to_the_terminal_are_printed_above_the_prompt() -> None:
    out = FakeTerminal()
    weron_log.configure(5, stream=out)
    with console(io.StringIO(), out, out) as (screen, _lines):
        screen.prompt = "alice> "
        screen.typed = "typing"
        weron_log.get_logger("weron.test").warning("Something happened")
    rows = shown(out, width=1000).rows
    assert len(rows) == 2 and rows[0].startswith("{") and rows[0].endswith("}")
    assert '"message":"Something happened"' in rows[0]
    assert rows[1] == ""  # the prompt was there until the console closed


@pytest.fixture
def editor() -> Iterator[tuple[LineEditor, Screen, asyncio.Queue[str | None]]]:
    main, secondary = os.openpty()
    out = FakeTerminal()
    screen = Screen(out, out)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    yield LineEditor(secondary, screen, lines), screen, lines
    os.close(main)
    os.close(secondary)


def typed(
    editor: tuple[LineEditor, Screen, asyncio.Queue[str | None]], keys: str
) -> list[str | None]:
    line_editor, _, lines = editor
    for key in keys:
        line_editor.key(key)
    return [lines.get_nowait() for _ in range(lines.qsize())]


def test_editor_keys(editor: tuple[LineEditor, Screen, asyncio.Queue[str | None]]) -> None:
    assert typed(editor, "helo\x7flo café\n") == ["hello café"]
    assert typed(editor, "gone\x15kept\n") == ["kept"]
    assert typed(editor, "one two\x17three\n") == ["one three"]
    assert typed(editor, "up\x1b[Aand\x1bOBaway\n") == ["upandaway"]  # arrows are ignored
    assert typed(editor, "bell\x07 \n") == ["bell "]  # control characters are not text
    assert typed(editor, "half") == []
    assert editor[1].typed == "half"


def test_ctrl_d_ends_input_only_on_an_empty_line(
    editor: tuple[LineEditor, Screen, asyncio.Queue[str | None]],
) -> None:
    assert typed(editor, "half\x04") == []
    assert typed(editor, "\x15\x04") == [None]
