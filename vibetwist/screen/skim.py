# -*- test-case-name: tests.test_skim -*-
"""Output read far ahead of a screen, thinned as it comes.

When a screen falls behind a flood, feeding it every byte only to scroll most
of them out of its scrollback makes it later still.  A :class:`Skim` takes
the output the screen has not been fed yet, as fast as it can be read, and
keeps only what can still change what the screen will show: once enough
scrolling lines follow a stretch of scrolling output, that stretch is
dropped (:meth:`vibetwist.screen.terminal.TerminalScreen.skip`).  The screen then
takes what is left a slice at a time with :meth:`Skim.feed`.

Each call's work is bounded by the text it is given or the limit it is
asked for, but for a drop: text is read once, as it comes, and a drop (which
reads what is held) is tried only when the scrolling output held has
doubled since the last try, and once more when the screen starts taking
what is left.  Sans-IO.
"""

from __future__ import annotations

import re
from collections import deque

from vibetwist.screen.emulator import SCROLLING
from vibetwist.screen.terminal import TerminalScreen

__all__ = ["Skim"]

# How many 16-character steps a screen is given to finish a cut-off escape sequence.
_SEQUENCE_END_STEPS = 64
# The start of an escape sequence, cut off by the end of what came so far.
_CUT_OFF = re.compile(r"\x1b(?:\[[0-9;:]*)?").fullmatch


class Skim:
    """Output waiting for ``screen``, oldest first, with what cannot matter dropped."""

    def __init__(self, screen: TerminalScreen) -> None:
        self.screen = screen
        self._chunks: deque[str] = deque()
        self._offset = 0  # characters of the first chunk already fed
        self._size = 0  # characters waiting
        self._scrolling = 0  # the first this many waiting characters only scroll
        self._lines = 0  # line feeds among them
        self._tail = ""  # a cut-off escape sequence after them, not yet read
        self._blocked = False  # what follows them does not only scroll
        self._next_try = 0  # try a drop once self._lines reaches this
        self._settled = True  # a drop was tried since the last add

    def __len__(self) -> int:
        """How many characters wait."""
        return self._size

    @property
    def blocked(self) -> bool:
        """Whether output that does not only scroll waits: nothing before it can be dropped,
        so adding more only makes the wait longer until the screen has taken it."""
        return self._blocked

    def add(self, text: str) -> None:
        """Output that comes after all that was added before (and after all the screen was fed)."""
        if not text:
            return
        self._chunks.append(text)
        self._size += len(text)
        self._settled = False
        if not self._blocked:
            self._read(self._tail + text)
            needed = self._needed()
            if self._lines >= max(2 * needed, self._next_try):
                self._drop()
                self._next_try = 2 * self._lines

    def feed(self, limit: int) -> bool:
        """Feed the screen the next ``limit`` characters at most; whether nothing is left."""
        if not self._settled:
            self._settled = True
            if not self._blocked and self._lines > self._needed():
                self._drop()
        pieces = []
        taken = 0
        while self._chunks and taken < limit:
            chunk = self._chunks[0]
            piece = chunk[self._offset : self._offset + limit - taken]
            pieces.append(piece)
            taken += len(piece)
            self._offset += len(piece)
            if self._offset == len(chunk):
                self._chunks.popleft()
                self._offset = 0
        text = "".join(pieces)
        self._size -= taken
        self.screen.feed(text)
        if taken < self._scrolling:
            self._scrolling -= taken
            self._lines -= text.count("\n")
        else:
            # The screen has read past what was known to scroll: read on from here.
            rest = self._waiting()
            self._chunks = deque([rest] if rest else [])
            self._offset = 0
            self._scrolling = self._lines = self._next_try = 0
            self._tail = ""
            self._blocked = False
            self._read(rest)
        return not self._size

    def _needed(self) -> int:
        """Line feeds that must follow a stretch for it to be dropped, and precede it."""
        return 2 * self.screen.rows + self.screen.scrollback_capacity

    def _read(self, text: str) -> None:
        """Read ``text``, which follows the known scrolling output (its cut-off tail first)."""
        match = SCROLLING.match(text)
        end = match.end() if match else 0
        self._scrolling += end  # the tail, uncounted so far, starts the text
        self._lines += text.count("\n", 0, end)
        if end == len(text):
            self._tail = ""
        elif _CUT_OFF(text, end):
            self._tail = text[end:]
        else:
            self._tail = ""
            self._blocked = True

    def _waiting(self) -> str:
        """All waiting output as one string."""
        if not self._chunks:
            return ""
        self._chunks[0] = self._chunks[0][self._offset :]
        self._offset = 0
        return "".join(self._chunks)

    def _drop(self) -> None:
        if self.screen.mid_sequence():
            # The screen was last fed part of an escape sequence, and can drop nothing
            # until it has its end: give it the start of what is held, a little at a time.
            settled, self._settled = self._settled, True
            for _ in range(_SEQUENCE_END_STEPS):
                if not self._size or not self.screen.mid_sequence():
                    break
                self.feed(16)
            self._settled = settled
            if self.screen.mid_sequence():
                return
        text = self._waiting()
        dropped = self.screen.skip(text, self._scrolling)
        if dropped:
            text = text[dropped:]
            self._size -= dropped
            self._scrolling -= dropped
            self._lines = text.count("\n", 0, self._scrolling)
        self._chunks = deque([text] if text else [])
