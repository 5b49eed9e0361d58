# -*- test-case-name: tests.test_emulator -*-
"""pyte, made fast enough to keep up with a PTY, and corrected where it is wrong.

pyte's :class:`pyte.Screen` stays the model: its buffer, cursor, modes and
every escape-sequence handler are used as they are.  What changes:

- :class:`Emulator` draws a run of printable ASCII with one dict update per
  screen line, from cells built once per style and shared, instead of a
  ``namedtuple._replace`` per character; it keeps its scrollback frozen
  small (:mod:`vibetwist.screen.scrollback`) instead of HistoryScreen's dict per
  line behind a wrapper on every attribute access; and it caches what
  ``select_graphic_rendition`` computes.
- :class:`vibetwist.screen.parser.EmulatorStream` reads its input.
- Output that only scrolls (lines of text and SGR at the bottom of the
  screen, as ``ls`` or ``cat`` print) is held back a batch at a time and
  scrolled in at once (:meth:`Emulator.scroll_in`): a line that passes
  through the screen within the batch goes to the scrollback without ever
  being made into cells, and one that would leave the scrollback within the
  batch is not kept at all.  :meth:`Emulator.skip_scrolled` drops such
  output outright when enough of it follows to push out all it could leave.
- Fixes: text after a zero-width character (U+200D, U+FE0F, U+200B) or a
  stray control character is drawn (pyte drops the rest of the run); a
  wide character that does not fit in the last column wraps to the next
  line; colon-form SGR (``38:2::R:G:B``, ``4:3``) is understood; dim (2)
  and invisible (8) are kept; and a palette colour stays a palette index
  while an RGB colour stays RGB (pyte turns both into the same hex string);
  SGR 105 (misspelt in pyte's table) is a bright magenta background; and a
  sequence whose parameters make a pyte handler raise is ignored, as a
  terminal ignores it, instead of breaking the feed; and deleting lines
  (``CSI M``, or a resize to fewer rows) below a row never written leaves
  that row blank (pyte leaves the old line where it was).

Cells are :class:`Glyph` tuples: pyte's ``Char`` fields with colours as
:data:`vibetwist.model.snapshot.Color` values, plus ``dim`` and ``hidden``.

Sans-IO: text goes in, state comes out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any, NamedTuple

import pyte
from pyte import charsets, modes
from pyte.screens import Margins, StaticDefaultDict, wcwidth

from vibetwist.model.snapshot import RGB, Color
from vibetwist.screen.scrollback import Scrollback

__all__ = ["SCROLLING", "Emulator", "Glyph", "colon_sgr", "split_sgr"]


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


def _is_drawn(char: str, width: int) -> bool:
    """Whether a character of this width takes or joins a cell (a combining mark joins)."""
    return width > 0 or (width == 0 and bool(unicodedata.combining(char)))


_PRINTABLE_ASCII = re.compile(r"[ -~]+").fullmatch
#: Text and the parameters of its SGR sequences, in turns: ``["", "1;31", "abc", ...]``.
split_sgr = re.compile(r"\x1b\[([0-9;]*)m").split
_SGR_PARAMS = re.compile(r"\x1b\[([0-9;:]*)m")
#: Output that only scrolls: text, CR, LF, tab, backspace, SGR and erases within the line (EL, which
#: ls --color sends), none of which touches any row but the cursor's (see :meth:`Emulator.skip_scrolled`).
SCROLLING = re.compile(r"(?:[^\x00-\x07\x0b-\x0c\x0e-\x1f\x7f-\x9f]++|\x1b\[[0-9;:]*+m|\x1b\[[012]?K)++")
_IDENTITY = charsets.LAT1_MAP


class Emulator(pyte.Screen):
    """A pyte screen with fast drawing, a compact scrollback of ``history`` lines and pyte's bugs fixed."""

    buffer: Any  # pyte's lines (row -> column -> cell), holding Glyphs

    def __init__(self, columns: int, lines: int, history: int) -> None:
        self.scrollback = Scrollback(history)
        self._glyphs = _glyphs(_BLANK)
        super().__init__(columns, lines)

    @property
    def default_char(self) -> Glyph:  # type: ignore[override]
        """A blank cell; reverse video while DECSCNM is set, as in pyte."""
        return _REVERSE_BLANK if modes.DECSCNM in self.mode else _BLANK

    def reset(self) -> None:
        """Reset as pyte does, with Glyph cells, and forget the scrollback."""
        super().reset()
        self.cursor.attrs = self.default_char  # type: ignore[assignment]
        self.scrollback.clear()

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        """Erase as pyte does; ``3`` also forgets the scrollback (as xterm's ``ED 3``)."""
        super().erase_in_display(how, *args, **kwargs)
        if how == 3:
            self.scrollback.clear()

    def delete_lines(self, count: int | None = None) -> None:
        """pyte's ``delete_lines``, but a row never written moving up blanks the row it lands on."""
        count = count or 1
        top, bottom = self.margins or Margins(0, self.lines - 1)
        if top <= self.cursor.y <= bottom:
            self.dirty.update(range(self.cursor.y, self.lines))
            buffer = self.buffer
            for y in range(self.cursor.y, bottom + 1):
                if y + count <= bottom and y + count in buffer:
                    buffer[y] = buffer.pop(y + count)
                else:
                    buffer.pop(y, None)
            self.carriage_return()

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        """pyte's resize, except that losing rows loses no text (see :func:`shrink_rows`)."""
        shrink_rows(self, lines or self.lines)
        super().resize(lines, columns)

    def index(self) -> None:
        """Move down a line; at the bottom margin, scroll, keeping the top line in the scrollback."""
        top, bottom = self.margins or Margins(0, self.lines - 1)
        if self.cursor.y != bottom:
            self.cursor_down()
            return
        buffer = self.buffer
        default = self.default_char
        self.scrollback.push(buffer.get(top, {}), default)  # type: ignore[arg-type]
        # Renumber the lines in one pass: those below the top margin move up
        # one, the top one leaves, the rest stay.  A line never drawn on stays
        # missing, which pyte's defaultdict would make blank with the same default.
        shifted = {(y - 1 if top < y <= bottom else y): line for y, line in buffer.items() if y != top}
        buffer.clear()
        buffer.update(shifted)

    def can_scroll_in(self) -> bool:
        """Whether :meth:`scroll_in` applies: the cursor at the start of the bottom line of a
        whole-screen scrolling region that is blank, autowrap on, insert off, no charset."""
        cursor = self.cursor
        bottom = self.lines - 1
        mode = self.mode
        return (
            cursor.x == 0
            and cursor.y == bottom
            and (self.margins is None or self.margins == (0, bottom))
            and not self.buffer.get(bottom)
            and modes.DECAWM in mode
            and modes.IRM not in mode
            and not self.charset
            and self.g0_charset is _IDENTITY
        )

    def scroll_in(self, lines: Sequence[str]) -> int:
        """Write lines as ``line + CR LF`` would when :meth:`can_scroll_in`, all at once.

        Each line is printable ASCII and SGR sequences; the lines are taken up
        to the first that is wider than the screen.  The screen's rows and the
        new lines form one column of rows that moves up by the number of
        lines taken: what passes the top goes to the scrollback (only the
        last lines it can hold are frozen at all), and only the rows left on
        screen are made into cells.

        :return: how many lines were taken.
        """
        columns = self.columns
        bottom = self.lines - 1
        cursor = self.cursor
        default = self.default_char
        new_rows: list[list[tuple[Glyph, str]]] = []
        for line in lines:
            parts = split_sgr(line)
            if sum(map(len, parts[::2])) > columns:
                break
            segments = [(cursor.attrs, parts[0])]
            for i in range(1, len(parts), 2):
                self.style(parts[i])
                segments.append((cursor.attrs, parts[i + 1]))
            new_rows.append(segments)  # type: ignore[arg-type]
        taken = len(new_rows)
        if not taken:
            return 0
        buffer = self.buffer
        # The column of rows: the screen's rows above the (blank) bottom one, then the new lines.
        old_rows = [buffer.get(y) for y in range(bottom)]
        passing = taken  # rows that pass the top
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
            (self.margins is None or self.margins == (0, bottom))
            and modes.DECAWM in mode
            and modes.IRM not in mode
            and not self.charset
            and self.g0_charset is _IDENTITY
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
            modes.DECAWM in mode
            and modes.IRM not in mode
            and not self.charset
            and self.g0_charset is _IDENTITY
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
                and not self.charset
                and self.g0_charset is _IDENTITY
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
        if self.charset or self.g0_charset is not _IDENTITY:
            data = data.translate(self.g1_charset if self.charset else self.g0_charset)
            plain = False  # the character set may map ASCII to anything
        if plain:
            self._draw_ascii(data, self._current_glyphs())
        else:
            self._draw_each(data, self._current_glyphs())

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
                if x > columns:  # left past the edge by a resize: pyte writes there once
                    buffer[cursor.y][x] = glyph(data[pos])
                    cursor.x = columns
                    pos += 1
                    continue
                self.carriage_return()
                self.linefeed()
                x = cursor.x
            take = min(columns - x, length - pos)
            buffer[cursor.y].update(zip(range(x, x + take), map(glyph, data[pos : pos + take])))
            cursor.x = x + take
            pos += take

    def _draw_each(self, data: str, glyphs: _Glyphs) -> None:
        """Any text, a character at a time: pyte's ``draw`` with its errors fixed."""
        cursor = self.cursor
        columns = self.columns
        mode = self.mode
        for char in data:
            width = wcwidth(char)
            if not _is_drawn(char, width):
                continue  # pyte stops here and drops the rest of the text
            if cursor.x == columns:
                if modes.DECAWM in mode:
                    self.carriage_return()
                    self.linefeed()
                elif width > 0:
                    cursor.x -= width
            elif width == 2 and cursor.x == columns - 1 and columns > 1 and modes.DECAWM in mode:
                # A wide character that does not fit wraps whole (pyte splits it).
                self.carriage_return()
                self.linefeed()
            if width > 0 and modes.IRM in mode:
                self.insert_characters(width)
            line = self.buffer[cursor.y]
            x = cursor.x
            if width == 1:
                line[x] = glyphs[char]
            elif width == 2:
                line[x] = glyphs[char]
                if x + 1 < columns:
                    line[x + 1] = glyphs[""]
            else:
                self._combine(char)
            if width > 0:
                cursor.x = min(x + width, columns)

    def _combine(self, mark: str) -> None:
        """Join a combining mark to the cell before the cursor, as pyte does."""
        cursor = self.cursor
        if cursor.x:
            line = self.buffer[cursor.y]
            x = cursor.x - 1
        elif cursor.y:
            line = self.buffer[cursor.y - 1]
            x = self.columns - 1
        else:
            return
        last = line[x]
        line[x] = last._replace(data=unicodedata.normalize("NFC", last.data + mark))


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


def shrink_rows(screen: pyte.Screen, lines: int) -> None:
    """Take a screen down to ``lines`` rows the way tmux and xterm.js do.

    Blank rows below the cursor go first, from the bottom; if that is not
    enough, the top rows scroll into the scrollback (through the screen's own
    ``index``) and the cursor moves up with the text.  pyte instead deletes
    the top rows outright, so a phone that shrinks the terminal would wipe the
    first lines of every viewer's screen.  A screen already ``lines`` rows or
    fewer is left alone; the caller then resizes as usual.
    """
    excess = screen.lines - lines
    if excess <= 0:
        return
    cursor, buffer = screen.cursor, screen.buffer
    blank = screen.default_char
    bottom = screen.lines - 1
    while excess and bottom > cursor.y and all(cell == blank for cell in buffer.get(bottom, {}).values()):
        buffer.pop(bottom, None)
        bottom -= 1
        excess -= 1
    x, y = cursor.x, cursor.y
    screen.margins = None
    for _ in range(excess):
        cursor.y = screen.lines - 1
        screen.index()
    cursor.x, cursor.y = x, max(0, y - excess)
    for row in [row for row in buffer if row >= lines]:
        del buffer[row]
    screen.dirty.update(range(lines))
    screen.lines = lines
