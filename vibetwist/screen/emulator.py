# -*- test-case-name: tests.test_emulator -*-
"""A terminal screen that behaves as xterm, fast enough to keep up with a PTY.

pyte's :class:`pyte.Screen` gives the storage (rows of cells, the cursor, the
mode set); the behaviour is xterm's, as xterm.js (the browser client's
terminal) shows it, and ``tests/test_differential.py`` compares the two cell
by cell.  Besides what pyte does, the screen has the alternate screen
(``CSI ?1049 h/l``, ``?47``, ``?1047``), the DEC line-drawing character set
with SO/SI, SU/SD, REP, CHT/CBT, HPA, SCOSC/SCORC, DECSTR, one saved cursor
per screen, the background colour in erased and scrolled-in cells, wide
characters blanked whole when half of one is written over, every character
of no width joined to the cell before (combining marks, Hangul jamo, ZWJ),
the cursor stopping at a margin only when it would cross it, origin mode
clamping to the region, and xterm.js's rules for a change of rows.
``docs/screen.md`` lists where it still differs, and why.

What makes it fast:

- :class:`Emulator` draws a run of printable ASCII with one dict update per
  screen line, from cells built once per style and shared, instead of a
  ``namedtuple._replace`` per character; it keeps its scrollback frozen
  small (:mod:`vibetwist.screen.scrollback`) instead of HistoryScreen's dict per
  line behind a wrapper on every attribute access; and it caches what
  ``select_graphic_rendition`` computes.  Checks for halves of wide
  characters are made only once a wide character was drawn.
- :class:`vibetwist.screen.parser.EmulatorStream` reads its input.
- Output that only scrolls (lines of text and SGR at the bottom of the
  screen, as ``ls`` or ``cat`` print) is held back a batch at a time and
  scrolled in at once (:meth:`Emulator.scroll_in`): a line that passes
  through the screen within the batch goes to the scrollback without ever
  being made into cells, and one that would leave the scrollback within the
  batch is not kept at all.  :meth:`Emulator.skip_scrolled` drops such
  output outright when enough of it follows to push out all it could leave.
- The alternate screen costs nothing until a program enters it: it is a
  new set of rows then, and the main screen's rows wait aside.

pyte's own errors are fixed too: colon-form SGR (``38:2::R:G:B``, ``4:3``)
is understood; dim (2) and invisible (8) are kept; a palette colour stays a
palette index while an RGB colour stays RGB; SGR 105 is a bright magenta
background; and a sequence whose parameters make a handler raise is ignored,
as a terminal ignores it.

Cells are :class:`Glyph` tuples: pyte's ``Char`` fields with colours as
:data:`vibetwist.model.snapshot.Color` values, plus ``dim`` and ``hidden``.

Sans-IO: text goes in, state comes out.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

import pyte
from pyte import charsets, modes
from pyte.screens import Margins, StaticDefaultDict, wcwidth

from vibetwist.model.snapshot import RGB, Color
from vibetwist.screen.scrollback import FrozenLine, Scrollback, stretches

__all__ = ["CHARSETS", "SCROLLING", "Emulator", "Glyph", "change_rows", "colon_sgr", "split_sgr"]


class Glyph(NamedTuple):
    """One styled cell: pyte's ``Char`` with snapshot colours, dim and invisible."""

    data: str
    fg: Color = None
    bg: Color = None
    bold: bool = False
    italics: bool = False
    underscore: bool = False
    strikethrough: bool = False
    reverse: bool = False
    blink: bool = False
    dim: bool = False
    hidden: bool = False


_BLANK = Glyph(" ")
_REVERSE_BLANK = Glyph(" ", reverse=True)


class _Glyphs(dict[str, Glyph]):
    """The cells of one style, by character, made on first use and shared."""

    __slots__ = ("style",)

    def __init__(self, style: Glyph) -> None:
        super().__init__()
        self.style = style

    def __missing__(self, char: str) -> Glyph:
        glyph = self.style._replace(data=char)
        if len(self) < 4096:
            self[char] = glyph
        return glyph


# Glyphs are immutable values, so every screen shares these caches.
_GLYPHS: dict[Glyph, _Glyphs] = {}
_SGR: dict[tuple[Glyph, tuple[int, ...], bool], Glyph] = {}
_SGR_TEXT: dict[tuple[Glyph, str, bool], _Glyphs] = {}
_CACHE_LIMIT = 4096


def _glyphs(style: Glyph) -> _Glyphs:
    glyphs = _GLYPHS.get(style)
    if glyphs is None:
        if len(_GLYPHS) >= _CACHE_LIMIT:
            _GLYPHS.clear()
        glyphs = _GLYPHS[style] = _Glyphs(style)
    return glyphs


# SGR parameters that set or clear a flag.
_FLAGS: dict[int, dict[str, bool]] = {
    1: {"bold": True},
    2: {"dim": True},
    3: {"italics": True},
    4: {"underscore": True},
    5: {"blink": True},
    7: {"reverse": True},
    8: {"hidden": True},
    9: {"strikethrough": True},
    22: {"bold": False, "dim": False},
    23: {"italics": False},
    24: {"underscore": False},
    25: {"blink": False},
    27: {"reverse": False},
    28: {"hidden": False},
    29: {"strikethrough": False},
}


def _rendition(style: Glyph, params: tuple[int, ...], blank: Glyph) -> Glyph:
    """``style`` changed by the SGR ``params``, read as pyte reads them."""
    if params == (0,):
        return blank
    replace: dict[str, Any] = {}
    todo = list(reversed(params))
    while todo:
        param = todo.pop()
        if param == 0:
            replace.update(blank._asdict())
        elif param in _FLAGS:
            replace.update(_FLAGS[param])
        elif 30 <= param <= 37:
            replace["fg"] = param - 30
        elif param == 39:
            replace["fg"] = None
        elif 40 <= param <= 47:
            replace["bg"] = param - 40
        elif param == 49:
            replace["bg"] = None
        elif 90 <= param <= 97:
            replace["fg"] = param - 82
        elif 100 <= param <= 107:
            replace["bg"] = param - 92
        elif param in (38, 48):
            key = "fg" if param == 38 else "bg"
            try:
                kind = todo.pop()
                if kind == 5:
                    index = todo.pop()
                    if index < 256:
                        replace[key] = index
                elif kind == 2:
                    r, g, b = todo.pop(), todo.pop(), todo.pop()
                    # pyte makes an out-of-range component an unusable colour: the default.
                    replace[key] = RGB(r, g, b) if max(r, g, b) <= 255 else None
            except IndexError:
                pass  # too few parameters: pyte ignores the colour
    return style._replace(**replace)


