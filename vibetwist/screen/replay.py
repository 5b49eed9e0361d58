# -*- test-case-name: tests.test_replay -*-
"""A screen as the bytes that draw it, for a terminal emulator that joins a session.

A viewer that connects to a running session needs what the session's
terminal shows (its scrollback, its visible rows, its cursor and the modes
that change what keys send) before it can take the live output. This module
turns the server-side screen into that stream of escape sequences. Sans-IO:
rows go in, bytes come out, a slice at a time so a long scrollback never holds
up the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from wcwidth import wcswidth

from vibetwist.model.snapshot import (
    BLANK,
    BOLD,
    DIM,
    INVERSE,
    INVISIBLE,
    ITALIC,
    RGB,
    STRIKETHROUGH,
    UNDERLINE,
    Cell,
    Color,
    Snapshot,
)

if TYPE_CHECKING:
    from vibetwist.screen.terminal import TerminalScreen

#: Rows drawn per chunk the generator yields (a few milliseconds of work).
ROWS_PER_CHUNK = 200

#: The DEC private modes a joining emulator must share to send the same keys and
#: mouse reports: application cursor keys, bracketed paste, mouse tracking.
REPLAYED_MODES = (1, 12, 1000, 1002, 1003, 1005, 1006, 1015, 2004)

_ATTR_CODES = (
    (BOLD, "1"),
    (DIM, "2"),
    (ITALIC, "3"),
    (UNDERLINE, "4"),
    (INVERSE, "7"),
    (INVISIBLE, "8"),
    (STRIKETHROUGH, "9"),
)

RESET = "\x1bc"
PLAIN = "\x1b[m"


def _color_code(color: int | RGB, base: int, bright_base: int, extended: int) -> str:
    if isinstance(color, RGB):
        return f"{extended};2;{color.r};{color.g};{color.b}"
    if color < 8:
        return str(base + color)
    if color < 16:
        return str(bright_base + color - 8)
    return f"{extended};5;{color}"


@lru_cache(maxsize=1024)
def sgr(fg: Color, bg: Color, attrs: int) -> str:
    """The SGR sequence that sets exactly this style, from any style."""
    codes = ["0"]
    codes.extend(code for bit, code in _ATTR_CODES if attrs & bit)
    if fg is not None:
        codes.append(_color_code(fg, 30, 90, 38))
    if bg is not None:
        codes.append(_color_code(bg, 40, 100, 48))
    return "\x1b[" + ";".join(codes) + "m"


@lru_cache(maxsize=4096)
def _width(char: str) -> int:
    width = wcswidth(char)
    return 2 if width == 2 else 1


def draw_row(cells: Sequence[Cell], cols: int, overhang: bool = False) -> str:
    """One row as text and SGR sequences, trailing blanks left out, no wider than cols.

    With ``overhang``, a wide character that starts in the last column is
    kept, as the screen shows it. Starts and ends in the default style.
    """
    end = len(cells)
    while end and cells[end - 1] == BLANK:
        end -= 1
    out: list[str] = []
    style: tuple[Color, Color, int] = (None, None, 0)
    width = 0
    for i in range(end):
        cell = cells[i]
        start = width
        width += _width(cell.char)
        if width > cols and not (overhang and start < cols):
            break
        cell_style = (cell.fg, cell.bg, cell.attrs)
        if cell_style != style:
            out.append(sgr(*cell_style))
            style = cell_style
        out.append(cell.char)
    if style != (None, None, 0):
        out.append(PLAIN)
    return "".join(out)


def _modes(modes: frozenset[int]) -> str:
    out = [f"\x1b[?{mode}h" for mode in REPLAYED_MODES if mode in modes]
    if 7 not in modes:
        out.append("\x1b[?7l")  # autowrap is on unless the program turned it off
    if 25 not in modes:
        out.append("\x1b[?25l")
    return "".join(out)


def _cursor(screen: Snapshot, wrap_pending: bool) -> str:
    """Place the cursor; past the last column, by drawing the last character again."""
    cols = screen.cols
    y = screen.cursor_y
    if wrap_pending and 0 <= y < len(screen.rows):
        start = 0
        for cell in screen.rows[y]:
            width = _width(cell.char)
            if start + width >= cols:
                return f"\x1b[{y + 1};{start + 1}H" + sgr(cell.fg, cell.bg, cell.attrs) + cell.char + PLAIN
            start += width
    x = min(max(screen.cursor_x, 0), max(cols - 1, 0))
    return f"\x1b[{y + 1};{x + 1}H"


def _margins(margins: tuple[int, int] | None) -> str:
    """DECSTBM for a scroll region (it moves the cursor home: place the cursor after it)."""
    return "" if margins is None else f"\x1b[{margins[0] + 1};{margins[1] + 1}r"


def _charsets(g0: str, g1: str, shifted: int) -> str:
    """Designate G0 and G1 (ASCII after the reset needs nothing) and shift to G1 if it is in use."""
    out = "" if g0 == "B" else f"\x1b({g0}"
    if g1 != "B":
        out += f"\x1b){g1}"
    return (out + "\x0e") if shifted else out


def replay(
    history: Sequence[Sequence[Cell]],
    screen: Snapshot,
    modes: frozenset[int],
    pen: tuple[Color, Color, int] = (None, None, 0),
    wrap_pending: bool = False,
    main: Snapshot | None = None,
    margins: tuple[int, int] | None = None,
    main_margins: tuple[int, int] | None = None,
    charsets: tuple[str, str, int] = ("B", "B", 0),
) -> Iterator[bytes]:
    """The bytes that make an emulator of screen.cols x len(screen.rows) show this screen.

    The emulator is reset first; the scrollback lines are drawn and scroll
    off the top, then the visible rows; then the modes are set, the cursor
    placed (past the last column if ``wrap_pending``) and the pen, the
    style of what is drawn next, set. Yields chunks of ROWS_PER_CHUNK rows;
    ``history`` is read only as each chunk is made.

    ``main`` is the main screen when ``screen`` is the alternate one: it is
    drawn after the scrollback instead, the cursor put where ``main`` has it
    (where leaving the alternate screen brings it back), then
    ``CSI ?1049 h`` saves that and switches, and ``screen`` is drawn on the
    alternate screen, a row at a time.  Leaving it later shows ``main``.

    ``margins`` is the scroll region (top and bottom row, from 0) of
    ``screen``, ``main_margins`` that of ``main``; ``charsets`` the
    character sets designated as G0 and G1 and the one in use (see
    :meth:`vibetwist.screen.terminal.TerminalScreen.charsets`): they are set
    last, so that what follows scrolls and is drawn as on the session's screen.
    """
    cols = screen.cols
    parts = [RESET]
    first = True
    for start in range(0, len(history), ROWS_PER_CHUNK):
        for row in history[start : start + ROWS_PER_CHUNK]:
            if not first:
                parts.append("\r\n")
            first = False
            parts.append(draw_row(row, cols))
        yield "".join(parts).encode("utf-8", "surrogateescape")
        parts = []
    for row in (main or screen).rows:
        if not first:
            parts.append("\r\n")
        first = False
        parts.append(draw_row(row, cols, overhang=True))
    if main is not None:
        parts.append(_margins(main_margins) + _cursor(main, False) + "\x1b[?1049h")
        for y, row in enumerate(screen.rows):
            parts.append(f"\x1b[{y + 1};1H" + draw_row(row, cols, overhang=True))
    parts.append(_modes(modes))
    parts.append(_margins(margins))
    parts.append(_cursor(screen, wrap_pending))
    if pen != (None, None, 0):
        parts.append(sgr(*pen))
    parts.append(_charsets(*charsets))
    yield "".join(parts).encode("utf-8", "surrogateescape")


def replay_screen(screen: TerminalScreen) -> Iterator[bytes]:
    """:func:`replay` of everything ``screen`` shows and keeps now (taken at this call, not
    as the chunks are read): scrollback, both screens, modes, pen, scroll regions and
    character sets."""
    return replay(
        screen.history_rows(),
        screen.snapshot(),
        screen.private_modes(),
        pen=screen.pen(),
        wrap_pending=screen.wrap_pending(),
        main=screen.main_snapshot(),
        margins=screen.margins(),
        main_margins=screen.margins(main=True),
        charsets=screen.charsets(),
    )
