# -*- test-case-name: tests.test_emulator -*-
"""Reading a program's output into an :class:`vibetwist.screen.emulator.Emulator`, fast.

:class:`EmulatorStream` is pyte's stream that reads the common cases itself:
text runs, line ends and complete CSI sequences, one regular expression
each, and runs of SGR-then-text as one token; anything else goes to pyte's
own parser, one character at a time, as pyte does.  Output that only
scrolls is held back a batch at a time and scrolled in at once
(:meth:`vibetwist.screen.emulator.Emulator.scroll_in`).  A sequence whose
parameters make a pyte handler raise is ignored, as a terminal ignores it.

Sans-IO: text goes in, the emulator changes.
"""

from __future__ import annotations

import re
from typing import Any

import pyte

from vibetwist.screen.emulator import Emulator, colon_sgr, split_sgr

__all__ = ["LINE_BATCH", "EmulatorStream"]


# What the stream reads itself, in the parser's ground state: a run of SGR
# sequences each followed by text, a run of text, a line end, or a whole CSI
# sequence whose parameters are numbers (colon-separated ones only for SGR).
_TOKEN = re.compile(
    r"(?P<styled>(?:\x1b\[[0-9;]*m[^\x00-\x1f\x7f-\x9f]*)+)"
    r"|(?P<text>[^\x00-\x1f\x7f-\x9f]+)"
    r"|(?P<crlf>\r\n)"
    r"|(?P<ctl>[\r\n\x08])"
    r"|\x1b\[(?P<private>\??)(?P<params>[0-9;:]*)(?P<final>[@-~])"
).match
# Lines the screen can scroll in at once: printable ASCII and SGR, ended by CR LF.
_LINE = re.compile(r"((?:[ -~]++|\x1b\[[0-9;]*+m)*+)\r\n").match  # possessive: never backtracks
# The start of such a line, cut off by the end of the data, and how much of it is held back.
_PARTIAL_LINE = re.compile(r"(?:[ -~]++|\x1b\[[0-9;]*+m)*+(?:\x1b(?:\[[0-9;]*+)?)?\r?").fullmatch
_TAIL_LIMIT = 4096
#: The most lines held back to be scrolled in at once.
LINE_BATCH = 256
#: The most characters held back to be scrolled in at once: long lines wrap into many
#: rows each, and a batch must stay a few milliseconds of work.
LINE_BATCH_CHARS = 16384
# The start of such a CSI sequence, cut off by the end of the data.
_PARTIAL_CSI = re.compile(r"\x1b(?:\[\??[0-9;:]*)?").fullmatch