_PRINTABLE_ASCII = re.compile(r"[ -~]+").fullmatch
#: Text and the parameters of its SGR sequences, in turns: ``["", "1;31", "abc", ...]``.
split_sgr = re.compile(r"\x1b\[([0-9;]*)m").split
_SGR_PARAMS = re.compile(r"\x1b\[([0-9;:]*)m")
#: Output that only scrolls: text, CR, LF, tab, backspace, SGR and erases within the line (EL, which
#: ls --color sends), none of which touches any row but the cursor's (see :meth:`Emulator.skip_scrolled`).
SCROLLING = re.compile(r"(?:[^\x00-\x07\x0b-\x0c\x0e-\x1f\x7f-\x9f]++|\x1b\[[0-9;:]*+m|\x1b\[[012]?K)++")
_IDENTITY = charsets.LAT1_MAP


# The DEC special graphics set (``ESC ( 0``): line drawing and a few symbols for 0x60-0x7e.
_DEC_GRAPHICS = _IDENTITY.translate(
    str.maketrans("`abcdefghijklmnopqrstuvwxyz{|}~", "◆▒␉␌␍␊°±␤␋┘┐┌└┼⎺⎻─⎼⎽├┤┴┬│≤≥π≠£·")
)
#: The character sets ``ESC ( F`` and ``ESC ) F`` designate, by ``F``; any other is ASCII.
CHARSETS = {"B": _IDENTITY, "0": _DEC_GRAPHICS, "A": _IDENTITY.replace("#", "£")}
#: The DEC private modes that switch to the alternate screen.
ALTERNATE_MODES = (47, 1047, 1049)
_DEFAULT_MODES = frozenset([modes.DECAWM, modes.DECTCEM])
# Modes DECSTR turns off: insert, origin, application cursor keys and keypad, bracketed paste.
_SOFT_RESET_OFF = frozenset([modes.IRM, modes.DECOM, 1 << 5, 66 << 5, 2004 << 5])


class Saved(NamedTuple):
    """What DECSC (``ESC 7``, ``CSI s``) keeps and DECRC (``ESC 8``, ``CSI u``) brings back."""

    x: int
    y: int
    attrs: Glyph
    translation: str


_NOTHING_SAVED = Saved(0, 0, _BLANK, _IDENTITY)


class _Stashed(NamedTuple):
    """The main screen while the alternate one shows."""

    buffer: Any
    margins: Margins | None
    tabstops: set[int]
    saved: Saved | None
    y: int  # the cursor's row when the alternate screen came


def _erase_glyph(style: Glyph) -> Glyph:
    """An erased cell: blank in the current background colour only, as in xterm."""
    return (
        _BLANK
        if style.bg is None
        else _ERASED.get(style.bg) or _ERASED.setdefault(style.bg, Glyph(" ", bg=style.bg))
    )


_ERASED: dict[Color, Glyph] = {}


