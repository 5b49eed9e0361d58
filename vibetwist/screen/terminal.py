# -*- test-case-name: tests.test_screen -*-
"""The in-memory screen of a session, with its scrollback, and snapshots of it.

Sans-IO: text goes in with ``feed``; the visible rows come out as plain text
or as a :class:`vibetwist.model.snapshot.Snapshot`, the scrollback as rows of cells.
The terminal itself is :class:`vibetwist.screen.emulator.Emulator`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from itertools import islice
from typing import Any, overload

from vibetwist.model.snapshot import (
    BLANK,
    BOLD,
    DIM,
    INVERSE,
    INVISIBLE,
    ITALIC,
    STRIKETHROUGH,
    UNDERLINE,
    Cell,
    Color,
    Snapshot,
)
from vibetwist.screen.emulator import CHARSETS, Emulator, Glyph
from vibetwist.screen.parser import EmulatorStream
from vibetwist.screen.scrollback import FrozenLine, stretches

#: The designation of each character set table (by identity: the tables are shared).
_DESIGNATION = {id(table): code for code, table in reversed(CHARSETS.items())}

DEFAULT_SCROLLBACK = 10_000


@lru_cache(maxsize=8192)
def _cell(char: str, style: tuple[Any, ...]) -> Cell:
    """The snapshot cell for ``char`` drawn in ``style`` (a Glyph without its character)."""
    fg, bg, bold, italics, underscore, strikethrough, reverse, _blink, dim, hidden = style
    attrs = (
        (BOLD if bold else 0)
        | (ITALIC if italics else 0)
        | (UNDERLINE if underscore else 0)
        | (DIM if dim else 0)
        | (INVERSE if reverse else 0)
        | (INVISIBLE if hidden else 0)
        | (STRIKETHROUGH if strikethrough else 0)
    )
    if char == " " and fg is None and bg is None and not attrs:
        return BLANK
    return Cell(char, fg, bg, attrs)


@lru_cache(maxsize=8192)
def _glyph_cell(glyph: Glyph) -> Cell:
    return _cell(glyph.data, glyph[1:])


class _StyleCells(dict[str, Cell]):
    """The snapshot cells of one style, by character, made on first use."""

    __slots__ = ("style",)

    def __init__(self, style: tuple[Any, ...]) -> None:
        super().__init__()
        self.style = style

    def __missing__(self, char: str) -> Cell:
        cell = _cell(char, self.style)
        if len(self) < 4096:
            self[char] = cell
        return cell


_STYLE_CELLS: dict[tuple[Any, ...], _StyleCells] = {}


def _history_row(line: FrozenLine, columns: int) -> tuple[Cell, ...]:
    """A scrollback line as snapshot cells, leaving out each wide character's continuation."""
    cells: list[Cell] = []
    for style, chars in stretches(line, columns):
        style_cells = _STYLE_CELLS.get(style)
        if style_cells is None:
            if len(_STYLE_CELLS) >= 4096:
                _STYLE_CELLS.clear()
            style_cells = _STYLE_CELLS[style] = _StyleCells(style)
        cells += map(style_cells.__getitem__, filter(None, chars) if isinstance(chars, tuple) else chars)
    return tuple(cells)


