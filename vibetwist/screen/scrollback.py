# -*- test-case-name: tests.test_emulator -*-
"""The lines that scrolled off the top of a screen, kept small.

pyte keeps a scrolled-off line as the dict it was on screen: one entry and
one styled tuple per cell, about 20 KB for a full 120-column line.  Here a
line is frozen as its text plus runs of styles: the characters in one
string, and for each stretch of cells drawn with the same attributes, those
attributes (shared by every line that uses them) and the stretch's length.

Sans-IO and pure: lines go in with :meth:`Scrollback.push` and come out as
``(style, characters)`` stretches with :func:`stretches`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from itertools import groupby, repeat
from operator import itemgetter
from typing import Any, TypeAlias

__all__ = ["FrozenLine", "Scrollback", "Style", "stretches"]

_DATA = itemgetter(0)
_STYLE = itemgetter(slice(1, None))


Style: TypeAlias = tuple[Any, ...]
"""A cell's attributes without its character (a Glyph from its second field on)."""

FrozenLine: TypeAlias = tuple[str | tuple[str, ...], tuple[tuple[Style, int], ...], str, Style]
"""A line of cells, frozen when it left the screen: ``(text, runs, blank, blank style)``.

``text`` holds one character per cell when every cell holds exactly one code
point, otherwise a tuple of the cells' strings (a wide character's
continuation is ``""``).  ``runs`` are ``(style, count)`` pairs covering
``text`` left to right.  Cells past the end of ``text`` are ``blank`` in
``blank style``.  A plain tuple of plain tuples, strings and numbers: the
garbage collector stops tracking it (a NamedTuple it would walk at every
full collection, ten thousand per session).
"""


def stretches(line: FrozenLine, columns: int) -> Iterator[tuple[Style, str | tuple[str, ...]]]:
    """The first ``columns`` cells of ``line`` as ``(style, characters)`` stretches, left to right."""
    text, runs, blank, blank_style = line
    x = 0
    for style, count in runs:
        if x >= columns:
            return
        yield style, text[x : min(x + count, columns)]
        x += count
    if x < columns:
        yield blank_style, blank * (columns - x)


class Scrollback:
    """At most ``size`` frozen lines, oldest first.

    Styles, ``(style, count)`` pairs and one-run lines' runs are shared, so a
    line costs about its text plus a small tuple or two.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.lines: deque[FrozenLine] = deque(maxlen=size)
        self._interned: dict[Any, Any] = {}
        self._one_runs: dict[tuple[tuple[Any, ...], int], tuple[tuple[Style, int], ...]] = {}
        self._last_default: tuple[Any, ...] | None = None
        self._last_blank: tuple[str, Style] = (" ", ())

    def __len__(self) -> int:
        return len(self.lines)

    def clear(self) -> None:
        """Forget every line (and the styles they shared)."""
        self.lines.clear()
        self._interned.clear()
        self._one_runs.clear()
        self._last_default = None

    def _intern(self, value: Any) -> Any:
        interned = self._interned.setdefault(value, value)
        if len(self._interned) > 65536:
            # A stream that never repeats a style: stop sharing rather than grow.
            self._interned.clear()
        return interned

    def push(self, line: Mapping[int, tuple[Any, ...]], default: tuple[Any, ...]) -> None:
        """Keep ``line`` (column -> cell; missing columns are ``default``)."""
        intern = self._intern
        blank, blank_style = default[0], intern(default[1:])
        if not line:
            self.lines.append(("", (), blank, blank_style))
            return
        width = max(line) + 1
        text: str | tuple[str, ...]
        runs: tuple[tuple[Style, int], ...]
        if len(line) * 4 < width:
            # Mostly blank, as the lines of output with LF and no CR are (a staircase
            # down the screen): only the cells drawn on are looked at, and if all of
            # them have the blank's style the line is the one the loop below makes.
            if all(cell[1:] == blank_style for cell in line.values()):
                data = [blank] * width
                for x, cell in line.items():
                    data[x] = cell[0]
                text = "".join(data)
                if len(text) != width or "" in data:
                    text = tuple(data)  # some cell is not exactly one code point
                runs = intern((intern((blank_style, width)),))
                self.lines.append((text, runs, blank, blank_style))
                return
        cells = list(map(line.get, range(width), repeat(default, width)))
        data = list(map(_DATA, cells))
        text = "".join(data)
        if len(text) != width or "" in data:
            text = tuple(data)  # some cell is not exactly one code point
        styles = list(map(_STYLE, cells))
        first = styles[0]
        if styles.count(first) == width:  # one style for the whole line: the usual case
            runs = intern((intern((intern(first), width)),))
        else:
            runs = tuple(intern((intern(style), len(list(group)))) for style, group in groupby(styles))
        self.lines.append((text, runs, blank, blank_style))

    def push_segments(
        self, segments: Sequence[tuple[tuple[Any, ...], str]], default: tuple[Any, ...]
    ) -> None:
        """Keep a line given as ``(cell, text)`` segments: each character of ``text`` drawn in
        ``cell``'s style, one code point per cell; the same line :meth:`push` would keep."""
        blank = self._blank(default)
        if len(segments) == 1:  # one style, as in most lines of a flood
            cell, text = segments[0]
            self.lines.append((text, self._one_run(cell, len(text)) if text else (), *blank))
            return
        intern = self._intern
        runs: list[tuple[Any, int]] = []
        for cell, text in segments:
            if not text:
                continue
            style = cell[1:]
            if runs and runs[-1][0] == style:
                runs[-1] = (runs[-1][0], runs[-1][1] + len(text))
            else:
                runs.append((intern(style), len(text)))
        line = "".join(text for _, text in segments)
        frozen_runs = tuple(intern((style, count)) for style, count in runs)
        if len(frozen_runs) == 1:
            frozen_runs = intern(frozen_runs)
        self.lines.append((line, frozen_runs, *blank))

    def _one_run(self, cell: tuple[Any, ...], count: int) -> tuple[tuple[Style, int], ...]:
        """The shared runs of a line of ``count`` cells all in ``cell``'s style."""
        key = (cell, count)
        runs = self._one_runs.get(key)
        if runs is None:
            intern = self._intern
            runs = intern((intern((intern(cell[1:]), count)),))
            if len(self._one_runs) >= 4096:
                self._one_runs.clear()
            self._one_runs[key] = runs
        return runs

    def _blank(self, default: tuple[Any, ...]) -> tuple[str, Style]:
        """``(blank character, blank style)`` of a line whose missing cells are ``default``."""
        if default is not self._last_default:
            self._last_default = default
            self._last_blank = (default[0], self._intern(default[1:]))
        return self._last_blank

    def pop(self, count: int) -> list[FrozenLine]:
        """Take out the newest ``count`` lines (fewer if there are fewer), oldest first."""
        taken = [self.lines.pop() for _ in range(min(count, len(self.lines)))]
        taken.reverse()
        return taken

    def __iter__(self) -> Iterator[FrozenLine]:
        return iter(self.lines)
