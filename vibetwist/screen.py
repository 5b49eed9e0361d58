# -*- test-case-name: tests.test_screen -*-
"""The in-memory screen of a session: pyte, with its scrollback, and snapshots of it.

Sans-IO: text goes in with ``feed``; the visible rows come out as plain text
or as a :class:`vibetwist.snapshot.Snapshot`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import overload

import pyte
from pyte.screens import Char
from wcwidth import wcwidth

from vibetwist.snapshot import (
    BLANK,
    BOLD,
    INVERSE,
    ITALIC,
    RGB,
    STRIKETHROUGH,
    UNDERLINE,
    Cell,
    Color,
    Snapshot,
)

DEFAULT_SCROLLBACK = 10_000

_NAMED = ["black", "red", "green", "brown", "blue", "magenta", "cyan", "white"]
_PALETTE = {name: i for i, name in enumerate(_NAMED)}
_PALETTE.update({"bright" + name: i + 8 for i, name in enumerate(_NAMED)})
# pyte spells yellow "brown"; accept both.
_PALETTE["yellow"] = 3
_PALETTE["brightyellow"] = 11


@lru_cache(maxsize=4096)
def _color(value: str) -> Color:
    if value == "default":
        return None
    index = _PALETTE.get(value)
    if index is not None:
        return index
    if len(value) == 6:
        try:
            n = int(value, 16)
        except ValueError:
            return None
        return RGB(n >> 16, (n >> 8) & 0xFF, n & 0xFF)
    return None


@lru_cache(maxsize=4096)
def _invisible_breaker(char: str) -> bool:
    """True for a zero-width character that is not a combining mark (ZWJ, VS16, ZWSP...)."""
    return wcwidth(char) == 0 and not unicodedata.combining(char)


def drop_zero_width(text: str) -> str:
    """Remove the zero-width, non-combining characters at which pyte stops drawing."""
    if text.isascii():
        return text
    return "".join(c for c in text if c < "\x80" or not _invisible_breaker(c))


class _Screen(pyte.HistoryScreen):
    """pyte's HistoryScreen, minus its habit of dropping text after U+200D/U+FE0F/U+200B."""

    def draw(self, data: str) -> None:
        super().draw(drop_zero_width(data))


def _cell(char: Char) -> Cell:
    if (
        char.fg == "default"
        and char.bg == "default"
        and not (char.bold or char.italics or char.underscore or char.strikethrough or char.reverse)
    ):
        return BLANK if char.data == " " else Cell(char.data)
    attrs = (
        (BOLD if char.bold else 0)
        | (ITALIC if char.italics else 0)
        | (UNDERLINE if char.underscore else 0)
        | (INVERSE if char.reverse else 0)
        | (STRIKETHROUGH if char.strikethrough else 0)
    )
    return Cell(char.data, _color(char.fg), _color(char.bg), attrs)


class _History(Sequence[tuple[Cell, ...]]):
    """Lines that scrolled off, frozen when taken (pyte never changes a line once it is there)."""

    def __init__(
        self, lines: tuple[dict[int, Char], ...], convert: Callable[[dict[int, Char]], tuple[Cell, ...]]
    ) -> None:
        self._lines = lines
        self._convert = convert

    def __len__(self) -> int:
        return len(self._lines)

    @overload
    def __getitem__(self, index: int) -> tuple[Cell, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[Cell, ...]]: ...

    def __getitem__(self, index: int | slice) -> tuple[Cell, ...] | list[tuple[Cell, ...]]:
        if isinstance(index, slice):
            return [self._convert(line) for line in self._lines[index]]
        return self._convert(self._lines[index])


class TerminalScreen:
    """A terminal screen of cols x rows with a bounded scrollback."""

    def __init__(self, cols: int, rows: int, scrollback: int = DEFAULT_SCROLLBACK) -> None:
        self._size = (cols, rows)
        self._scrollback = max(1, scrollback)
        self._pyte: _Screen | None = None
        self._pyte_stream: pyte.Stream | None = None

    @property
    def _screen(self) -> _Screen:
        # Made on first use: a session nobody looks at and that printed nothing costs nothing.
        if self._pyte is None:
            self._pyte = _Screen(*self._size, history=self._scrollback)
            self._pyte_stream = pyte.Stream(self._pyte)
        return self._pyte

    @property
    def _stream(self) -> pyte.Stream:
        if self._pyte_stream is None:
            self._screen  # noqa: B018 - makes the stream too
        assert self._pyte_stream is not None
        return self._pyte_stream

    @property
    def cols(self) -> int:
        return int(self._screen.columns) if self._pyte is not None else self._size[0]

    @property
    def rows(self) -> int:
        return int(self._screen.lines) if self._pyte is not None else self._size[1]

    @property
    def scrollback_lines(self) -> int:
        """How many lines have scrolled off the top and are kept."""
        return len(self._screen.history.top)

    def feed(self, text: str) -> None:
        """Interpret text (with its escape sequences) as a terminal would."""
        self._stream.feed(text)

    def resize(self, cols: int, rows: int) -> None:
        """Change the size, as the program's terminal did."""
        if self._pyte is None:
            self._size = (cols, rows)
        else:
            self._pyte.resize(lines=rows, columns=cols)

    def lines(self) -> list[str]:
        """The visible rows as text, trailing blanks removed."""
        return [line.rstrip() for line in self._screen.display]

    def text(self) -> str:
        """The visible screen as plain text, one line per row."""
        return "\n".join(self.lines()) + "\n"

    def _row(self, line: dict[int, Char]) -> tuple[Cell, ...]:
        cells = []
        for x in range(self._screen.columns):
            char = line[x]
            if char.data == "":
                continue  # the second column of a wide character
            cells.append(_cell(char))
        return tuple(cells)

    def history_rows(self) -> Sequence[tuple[Cell, ...]]:
        """The scrollback, oldest line first, each line as its cells (as in snapshot rows).

        The sequence is taken now and later output does not change it; each
        line is converted to cells only when it is read, so taking it is cheap
        and a long scrollback can be read a slice at a time.
        """
        return _History(tuple(self._screen.history.top), self._row)

    def private_modes(self) -> frozenset[int]:
        """The DEC private modes set now (25 cursor shown, 1 application cursor keys, ...)."""
        return frozenset(mode >> 5 for mode in self._screen.mode if mode & 31 == 0 and mode >> 5)

    def pen(self) -> tuple[Color, Color, int]:
        """The style new text is drawn in: (foreground, background, attribute bits)."""
        cell = _cell(self._screen.cursor.attrs)
        return (cell.fg, cell.bg, cell.attrs)

    def wrap_pending(self) -> bool:
        """True when the cursor is past the last column: the next character starts a new line."""
        return bool(self._screen.cursor.x >= self._screen.columns)

    def snapshot(self) -> Snapshot:
        """The visible rows, the cursor and where the view starts in the whole buffer."""
        screen = self._screen
        cols = screen.columns
        rows = [self._row(screen.buffer[y]) for y in range(screen.lines)]
        cursor = screen.cursor
        return Snapshot(
            cols=cols,
            rows=tuple(rows),
            viewport_y=self.scrollback_lines,
            cursor_x=min(cursor.x, cols - 1) if cols else 0,
            cursor_y=cursor.y,
        )