class _History(Sequence[tuple[Cell, ...]]):
    """Lines that scrolled off, frozen when taken (a scrolled-off line never changes)."""

    def __init__(self, lines: tuple[FrozenLine, ...], columns: int) -> None:
        self._lines = lines
        self._columns = columns

    def __len__(self) -> int:
        return len(self._lines)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (_History, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<scrollback of {len(self)} lines>"

    @overload
    def __getitem__(self, index: int) -> tuple[Cell, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[Cell, ...]]: ...

    def __getitem__(self, index: int | slice) -> tuple[Cell, ...] | list[tuple[Cell, ...]]:
        if isinstance(index, slice):
            return [_history_row(line, self._columns) for line in self._lines[index]]
        return _history_row(self._lines[index], self._columns)


class TerminalScreen:
    """A terminal screen of cols x rows with a bounded scrollback."""

    def __init__(self, cols: int, rows: int, scrollback: int = DEFAULT_SCROLLBACK) -> None:
        self._size = (cols, rows)
        self._scrollback = max(1, scrollback)
        self._emulator: Emulator | None = None
        self._stream: EmulatorStream | None = None

    @property
    def _screen(self) -> Emulator:
        """The emulator, made on first use, with all that was fed applied."""
        # A session nobody looks at and that printed nothing costs nothing.
        if self._emulator is None:
            self._emulator = Emulator(*self._size, history=self._scrollback)
            self._stream = EmulatorStream(self._emulator)
        else:
            assert self._stream is not None
            self._stream.flush()
        return self._emulator

    @property
    def cols(self) -> int:
        return int(self._emulator.columns) if self._emulator is not None else self._size[0]

    @property
    def rows(self) -> int:
        return int(self._emulator.lines) if self._emulator is not None else self._size[1]

    @property
    def scrollback_capacity(self) -> int:
        """How many lines the scrollback keeps at most."""
        return self._scrollback

    @property
    def scrollback_lines(self) -> int:
        """How many lines have scrolled off the top and are kept."""
        return len(self._screen.scrollback) if self._emulator is not None else 0

    def feed(self, text: str) -> None:
        """Interpret text (with its escape sequences) as a terminal would."""
        if self._stream is None:
            self._screen  # noqa: B018 - makes the stream too
        assert self._stream is not None
        self._stream.feed(text)

    def mid_sequence(self) -> bool:
        """Whether the output fed so far ends part way through an escape sequence."""
        if self._emulator is None:
            return False
        self._screen  # noqa: B018 - applies what is held back
        assert self._stream is not None
        return not self._stream.idle

    def skip(self, text: str, scrolling: int | None = None) -> int:
        """Drop what ``text``, output not fed yet, starts with that cannot change what the
        screen will show once all of it is fed; return how many characters were dropped.

        Feed ``text[n:]`` next.  Only output that just scrolls is ever dropped,
        and only when at least the screen's rows plus its scrollback of such
        lines follow it in ``text``: a flood of 100 MB needs only its last
        lines read (see :meth:`vibetwist.screen.emulator.Emulator.skip_scrolled`;
        ``scrolling`` is how much of ``text`` is known to only scroll).
        """
        screen = self._screen
        assert self._stream is not None
        if not self._stream.idle:
            return 0  # a cut-off sequence waits for its end first
        return screen.skip_scrolled(text, scrolling)

    def resize(self, cols: int, rows: int) -> None:
        """Change the size, as the program's terminal did."""
        if self._emulator is None:
            self._size = (cols, rows)
        else:
            self._screen.resize(lines=rows, columns=cols)

    @property
    def alternate(self) -> bool:
        """Whether the alternate screen shows (a full-screen program such as vim or less runs)."""
        return self._emulator is not None and self._screen.alternate

    @property
    def cursor(self) -> tuple[int, int]:
        """Where the cursor is: column (the width itself while a wrap is pending) and row."""
        if self._emulator is None:
            return (0, 0)
        cursor = self._screen.cursor
        return (cursor.x, cursor.y)

    def _glyph_rows(self, main: bool = False) -> list[list[Glyph]]:
        screen = self._screen
        columns = range(screen.columns)
        blank_row = [screen.default_char] * screen.columns
        buffer: Mapping[int, Any] = screen.main_buffer if main else screen.buffer
        rows = []
        for y in range(screen.lines):
            line = buffer.get(y)
            rows.append(blank_row if line is None else list(map(line.__getitem__, columns)))
        return rows

    def _cell_rows(self, main: bool = False) -> tuple[tuple[Cell, ...], ...]:
        return tuple(
            tuple(_glyph_cell(glyph) for glyph in row if glyph.data) for row in self._glyph_rows(main)
        )

    def main_rows(self) -> tuple[tuple[Cell, ...], ...]:
        """The main screen's rows as cells (as in snapshot rows), also under the alternate screen."""
        return self._cell_rows(main=True)

    def main_snapshot(self) -> Snapshot | None:
        """While the alternate screen shows, the main screen under it, with the cursor where
        leaving it with ``CSI ?1049 l`` puts it back (home when nothing was saved); else None."""
        if not self.alternate:
            return None
        screen = self._screen
        saved = screen.main_saved
        x, y = (saved.x, saved.y) if saved is not None else (0, 0)
        return Snapshot(
            cols=screen.columns,
            rows=self.main_rows(),
            viewport_y=self.scrollback_lines,
            cursor_x=min(x, screen.columns - 1),
            cursor_y=min(y, screen.lines - 1),
        )

    def lines(self) -> list[str]:
        """The visible rows as text, trailing blanks removed."""
        return ["".join(glyph.data for glyph in row).rstrip() for row in self._glyph_rows()]

    def text(self) -> str:
        """The visible screen as plain text, one line per row."""
        return "\n".join(self.lines()) + "\n"

    def history_rows(self) -> Sequence[tuple[Cell, ...]]:
        """The scrollback, oldest line first, each line as its cells (as in snapshot rows).

        The sequence is taken now and later output does not change it; each
        line is made into cells (about 7 us) only when it is read, so taking
        it is cheap and a long scrollback can be read a slice at a time.
        """
        if self._emulator is None:
            return _History((), self.cols)
        screen = self._screen
        return _History(tuple(screen.scrollback), screen.columns)

    def history_rows_between(self, start: int, stop: int) -> list[tuple[Cell, ...]]:
        """Lines ``start`` to ``stop`` (exclusive, oldest is 0) of :meth:`history_rows`."""
        if self._emulator is None:
            return []
        screen = self._screen
        columns = screen.columns
        return [_history_row(line, columns) for line in islice(screen.scrollback, start, stop)]

    def private_modes(self) -> frozenset[int]:
        """The DEC private modes set now (25 cursor shown, 1 application cursor keys, ...)."""
        return frozenset(mode >> 5 for mode in self._screen.mode if mode & 31 == 0 and mode >> 5)

    def margins(self, main: bool = False) -> tuple[int, int] | None:
        """The scroll region (top and bottom row, from 0) of the visible screen, or with ``main``
        of the main screen (also under the alternate one); None when it is the whole screen."""
        screen = self._screen
        margins = screen.main_margins if main else screen.margins
        return None if margins is None else (margins.top, margins.bottom)

    def charsets(self) -> tuple[str, str, int]:
        """The character sets designated as G0 and G1 (``B`` ASCII, ``0`` DEC line drawing,
        ``A`` UK), and which of the two is in use (0 after SI, 1 after SO)."""
        screen = self._screen
        return (_DESIGNATION[id(screen.g0_charset)], _DESIGNATION[id(screen.g1_charset)], screen.charset)

    def pen(self) -> tuple[Color, Color, int]:
        """The style new text is drawn in: (foreground, background, attribute bits)."""
        cell = _glyph_cell(self._screen.cursor.attrs._replace(data=" "))
        return (cell.fg, cell.bg, cell.attrs)

    def wrap_pending(self) -> bool:
        """True when the cursor is past the last column: the next character starts a new line."""
        return bool(self._screen.cursor.x >= self._screen.columns)

    def snapshot(self) -> Snapshot:
        """The visible rows, the cursor and where the view starts in the whole buffer."""
        screen = self._screen
        cols = screen.columns
        rows = self._cell_rows()
        cursor = screen.cursor
        return Snapshot(
            cols=cols,
            rows=rows,
            viewport_y=self.scrollback_lines,
            cursor_x=min(cursor.x, cols - 1) if cols else 0,
            cursor_y=cursor.y,
        )