class Emulator(pyte.Screen):
    """A pyte screen made to behave as xterm, fast, with a compact scrollback of ``history`` lines."""

    buffer: Any  # pyte's lines (row -> column -> cell), holding Glyphs

    def __init__(self, columns: int, lines: int, history: int) -> None:
        self.scrollback = Scrollback(history)
        self._glyphs = _glyphs(_BLANK)
        self._stashed: _Stashed | None = None
        self._alternate_saved: Saved | None = None
        self.saved: Saved | None = None
        self.translation = _IDENTITY
        #: Whether a wide character may be on screen (so writes check for halves of one).
        self.wide = False
        super().__init__(columns, lines)

    @property
    def default_char(self) -> Glyph:  # type: ignore[override]
        """A blank cell; reverse video while DECSCNM is set, as in pyte."""
        return _REVERSE_BLANK if modes.DECSCNM in self.mode else _BLANK

    @property
    def alternate(self) -> bool:
        """Whether the alternate screen shows (a full-screen program runs)."""
        return self._stashed is not None

    @property
    def main_buffer(self) -> Any:
        """The main screen's rows, also while the alternate screen shows."""
        return self.buffer if self._stashed is None else self._stashed.buffer

    @property
    def main_saved(self) -> Saved | None:
        """What DECSC saved on the main screen."""
        return self.saved if self._stashed is None else self._stashed.saved

    def _new_buffer(self) -> Any:
        return defaultdict(lambda: StaticDefaultDict(self.default_char))

    def _default_tabstops(self, start: int = 0) -> set[int]:
        return set(range(max(8, start + 7 - (start + 7) % 8), self.columns, 8))

    def reset(self) -> None:
        """RIS: everything as when the terminal started, the scrollback forgotten."""
        stashed = getattr(self, "_stashed", None)
        if stashed is not None:
            self.buffer = stashed.buffer
            self._stashed = None
        self.buffer.clear()
        self.dirty = set()
        self.margins = None
        self.mode = set(_DEFAULT_MODES)
        self.title = ""
        self.icon_name = ""
        self.charset = 0
        self.g0_charset = self.g1_charset = self.translation = _IDENTITY
        self.tabstops = self._default_tabstops()
        self.cursor = pyte.screens.Cursor(0, 0, self.default_char)  # type: ignore[arg-type]
        self.saved = self._alternate_saved = None
        self.saved_columns = None
        self.wide = False
        self.scrollback.clear()

    def soft_reset(self) -> None:
        """DECSTR (``CSI ! p``): modes, margins, style, character sets and the saved cursor
        reset; the screen stays."""
        self.mode -= _SOFT_RESET_OFF
        self.mode |= _DEFAULT_MODES
        self.cursor.hidden = False
        self.margins = None
        self.cursor.attrs = self.default_char  # type: ignore[assignment]
        self.charset = 0
        self.g0_charset = self.g1_charset = self.translation = _IDENTITY
        self.saved = _NOTHING_SAVED

    # Modes

    def set_mode(self, *modes_: int, **kwargs: Any) -> None:
        """SM and DECSET: the alternate screen, origin mode (homes the cursor) and the rest.
        DECCOLM (132 columns) is ignored: the size is the PTY's."""
        if not kwargs.get("private"):
            self.mode.update(m for m in modes_ if m in (4, 20))
            return
        for mode in modes_:
            if mode in ALTERNATE_MODES:
                if mode == 1049:
                    self.save_cursor()
                self._enter_alternate()
            elif mode == 6:
                self.mode.add(modes.DECOM)
                self.cursor_position()
            elif mode == 5:
                super().set_mode(mode, private=True)
            elif mode == 25:
                self.mode.add(modes.DECTCEM)
                self.cursor.hidden = False
            elif mode != 3:
                self.mode.add(mode << 5)

    def reset_mode(self, *modes_: int, **kwargs: Any) -> None:
        """RM and DECRST, as :meth:`set_mode`."""
        if not kwargs.get("private"):
            self.mode.difference_update(modes_)
            return
        for mode in modes_:
            if mode in ALTERNATE_MODES:
                self._leave_alternate()
                if mode == 1049:
                    self.restore_cursor()
            elif mode == 6:
                self.mode.discard(modes.DECOM)
                self.cursor_position()
            elif mode == 5:
                super().reset_mode(mode, private=True)
            elif mode == 25:
                self.mode.discard(modes.DECTCEM)
                self.cursor.hidden = True
            elif mode != 3:
                self.mode.discard(mode << 5)

    def _enter_alternate(self) -> None:
        """Show a new blank alternate screen (in the erase colour), with its own margins, tab stops
        and saved cursor; the cursor stays where it is.  The main screen is kept aside as it is."""
        if self._stashed is not None:
            return
        self._stashed = _Stashed(self.buffer, self.margins, self.tabstops, self.saved, self.cursor.y)
        self.buffer = self._new_buffer()
        fill = _erase_glyph(self.cursor.attrs)  # type: ignore[arg-type]
        if fill is not _BLANK:
            for y in range(self.lines):
                self.buffer[y] = self._filled_row(fill)
        self.margins = None
        self.tabstops = self._default_tabstops()
        self.saved = self._alternate_saved

    @property
    def main_margins(self) -> Margins | None:
        """The main screen's scroll region, also while the alternate screen shows."""
        return self.margins if self._stashed is None else self._stashed.margins

    def _leave_alternate(self) -> None:
        """Show the main screen again, as it was; the cursor stays where it is."""
        stashed = self._stashed
        if stashed is None:
            return
        self._alternate_saved = self.saved
        self.buffer, self.margins, self.tabstops, self.saved = stashed[:4]
        self._stashed = None

    # Character sets

    def define_charset(self, code: str, mode: str) -> None:
        """SCS: ``ESC ( F`` designates G0, ``ESC ) F`` G1 (``0`` line drawing, ``A`` UK, else ASCII)."""
        table = CHARSETS.get(code, _IDENTITY)
        if mode == "(":
            self.g0_charset = table
            if self.charset == 0:
                self.translation = table
        elif mode == ")":
            self.g1_charset = table
            if self.charset == 1:
                self.translation = table

    def shift_in(self) -> None:
        """SI: draw with G0."""
        self.charset = 0
        self.translation = self.g0_charset

    def shift_out(self) -> None:
        """SO: draw with G1."""
        self.charset = 1
        self.translation = self.g1_charset

    # Saving the cursor

    def save_cursor(self, *params: int) -> None:
        """DECSC and SCOSC: one saved position, style and character set for the screen shown."""
        cursor = self.cursor
        self.saved = Saved(cursor.x, cursor.y, cursor.attrs, self.translation)  # type: ignore[arg-type]

    def restore_cursor(self, *params: int) -> None:
        """DECRC and SCORC: back to what was saved, as often as asked; home and plain when nothing was."""
        saved = self.saved or _NOTHING_SAVED
        cursor = self.cursor
        cursor.x, cursor.y = saved.x, saved.y
        cursor.attrs = saved.attrs  # type: ignore[assignment]
        self.translation = saved.translation
        self._restrict()

    # The cursor

    def _restrict(self) -> None:
        """Keep the cursor on the screen (in the scrolling region in origin mode); a pending wrap ends."""
        cursor = self.cursor
        cursor.x = max(0, min(cursor.x, self.columns - 1))
        if modes.DECOM in self.mode and self.margins is not None:
            top, bottom = self.margins
        else:
            top, bottom = 0, self.lines - 1
        cursor.y = max(top, min(cursor.y, bottom))

    def cursor_position(self, line: int | None = None, column: int | None = None) -> None:
        """CUP and HVP; in origin mode relative to the region and kept in it."""
        y = (line or 1) - 1
        cursor = self.cursor
        cursor.x = min((column or 1) - 1, self.columns - 1)
        if modes.DECOM in self.mode and self.margins is not None:
            top, bottom = self.margins
            cursor.y = min(top + y, bottom)
        else:
            cursor.y = min(y, self.lines - 1)

    def cursor_to_column(self, column: int | None = None) -> None:
        """CHA and HPA."""
        self.cursor.x = min((column or 1) - 1, self.columns - 1)
        self._restrict()

    def cursor_to_line(self, line: int | None = None) -> None:
        """VPA; in origin mode relative to the region and kept in it."""
        self.cursor_position(line, self.cursor.x + 1)

    def cursor_up(self, count: int | None = None) -> None:
        """CUU: up, stopping at the top margin unless the cursor starts above it."""
        self._restrict()
        cursor = self.cursor
        top = self.margins.top if self.margins else 0
        cursor.y = max(top if cursor.y >= top else 0, cursor.y - (count or 1))

    def cursor_down(self, count: int | None = None) -> None:
        """CUD: down, stopping at the bottom margin unless the cursor starts below it."""
        self._restrict()
        cursor = self.cursor
        bottom = self.margins.bottom if self.margins else self.lines - 1
        cursor.y = min(bottom if cursor.y <= bottom else self.lines - 1, cursor.y + (count or 1))

    def cursor_up1(self, count: int | None = None) -> None:
        """CPL."""
        self.cursor_up(count)
        self.cursor.x = 0

    def cursor_down1(self, count: int | None = None) -> None:
        """CNL."""
        self.cursor_down(count)
        self.cursor.x = 0

    def cursor_forward(self, count: int | None = None) -> None:
        """CUF and HPR."""
        self._restrict()
        self.cursor.x = min(self.cursor.x + (count or 1), self.columns - 1)

    def cursor_back(self, count: int | None = None) -> None:
        """CUB."""
        self._restrict()
        self.cursor.x = max(self.cursor.x - (count or 1), 0)

    def line_forward(self, count: int | None = None) -> None:
        """VPR: down, past the margins."""
        self._restrict()
        self.cursor.y += count or 1
        self._restrict()

    def backspace(self) -> None:
        """BS: a pending wrap ends, then one column left."""
        self._restrict()
        if self.cursor.x:
            self.cursor.x -= 1

    def carriage_return(self) -> None:
        self.cursor.x = 0

    # Tabs

    def tab(self) -> None:
        """HT: to the next tab stop, or the last column; nothing at a pending wrap."""
        self.tab_forward(1)

    def tab_forward(self, count: int | None = None) -> None:
        """CHT."""
        cursor = self.cursor
        last = self.columns - 1
        if cursor.x >= self.columns:
            return
        for _ in range(count or 1):
            cursor.x = min([stop for stop in self.tabstops if cursor.x < stop <= last] or [last])

    def tab_backward(self, count: int | None = None) -> None:
        """CBT."""
        cursor = self.cursor
        if cursor.x >= self.columns:
            return
        for _ in range(count or 1):
            cursor.x = max([stop for stop in self.tabstops if 0 < stop < cursor.x] or [0])

    def clear_tab_stop(self, how: int = 0) -> None:
        """TBC: 0 the stop at the cursor, 3 all."""
        if how == 0:
            self.tabstops.discard(self.cursor.x)
        elif how == 3:
            self.tabstops = set()

    # Scrolling

    def _filled_row(self, fill: Glyph) -> StaticDefaultDict[int, Any]:
        row: StaticDefaultDict[int, Any] = StaticDefaultDict(self.default_char)
        row.update(dict.fromkeys(range(self.columns), fill))
        return row

    def _blank_rows(self, rows: range) -> None:
        """Erase whole rows, in the erase colour."""
        fill = _erase_glyph(self.cursor.attrs)  # type: ignore[arg-type]
        buffer = self.buffer
        if fill is _BLANK:
            for y in rows:
                buffer.pop(y, None)
        else:
            for y in rows:
                buffer[y] = self._filled_row(fill)

    def index(self) -> None:
        """IND: down a line; at the bottom margin, scroll the region up.  A line leaving the
        top of the main screen goes to the scrollback."""
        cursor = self.cursor
        top, bottom = self.margins or (0, self.lines - 1)
        y = cursor.y
        if y != bottom:
            if y < self.lines - 1:
                cursor.y = y + 1
        else:
            buffer = self.buffer
            if top == 0 and self._stashed is None:
                self.scrollback.push(buffer.get(0, {}), self.default_char)  # type: ignore[arg-type]
            # Renumber the lines in one pass: those below the top margin move up
            # one, the top one leaves, the rest stay.  A line never drawn on stays
            # missing, which pyte's defaultdict would make blank with the same default.
            shifted = {(y - 1 if top < y <= bottom else y): line for y, line in buffer.items() if y != top}
            buffer.clear()
            buffer.update(shifted)
            if cursor.attrs.bg is not None:  # type: ignore[attr-defined]
                self._blank_rows(range(bottom, bottom + 1))
        if cursor.x >= self.columns:
            cursor.x = self.columns - 1

    def linefeed(self) -> None:
        """LF, VT, FF: :meth:`index` (and a carriage return in LNM mode)."""
        self.index()
        if modes.LNM in self.mode:
            self.cursor.x = 0

    def next_line(self) -> None:
        """NEL: a carriage return and a line feed."""
        self.cursor.x = 0
        self.index()

    def reverse_index(self) -> None:
        """RI: up a line; at the top margin, scroll the region down."""
        self._restrict()
        top, bottom = self.margins or (0, self.lines - 1)
        if self.cursor.y == top:
            self._move_rows(top, bottom, 1)
        elif self.cursor.y:
            self.cursor.y -= 1

    def _move_rows(self, top: int, bottom: int, by: int, erase: bool = True) -> None:
        """Rows ``top``..``bottom`` move down ``by`` (up when negative); rows moving past either end
        are lost, the rows left are erased in the erase colour (``erase``) or blank."""
        buffer = self.buffer
        by = max(-(bottom - top + 1), min(by, bottom - top + 1))
        moved = {y + by: line for y, line in buffer.items() if top <= y <= bottom and top <= y + by <= bottom}
        for y in range(top, bottom + 1):
            buffer.pop(y, None)
        buffer.update(moved)
        if erase:
            self._blank_rows(range(top, top + by) if by > 0 else range(bottom + 1 + by, bottom + 1))

    def scroll_up(self, count: int | None = None) -> None:
        """SU (``CSI S``): the region's rows move up; none goes to the scrollback."""
        top, bottom = self.margins or (0, self.lines - 1)
        self._move_rows(top, bottom, -(count or 1))

    def scroll_down(self, count: int | None = None, *rest: int) -> None:
        """SD (``CSI T``): the region's rows move down; the new rows are blank (xterm.js does not
        fill them with the background colour)."""
        top, bottom = self.margins or (0, self.lines - 1)
        self._move_rows(top, bottom, count or 1, erase=False)

    def insert_lines(self, count: int | None = None) -> None:
        """IL: blank lines at the cursor's, in the region; the cursor goes to column 0."""
        self._restrict()
        top, bottom = self.margins or (0, self.lines - 1)
        if top <= self.cursor.y <= bottom:
            self._move_rows(self.cursor.y, bottom, count or 1)
            self.cursor.x = 0

    def delete_lines(self, count: int | None = None) -> None:
        """DL: lines at the cursor's go, the region's rows below move up; the cursor goes to column 0."""
        self._restrict()
        top, bottom = self.margins or (0, self.lines - 1)
        if top <= self.cursor.y <= bottom:
            self._move_rows(self.cursor.y, bottom, -(count or 1))
            self.cursor.x = 0

    def set_margins(self, top: int | None = None, bottom: int | None = None) -> None:
        """DECSTBM: a region of at least two lines (a bottom past the screen is its last line);
        the cursor goes home."""
        top = top or 1
        if bottom is None or bottom == 0 or bottom > self.lines:
            bottom = self.lines
        if bottom > top:
            self.margins = None if (top, bottom) == (1, self.lines) else Margins(top - 1, bottom - 1)
            self.cursor_position()

    # Erasing

    @staticmethod
    def _is_stub(line: Any, x: int) -> bool:
        """Whether cell ``x`` is empty: the second half of a wide character (or what is left of one)."""
        cell = line.get(x)
        return cell is not None and not cell.data

    @staticmethod
    def _is_wide(line: Any, x: int) -> bool:
        """Whether cell ``x`` holds a wide character."""
        cell = line.get(x)
        return cell is not None and bool(cell.data) and wcwidth(cell.data[0]) == 2

    def _replace(self, line: Any, start: int, end: int, fill: Glyph) -> None:
        """Cells ``start``..``end`` become ``fill``; a wide character cut in half is blanked whole."""
        if self.wide:
            if start and self._is_wide(line, start - 1):
                line[start - 1] = fill
            if end < self.columns and self._is_wide(line, end - 1):
                line[end] = fill
        if fill is _BLANK:
            if start == 0 and end >= self.columns:
                line.clear()
            else:
                for x in range(start, end):
                    line.pop(x, None)
        else:
            line.update(dict.fromkeys(range(start, end), fill))

    def erase_in_line(self, how: int = 0, private: bool = False) -> None:
        """EL (and DECSEL): to the end of the line, from its start, or all, in the erase colour."""
        cursor = self.cursor
        end = {0: self.columns, 1: min(cursor.x + 1, self.columns), 2: self.columns}.get(how)
        if end is None:
            return
        line = self.buffer[cursor.y]
        self._replace(line, cursor.x if how == 0 else 0, end, _erase_glyph(cursor.attrs))  # type: ignore[arg-type]

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        """ED (and DECSED): below, above or all of the screen in the erase colour; ``3`` the
        scrollback only."""
        cursor = self.cursor
        if how == 0:
            self.erase_in_line(0)
            self._blank_rows(range(cursor.y + 1, self.lines))
        elif how == 1:
            self.erase_in_line(1)
            self._blank_rows(range(cursor.y))
        elif how == 2:
            if cursor.attrs.bg is None:  # type: ignore[attr-defined]
                self.buffer.clear()
            else:
                self._blank_rows(range(self.lines))
            self.wide = False
        elif how == 3 and self._stashed is None:
            self.scrollback.clear()

    def erase_characters(self, count: int | None = None) -> None:
        """ECH: ``count`` cells from the cursor, in the erase colour."""
        self._restrict()
        cursor = self.cursor
        end = min(cursor.x + (count or 1), self.columns)
        self._replace(self.buffer[cursor.y], cursor.x, end, _erase_glyph(cursor.attrs))  # type: ignore[arg-type]

    def _shift_cells(self, line: Any, x: int, by: int, fill: Glyph) -> None:
        """Cells from ``x`` move right ``by`` (left when negative); cells past the right edge are lost,
        the cells left empty are ``fill``."""
        columns = self.columns
        kept = {k: v for k, v in line.items() if k < x}
        moved = {k + by: v for k, v in line.items() if x <= k < columns and x <= k + by < columns}
        line.clear()
        line.update(kept)
        line.update(moved)
        if fill is not _BLANK:
            empty = range(x, min(x + by, columns)) if by > 0 else range(max(x, columns + by), columns)
            line.update(dict.fromkeys(empty, fill))

    def insert_characters(self, count: int | None = None) -> None:
        """ICH: blank cells at the cursor, the rest of the line moving right."""
        self._restrict()
        cursor = self.cursor
        x, columns = cursor.x, self.columns
        fill = _erase_glyph(cursor.attrs)  # type: ignore[arg-type]
        line = self.buffer[cursor.y]
        if self.wide and x and self._is_wide(line, x - 1):
            line[x - 1] = fill
        self._shift_cells(line, x, min(count or 1, columns - x), fill)
        if self.wide and self._is_wide(line, columns - 1):
            line[columns - 1] = fill

    def delete_characters(self, count: int | None = None) -> None:
        """DCH: cells at the cursor go, the rest of the line moving left."""
        self._restrict()
        cursor = self.cursor
        x, columns = cursor.x, self.columns
        fill = _erase_glyph(cursor.attrs)  # type: ignore[arg-type]
        line = self.buffer[cursor.y]
        self._shift_cells(line, x, -min(count or 1, columns - x), fill)
        if self.wide and x and self._is_wide(line, x - 1):
            line[x - 1] = fill
        if self.wide and self._is_stub(line, x):
            line[x] = fill

    def alignment_display(self) -> None:
        """DECALN: every cell an E in the current style, the cursor home."""
        glyph = self._current_glyphs()["E"]
        for y in range(self.lines):
            self.buffer[y] = self._filled_row(glyph)
        self.cursor_position()

    # Resizing

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        """A new size, taken as xterm.js takes it (see :func:`change_rows`); fewer columns cut
        the lines, and the margins reset."""
        lines = lines or self.lines
        columns = columns or self.columns
        if (lines, columns) == (self.lines, self.columns):
            return
        cursor = self.cursor
        if columns < self.columns:
            for buffer in (self.buffer, self.main_buffer):
                for line in buffer.values():
                    for x in [x for x in line if x >= columns]:
                        del line[x]
        elif columns > self.columns:
            self.tabstops |= self._default_tabstops(self.columns)
        self.columns = columns
        stashed = self._stashed
        if stashed is None:
            change_rows(self, lines)
        else:
            # The main screen with its own cursor row, then the alternate one, which keeps no scrollback.
            alternate, y, old_lines = self.buffer, cursor.y, self.lines
            self.buffer, cursor.y = stashed.buffer, stashed.y
            change_rows(self, lines)
            self._stashed = stashed._replace(buffer=self.buffer, y=cursor.y, margins=None)
            self.buffer, cursor.y, self.lines = alternate, y, old_lines
            change_rows(self, lines, keep=False)
        self.margins = None
        cursor.x = min(cursor.x, columns - 1)
        cursor.y = min(cursor.y, lines - 1)
        if self.saved is not None:
            self.saved = self.saved._replace(x=min(self.saved.x, columns - 1), y=min(self.saved.y, lines - 1))

    def unfreeze(self, line: FrozenLine) -> StaticDefaultDict[int, Any]:
        """A scrollback line as a row of cells again."""
        row: StaticDefaultDict[int, Any] = StaticDefaultDict(self.default_char)
        x = 0
        for style, chars in stretches(line, len(line[0])):
            glyphs = _glyphs(Glyph(" ", *style))
            for char in chars:
                if x >= self.columns:
                    return row
                row[x] = glyphs[char] if char else Glyph("", *style)
                x += 1
        return row

    # Drawing

    def can_scroll_in(self) -> bool:
        """Whether :meth:`scroll_in` applies: the cursor at the start of the bottom line of a
        whole-screen scrolling region of the main screen, that line blank, autowrap on, insert
        off, no character set."""
        cursor = self.cursor
        bottom = self.lines - 1
        mode = self.mode
        return (
            cursor.x == 0
            and cursor.y == bottom
            and self.margins is None
            and self._stashed is None
            and not self.buffer.get(bottom)
            and modes.DECAWM in mode
            and modes.IRM not in mode
            and self.translation is _IDENTITY
        )

    def scroll_in(self, lines: Sequence[str]) -> int:
        """Write lines as ``line + CR LF`` would when :meth:`can_scroll_in`, all at once.

        Each line is printable ASCII and SGR sequences; the lines are taken up
        to the first that is wider than the screen and holds SGR, or ends in a
        background colour (whose line feed would fill the next row with it).
        A wider line without SGR in the default background wraps, as drawn:
        a row for each screen width of it.  The screen's
        rows and the new lines form one column of rows that moves up by the
        number of lines taken: what passes the top goes to the scrollback (only
        the last lines it can hold are frozen at all), and only the rows left
        on screen are made into cells.

        :return: how many lines were taken.
        """
        columns = self.columns
        bottom = self.lines - 1
        cursor = self.cursor
        default = self.default_char
        new_rows: list[list[tuple[Glyph, str]]] = []
        taken = 0
        # Whether the style has the default background: a line without SGR keeps it so.
        plain = cursor.attrs.bg is None  # type: ignore[attr-defined]
        for line in lines:
            parts = split_sgr(line)
            if plain and len(parts) == 1:
                # Wider than the screen, it wraps: a row for each screen width of it.
                for start in range(0, max(len(line), 1), columns):
                    new_rows.append([(cursor.attrs, line[start : start + columns])])  # type: ignore[list-item]
                taken += 1
                continue
            if sum(map(len, parts[::2])) > columns:
                break
            before = cursor.attrs, self._glyphs
            segments = [(cursor.attrs, parts[0])]
            for i in range(1, len(parts), 2):
                self.style(parts[i])
                segments.append((cursor.attrs, parts[i + 1]))
            if cursor.attrs.bg is not None:  # type: ignore[attr-defined]
                cursor.attrs, self._glyphs = before  # type: ignore[assignment]
                break
            plain = True
            new_rows.append(segments)  # type: ignore[arg-type]
            taken += 1
        if not taken:
            return 0
        buffer = self.buffer
        # The column of rows: the screen's rows above the (blank) bottom one, then the new lines.
        old_rows = [buffer.get(y) for y in range(bottom)]
        passing = len(new_rows)  # rows that pass the top
        first_kept = max(0, passing - self.scrollback.size)
        for index in range(first_kept, passing):
            if index < bottom:
                self.scrollback.push(old_rows[index] or {}, default)
            else:
                self.scrollback.push_segments(new_rows[index - bottom], default)
        beyond = {y: line for y, line in buffer.items() if y > bottom}
        buffer.clear()
        for y in range(bottom):
            index = passing + y
            if index < bottom:
                row = old_rows[index]
                if row is not None:
                    buffer[y] = row
            else:
                buffer[y] = self._row_of(new_rows[index - bottom], default)
        buffer.update(beyond)
        return taken

    def skip_scrolled(self, text: str, scrolling: int | None = None) -> int:
        """Drop the start of ``text`` (output not fed yet) that cannot change what the screen
        will show once all of ``text`` is fed; return how many characters were dropped.

        A start is dropped only when it only scrolls (text, CR, LF, tab,
        backspace, SGR and erases within the line, in a whole-screen scrolling
        region with autowrap on and insert off), holds at least :attr:`lines` line feeds (so the cursor
        ends on the bottom row), ends with CR LF (so it ends in column 0), and
        is followed, in that same scrolling text, by at least
        :attr:`lines` + the scrollback's size line feeds: those push every row
        and every scrollback line the dropped start could have left out of the
        scrollback.  What the dropped start leaves is then only where the
        cursor is and the style it set, and those are set here.  The caller
        feeds ``text[n:]`` next.
        """
        bottom = self.lines - 1
        mode = self.mode
        if not (
            self.margins is None
            and modes.DECAWM in mode
            and modes.IRM not in mode
            and self.translation is _IDENTITY
        ):
            return 0
        if scrolling is None:
            match = SCROLLING.match(text)
            scrolling = match.end() if match else 0
        end = scrolling
        behind = self.lines + self.scrollback.size
        cut = end
        for _ in range(behind):
            cut = text.rfind("\n", 0, cut)
            if cut < 0:
                return 0
        cut = text.rfind("\r\n", 0, cut)
        if cut < 0 or text.count("\n", 0, cut + 2) < self.lines:
            return 0
        cut += 2
        # The style: every SGR from the last one that starts with a reset.
        start = max(text.rfind(reset, 0, cut) for reset in ("\x1b[m", "\x1b[0m", "\x1b[0;"))
        for sgr in _SGR_PARAMS.finditer(text, max(start, 0), cut):
            params = sgr.group(1)
            if ":" in params:
                self.select_graphic_rendition(*colon_sgr(params))
            else:
                self.style(params)
        self.cursor.x = 0
        self.cursor.y = bottom
        return cut

    @staticmethod
    def _row_of(segments: list[tuple[Glyph, str]], default: Glyph) -> StaticDefaultDict[int, Any]:
        row: StaticDefaultDict[int, Any] = StaticDefaultDict(default)
        x = 0
        for style, text in segments:
            glyph = _glyphs(style).__getitem__
            row.update(zip(range(x, x + len(text)), map(glyph, text)))
            x += len(text)
        return row

    def select_graphic_rendition(self, *attrs: int) -> None:
        """Set the drawing style (cached: programs repeat the same few SGR sequences)."""
        style: Glyph = self.cursor.attrs  # type: ignore[assignment]
        reverse_video = modes.DECSCNM in self.mode
        key = (style, attrs, reverse_video)
        new = _SGR.get(key)
        if new is None:
            new = _rendition(style, attrs or (0,), self.default_char)
            if len(_SGR) >= _CACHE_LIMIT:
                _SGR.clear()
            _SGR[key] = new
        self.cursor.attrs = new  # type: ignore[assignment]

    def style(self, params: str) -> None:
        """Apply an SGR sequence given as its parameter text (``"1;31"``), cached by that text."""
        key = (self.cursor.attrs, params, modes.DECSCNM in self.mode)
        glyphs = _SGR_TEXT.get(key)  # type: ignore[arg-type]
        if glyphs is None:
            self.select_graphic_rendition(*[min(int(p or 0), 9999) for p in params.split(";")])
            glyphs = _glyphs(self.cursor.attrs)  # type: ignore[arg-type]
            if len(_SGR_TEXT) >= _CACHE_LIMIT:
                _SGR_TEXT.clear()
            _SGR_TEXT[key] = glyphs  # type: ignore[index]
        self.cursor.attrs = glyphs.style  # type: ignore[assignment]
        self._glyphs = glyphs

    def draw_styled(self, parts: list[str]) -> None:
        """Turns of SGR parameters and text, as ``split_sgr`` gives them (``["", "1;31", "abc", ...]``).

        The commonest run of coloured output, so :meth:`style` and the common
        case of :meth:`draw` are done here inline, once per turn.
        """
        cursor = self.cursor
        mode = self.mode
        reverse_video = modes.DECSCNM in mode
        plain_modes = (
            modes.DECAWM in mode and modes.IRM not in mode and self.translation is _IDENTITY and not self.wide
        )
        columns = self.columns
        buffer = self.buffer
        for index in range(1, len(parts), 2):
            params = parts[index]
            glyphs = _SGR_TEXT.get((cursor.attrs, params, reverse_video))  # type: ignore[arg-type]
            if glyphs is None:
                self.style(params)
                glyphs = self._glyphs
            else:
                cursor.attrs = glyphs.style  # type: ignore[assignment]
                self._glyphs = glyphs
            text = parts[index + 1]
            if not text:
                continue
            x = cursor.x
            end = x + len(text)
            if plain_modes and end <= columns and text.isascii() and text.isprintable():
                if end == x + 1:
                    buffer[cursor.y][x] = glyphs[text]
                else:
                    buffer[cursor.y].update(zip(range(x, end), map(glyphs.__getitem__, text)))
                cursor.x = end
            else:
                self.draw(text)

    def _current_glyphs(self) -> _Glyphs:
        style = self.cursor.attrs
        if style is not self._glyphs.style:
            self._glyphs = _glyphs(style)  # type: ignore[arg-type]
        return self._glyphs

    def draw(self, data: str) -> None:
        """Write text at the cursor, wrapping and scrolling as a terminal does."""
        plain = data.isascii() and data.isprintable()
        if plain:
            cursor = self.cursor
            x = cursor.x
            end = x + len(data)
            mode = self.mode
            if (
                end <= self.columns
                and modes.DECAWM in mode
                and modes.IRM not in mode
                and self.translation is _IDENTITY
                and not self.wide
            ):
                # The common case: printable ASCII that fits on the cursor's line.
                glyphs = self._glyphs
                if glyphs.style is not cursor.attrs:
                    glyphs = self._current_glyphs()
                if end == x + 1:
                    self.buffer[cursor.y][x] = glyphs[data]
                else:
                    self.buffer[cursor.y].update(zip(range(x, end), map(glyphs.__getitem__, data)))
                cursor.x = end
                return
            plain = modes.DECAWM in mode and modes.IRM not in mode
        if self.translation is not _IDENTITY:
            data = data.translate(self.translation)
            plain = False  # the character set may map ASCII to anything
        glyphs = self._current_glyphs()
        line = self.buffer[self.cursor.y]
        if self.wide and 0 < self.cursor.x < self.columns and self._is_wide(line, self.cursor.x - 1):
            line[self.cursor.x - 1] = glyphs[" "]  # the first half of a wide character written over
        if plain:
            self._draw_ascii(data, glyphs)
        else:
            self._draw_each(data, glyphs)
        cursor = self.cursor
        if self.wide and cursor.x < self.columns:
            line = self.buffer[cursor.y]
            if self._is_stub(line, cursor.x):
                line[cursor.x] = glyphs[" "]  # the second half of a wide character written over

    def _draw_ascii(self, data: str, glyphs: _Glyphs) -> None:
        """Printable ASCII with autowrap: one dict update per screen line."""
        cursor = self.cursor
        columns = self.columns
        buffer = self.buffer
        glyph = glyphs.__getitem__
        pos = 0
        length = len(data)
        while pos < length:
            x = cursor.x
            if x >= columns:
                cursor.x = 0
                self.index()
                x = 0
            take = min(columns - x, length - pos)
            buffer[cursor.y].update(zip(range(x, x + take), map(glyph, data[pos : pos + take])))
            cursor.x = x + take
            pos += take

    def _draw_each(self, data: str, glyphs: _Glyphs) -> None:
        """Any text, a character at a time, as xterm.js prints it."""
        cursor = self.cursor
        columns = self.columns
        mode = self.mode
        wrap = modes.DECAWM in mode
        insert = modes.IRM in mode
        for char in data:
            width = wcwidth(char)
            if width < 0:
                continue
            if width == 0:
                self._combine(char, glyphs)
                continue
            if cursor.x + width > columns:
                if wrap:
                    line = self.buffer[cursor.y]
                    for x in range(cursor.x, columns):
                        line[x] = glyphs[" "]  # a wide character that does not fit leaves a blank
                    cursor.x = 0
                    self.index()
                else:
                    cursor.x = columns - 1
                    if width == 2:
                        continue  # a wide character cannot go in the last column
            if insert:
                self.insert_characters(width)
            line = self.buffer[cursor.y]
            x = cursor.x
            line[x] = glyphs[char]
            if width == 2:
                line[x + 1] = glyphs[""]
                self.wide = True
            cursor.x = x + width

    def _combine(self, mark: str, glyphs: _Glyphs) -> None:
        """Join a character of no width to the cell before the cursor (the whole wide character
        if that cell is the second half of one); at the start of a line it takes a cell of its own."""
        cursor = self.cursor
        line = self.buffer[cursor.y]
        x = min(cursor.x, self.columns)
        if not x:
            line[0] = glyphs[mark]
            cursor.x = 1
            return
        x -= 1
        if x and self._is_stub(line, x):
            x -= 1
        last = line[x]
        line[x] = last._replace(data=unicodedata.normalize("NFC", last.data + mark))

    def repeat(self, count: int | None = None) -> None:
        """REP (``CSI b``): the character just drawn, ``count`` more times (the stream calls this
        only right after text)."""
        cursor = self.cursor
        x = min(cursor.x, self.columns) - 1
        line = self.buffer.get(cursor.y)
        if x < 0 or line is None:
            return
        if x and self._is_stub(line, x):
            x -= 1
        char = line[x].data
        if char:
            translation, self.translation = self.translation, _IDENTITY
            self.draw(char * (count or 1))
            self.translation = translation