class EmulatorStream(pyte.Stream):
    """pyte's stream, reading the common cases itself and never raising on bad input."""

    def __init__(self, screen: Emulator) -> None:
        self._pending = ""
        self._lines: list[str] = []
        self._held_chars = 0
        self._in_lines = False
        self._csi_handlers: dict[str, Any] = {}
        self._emulator = screen
        super().__init__(screen)

    def attach(self, screen: pyte.Screen) -> None:
        super().attach(screen)
        self._csi_handlers = {final: getattr(screen, name) for final, name in self.csi.items()}

    def feed(self, data: str) -> None:
        """Interpret ``data``.

        Some of it may be held back, never longer than until :meth:`flush`: a CSI
        sequence cut off at the end (until it is complete), and, while the screen
        can scroll lines in (:meth:`Emulator.can_scroll_in`), whole lines, so that
        up to ``LINE_BATCH`` of them scroll in at once, and the line after them.
        """
        if self._pending:
            data = self._pending + data
            self._pending = ""
        self._run(data, lines=True)

    @property
    def idle(self) -> bool:
        """Whether nothing is held back and pyte's parser waits for a new character."""
        return not self._pending and not self._lines and bool(self._taking_plain_text)

    def flush(self) -> None:
        """Apply all held-back lines and text (a cut-off CSI sequence stays held: it means nothing yet)."""
        pending = self._pending
        self._pending = ""
        self._apply_lines()
        self._in_lines = False
        if pending:
            self._run(pending, lines=False)

    def _run(self, data: str, lines: bool) -> None:
        screen = self._emulator
        length = len(data)
        if self._in_lines:
            self._in_lines = False
            at = self._take_lines(data, 0)
            if at is None:
                return
            offset = at
        else:
            offset = 0
        if not self._taking_plain_text:
            offset = self._through_parser(data, offset)
        draw = screen.draw
        draw_styled = screen.draw_styled
        handlers = self._csi_handlers
        while offset < length:
            token = _TOKEN(data, offset)
            if token is None:
                if _PARTIAL_CSI(data, offset):
                    self._pending = data[offset:]
                    return
                offset = self._through_parser(data, offset)
                continue
            kind = token.lastgroup
            if kind == "styled":
                draw_styled(split_sgr(token.group()))
            elif kind == "text":
                draw(token.group())
            elif kind == "crlf":
                screen.carriage_return()
                screen.linefeed()
                if lines and screen.can_scroll_in():
                    at = self._take_lines(data, token.end())
                    if at is None:
                        return
                    offset = at
                    continue
            elif kind == "ctl":
                char = token.group()
                if char == "\r":
                    screen.carriage_return()
                elif char == "\n":
                    screen.linefeed()
                else:
                    screen.backspace()
            else:
                params = token.group("params")
                final = token.group("final")
                private = bool(token.group("private"))
                if ":" in params:
                    if final != "m" or private:
                        offset = self._through_parser(data, offset)  # pyte's reading, as it is
                        continue
                    self._dispatch(screen.select_graphic_rendition, colon_sgr(params), False)
                else:
                    handler = handlers.get(final)
                    if handler is not None:
                        self._dispatch(handler, [min(int(p or 0), 9999) for p in params.split(";")], private)
            offset = token.end()

    def _take_lines(self, data: str, offset: int) -> int | None:
        """Hold the whole lines at ``offset`` (the screen can scroll them in) for one batch.

        :return: where ordinary reading goes on, or None when the data ended
            in lines (and perhaps the start of one more, now held).
        """
        held = self._lines
        line = _LINE(data, offset)
        while line is not None:
            text = line.group(1)
            held.append(text)
            self._held_chars += len(text)
            offset = line.end()
            if len(held) >= LINE_BATCH or self._held_chars >= LINE_BATCH_CHARS:
                self._apply_lines()
                held = self._lines
                if not self._emulator.can_scroll_in():
                    return offset
            line = _LINE(data, offset)
        rest = len(data) - offset
        if rest == 0 or (rest <= _TAIL_LIMIT and _PARTIAL_LINE(data, offset)):
            self._pending = data[offset:]
            self._in_lines = True
            return None
        self._apply_lines()
        return offset

    def _apply_lines(self) -> None:
        """Scroll the held lines in, in order; one the screen cannot take is read as usual."""
        held = self._lines
        if not held:
            return
        self._lines = []
        self._held_chars = 0
        self._in_lines = False
        screen = self._emulator
        index = 0
        while index < len(held):
            if screen.can_scroll_in():
                taken = screen.scroll_in(held[index:] if index else held)
                index += taken
                if taken:
                    continue
            self._run(held[index] + "\r\n", lines=False)
            index += 1

    @staticmethod
    def _dispatch(handler: Any, params: list[int], private: bool) -> None:
        try:
            if private:
                handler(*params, private=True)
            else:
                handler(*params)
        except Exception:  # noqa: BLE001
            # pyte's handlers raise on parameters they do not take (a third
            # CUP parameter, ``ESC [ 5 K``); a terminal ignores such a sequence.
            pass

    def _through_parser(self, data: str, offset: int) -> int:
        """Give pyte's parser characters from ``offset`` until it is back in its ground state."""
        taking = False
        length = len(data)
        while offset < length:
            char = data[offset]
            offset += 1
            try:
                taking = bool(self._parser.send(char))  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001 - as in _dispatch; pyte's parser must start over
                self._initialize_parser()
                taking = True
            if taking:
                break
        self._taking_plain_text = taking
        return offset
