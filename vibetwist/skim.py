# -*- test-case-name: tests.test_skim -*-
"""Output read far ahead of a screen, thinned as it comes.

When a screen falls behind a flood, feeding it every byte only to scroll most
of them out of its scrollback makes it later still.  A :class:`Skim` takes
the output the screen has not been fed yet, as fast as it can be read, and
keeps only what can still change what the screen will show: once enough
scrolling lines follow a stretch of scrolling output, that stretch is
dropped (:meth:`vibetwist.screen.TerminalScreen.skip`).  The screen then
takes what is left a slice at a time with :meth:`Skim.feed`.

Each call's work is bounded by the text it is given or the limit it is
asked for: text is read once, as it comes, and a drop is tried only when
the scrolling output held has doubled since the last try.  Sans-IO.
"""

from __future__ import annotations

import re

from vibetwist.emulator import SCROLLING
from vibetwist.screen import TerminalScreen

__all__ = ["Skim"]

# The start of an SGR sequence, cut off by the end of what came so far.
_SGR_START = re.compile(r"\x1b(?:\[[0-9;:]*)?").fullmatch


class Skim:
    """Output waiting for ``screen``, oldest first, with what cannot matter dropped."""

    def __init__(self, screen: TerminalScreen) -> None:
        self.screen = screen
        self._text = ""
        self._scrolling = 0  # self._text[:self._scrolling] only scrolls
        self._blocked = False  # and what follows it does not
        self._lines = 0  # line feeds in self._text[:self._scrolling]
        self._next_try = 0  # try to drop once self._lines reaches this

    def __len__(self) -> int:
        """How many characters wait."""
        return len(self._text)

    @property
    def blocked(self) -> bool:
        """Whether output that does not only scroll waits: nothing before it can be dropped,
        so adding more only makes the wait longer until the screen has taken it."""
        return self._blocked

    def add(self, text: str) -> None:
        """Output that comes after all that was added before (and after all the screen was fed)."""
        self._text += text
        if self._blocked:
            return
        start = self._scrolling
        match = SCROLLING.match(self._text, start)
        end = match.end() if match else start
        if end < len(self._text) and not _SGR_START(self._text, end):
            self._blocked = True
        self._scrolling = end
        self._lines += self._text.count("\n", start, end)
        screen = self.screen
        needed = 2 * screen.rows + screen.scrollback_capacity
        if self._lines >= max(2 * needed, self._next_try):
            dropped = screen.skip(self._text, self._scrolling)
            if dropped:
                self._text = self._text[dropped:]
                self._scrolling -= dropped
                self._lines = self._text.count("\n", 0, self._scrolling)
            self._next_try = 2 * self._lines

    def feed(self, limit: int) -> bool:
        """Feed the screen the next ``limit`` characters at most; whether nothing is left."""
        piece = self._text[:limit]
        self._text = self._text[limit:]
        self.screen.feed(piece)
        if self._scrolling > len(piece):
            self._scrolling -= len(piece)
            self._lines -= piece.count("\n")
        else:
            # The screen has read past what was known to scroll: read on from here.
            self._scrolling = self._lines = self._next_try = 0
            self._blocked = False
            self.add("")
        return not self._text