def change_rows(screen: Emulator, lines: int, keep: bool = True) -> None:
    """Take a screen to ``lines`` rows the way xterm.js does.

    Fewer rows: the rows below the cursor go first, from the bottom; if that
    is not enough, the top rows scroll off (into the scrollback with
    ``keep``) and the cursor moves up with the text.  More rows: with the
    cursor on the bottom row, lines come back from the scrollback above the
    screen (the cursor moves down with the text); otherwise, and once the
    scrollback runs out, blank rows come at the bottom.  pyte instead deletes
    the top rows outright and adds blank rows, so a phone that shrinks the
    terminal would wipe the first lines of every viewer's screen.
    """
    old = screen.lines
    cursor, buffer = screen.cursor, screen.buffer
    if lines < old:
        excess = old - lines
        below = max(0, min(excess, old - 1 - cursor.y))
        for y in range(old - below, old):
            buffer.pop(y, None)
        excess -= below
        if excess:
            if keep:
                for y in range(excess):
                    screen.scrollback.push(buffer.get(y, {}), screen.default_char)  # type: ignore[arg-type]
            shifted = {y - excess: line for y, line in buffer.items() if y >= excess}
            buffer.clear()
            buffer.update(shifted)
            cursor.y = max(0, cursor.y - excess)
    elif lines > old and keep and cursor.y == old - 1:
        back = screen.scrollback.pop(lines - old)
        if back:
            shifted = {y + len(back): line for y, line in buffer.items()}
            buffer.clear()
            buffer.update(shifted)
            for y, frozen in enumerate(back):
                buffer[y] = screen.unfreeze(frozen)
            cursor.y += len(back)
    for y in [y for y in buffer if y >= lines]:
        del buffer[y]
    screen.lines = lines


def colon_sgr(params: str) -> list[int]:
    """SGR parameters with colon sub-parameters, as the plain parameters that mean the same."""
    flat: list[int] = []
    for group in params.split(";"):
        if ":" not in group:
            flat.append(min(int(group or 0), 9999))
            continue
        head, *subs = group.split(":")
        code = int(head or 0)
        values = [min(int(sub or 0), 9999) for sub in subs]
        if code in (38, 48) and values:
            if values[0] == 2:
                # 38:2:<colour space>:R:G:B (ITU) or 38:2:R:G:B (common)
                rgb = values[2:5] if len(values) >= 5 else values[1:4]
                if len(rgb) == 3:
                    flat += [code, 2, *rgb]
            elif values[0] == 5 and len(values) >= 2:
                flat += [code, 5, values[1]]
        elif code == 4:
            flat.append(24 if values and values[0] == 0 else 4)  # 4:0 no underline, 4:1..5 a style of one
        # Anything else (58:... underline colour) changes nothing shown.
    return flat
