"""What a terminal shows after the chat screen's output: rows of text and a cursor, for the
escape sequences the screen writes (carriage return, new line, cursor up, erase below)."""

from __future__ import annotations

import re

_SEQUENCE = re.compile(r"\x1b\[(\d*)([AJ])")


class Terminal:
    """An endless screen ``width`` columns wide (no scrolling: every row is kept)."""

    def __init__(self, width: int = 1000) -> None:
        self.width = width
        self.rows: list[str] = [""]
        self.row = 0
        self.column = 0

    def feed(self, text: str) -> None:
        position = 0
        while position < len(text):
            match = _SEQUENCE.match(text, position)
            if match is not None:
                if match.group(2) == "A":
                    self.row = max(0, self.row - int(match.group(1) or 1))
                else:  # erase from the cursor to the end of the screen
                    self.rows[self.row] = self.rows[self.row][: self.column]
                    del self.rows[self.row + 1 :]
                position = match.end()
                continue
            self._put(text[position])
            position += 1

    def _put(self, char: str) -> None:
        if char == "\r":
            self.column = 0
        elif char == "\n":
            self.row += 1
            self.column = 0
            if self.row == len(self.rows):
                self.rows.append("")
        else:
            if self.column == self.width:  # wrap to the next row
                self._put("\n")
            line = self.rows[self.row].ljust(self.column)
            self.rows[self.row] = line[: self.column] + char + line[self.column + 1 :]
            self.column += 1

    @property
    def cursor_row(self) -> str:
        """The row the cursor is on: where the prompt is, or where a shell's would go."""
        return self.rows[self.row]
