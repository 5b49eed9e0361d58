# -*- test-case-name: tests.test_emulator -*-
"""Reading a program's output into an :class:`vibetwist.screen.emulator.Emulator`, fast.

:class:`EmulatorStream` reads the common cases with one regular expression
each: text runs, line ends and complete CSI sequences of numeric parameters,
and runs of SGR-then-text as one token.  Everything else goes through a
state machine of the kind DEC terminals and xterm use (VT500's): escape
sequences with intermediate bytes, CSI sequences with private markers or
intermediates, control strings (DCS, OSC, APC, PM, SOS, whose contents are
skipped, not shown), C0 and C1 controls, and any sequence cut by the end of a
feed, whose state waits for the next one.  Output that only scrolls is held
back a batch at a time and scrolled in at once
(:meth:`vibetwist.screen.emulator.Emulator.scroll_in`).  A sequence whose
parameters make a handler raise is ignored, as a terminal ignores it.

Sans-IO: text goes in, the emulator changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

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
# A CSI sequence of the kind _TOKEN reads, cut off by the end of the data: held back whole and read
# again with the next data, so a sequence split between two reads costs no more than a whole one.
_PARTIAL_CSI = re.compile(r"\x1b(?:\[\??[0-9;:]{0,32})?").fullmatch
#: The most lines held back to be scrolled in at once.
LINE_BATCH = 256
#: The most characters held back to be scrolled in at once: long lines wrap into many
#: rows each, and a batch must stay a few milliseconds of work.
LINE_BATCH_CHARS = 16384

#: CSI sequences without a private marker or intermediate, by final byte.
CSI = {
    "@": "insert_characters",
    "A": "cursor_up",
    "B": "cursor_down",
    "C": "cursor_forward",
    "D": "cursor_back",
    "E": "cursor_down1",
    "F": "cursor_up1",
    "G": "cursor_to_column",
    "H": "cursor_position",
    "I": "tab_forward",
    "J": "erase_in_display",
    "K": "erase_in_line",
    "L": "insert_lines",
    "M": "delete_lines",
    "P": "delete_characters",
    "S": "scroll_up",
    "T": "scroll_down",
    "X": "erase_characters",
    "Z": "tab_backward",
    "`": "cursor_to_column",
    "a": "cursor_forward",
    "b": "repeat",
    "d": "cursor_to_line",
    "e": "line_forward",
    "f": "cursor_position",
    "g": "clear_tab_stop",
    "h": "set_mode",
    "l": "reset_mode",
    "m": "select_graphic_rendition",
    "r": "set_margins",
    "s": "save_cursor",
    "u": "restore_cursor",
}
#: CSI sequences with the private marker ``?``: DECSET, DECRST, DECSED and DECSEL.
PRIVATE_CSI = {"h": "set_mode", "l": "reset_mode", "J": "erase_in_display", "K": "erase_in_line"}
#: CSI sequences with intermediate bytes, by intermediates and final byte.
INTERMEDIATE_CSI = {("!", "p"): "soft_reset"}
#: Escape sequences without intermediates, by final byte.
ESCAPE = {
    "7": "save_cursor",
    "8": "restore_cursor",
    "D": "index",
    "E": "next_line",
    "H": "set_tab_stop",
    "M": "reverse_index",
    "c": "reset",
}
#: C0 controls (and the C1 controls xterm.js acts on) by character.
CONTROLS = {
    "\x08": "backspace",
    "\x09": "tab",
    "\x0a": "linefeed",
    "\x0b": "linefeed",
    "\x0c": "linefeed",
    "\x0d": "carriage_return",
    "\x0e": "shift_out",
    "\x0f": "shift_in",
    "\x84": "index",
    "\x85": "next_line",
    "\x88": "set_tab_stop",
}

# The parser's states.
_GROUND, _ESCAPE, _ESCAPE_INTERMEDIATE, _CSI, _CSI_INTERMEDIATE, _CSI_IGNORE, _STRING, _OSC = range(8)
# Where a control string may end: CAN, SUB, ESC (ESC \ is ST), the C1 ST; and BEL for OSC.
_STRING_END = re.compile(r"[\x18\x1a\x1b\x9c]").search
_OSC_END = re.compile(r"[\x07\x18\x1a\x1b\x9c]").search


class EmulatorStream:
    """Reads output into an :class:`Emulator`: the common cases by regular expression, the rest
    through a VT500-style state machine; it never raises on bad input."""

    def __init__(self, screen: Emulator) -> None:
        self._pending = ""
        self._lines: list[str] = []
        self._held_chars = 0
        self._in_lines = False
        self._emulator = screen
        self._csi: dict[str, Callable[..., None]] = {
            final: getattr(screen, name) for final, name in CSI.items()
        }
        self._private_csi = {final: getattr(screen, name) for final, name in PRIVATE_CSI.items()}
        self._controls = {char: getattr(screen, name) for char, name in CONTROLS.items()}
        self._escape = {final: getattr(screen, name) for final, name in ESCAPE.items()}
        # The state machine: its state, and the sequence read so far.
        self._state = _GROUND
        self._params = ""
        self._prefix = ""
        self._intermediates = ""
        #: Whether the last thing read was text (REP repeats its last character).
        self._after_text = False

    def feed(self, data: str) -> None:
        """Interpret ``data``.

        Some of it may be held back: a CSI sequence cut off at the end, until
        the rest of it comes; and, never longer than until :meth:`flush`, while
        the screen can scroll lines in (:meth:`Emulator.can_scroll_in`), whole
        lines, so that up to ``LINE_BATCH`` of them scroll in at once, and the
        line after them.
        """
        if self._pending:
            data = self._pending + data
            self._pending = ""
        self._run(data, lines=True)

    @property
    def idle(self) -> bool:
        """Whether nothing is held back and no sequence is part way read."""
        return not self._pending and not self._lines and self._state == _GROUND

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
        if self._state != _GROUND:
            offset = self._sequence(data, offset)
            if self._state != _GROUND:
                return  # the data ended inside the sequence
        # Where the last text read ended: REP right there repeats its last character.
        text_end = offset if self._after_text else -1
        self._after_text = False
        draw = screen.draw
        draw_styled = screen.draw_styled
        handlers = self._csi
        while offset < length:
            token = _TOKEN(data, offset)
            if token is None:
                self._after_text = text_end == offset
                if _PARTIAL_CSI(data, offset):
                    self._pending = data[offset:]
                    return
                offset = self._sequence(data, offset)
                continue
            kind = token.lastgroup
            if kind == "styled":
                parts = split_sgr(token.group())
                draw_styled(parts)
                if parts[-1]:
                    text_end = token.end()
            elif kind == "text":
                draw(token.group())
                text_end = token.end()
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
                if token.group("private"):
                    self._dispatch_csi("?", params, "", final)
                elif ":" in params:
                    if final == "m":
                        self._call(screen.select_graphic_rendition, colon_sgr(params))
                elif final == "b":
                    if text_end == token.start():
                        self._call(screen.repeat, _numbers(params))
                else:
                    handler = handlers.get(final)
                    if handler is not None:
                        self._call(handler, _numbers(params))
            offset = token.end()
        if self._state == _GROUND:
            self._after_text = text_end == length

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
    def _call(handler: Callable[..., None], params: list[int], private: bool = False) -> None:
        try:
            if private:
                handler(*params, private=True)
            else:
                handler(*params)
        except Exception:  # noqa: BLE001
            # A handler raises on parameters it does not take (a third CUP
            # parameter, ``ESC [ 5 K``); a terminal ignores such a sequence.
            pass

    def _dispatch_csi(self, prefix: str, params: str, intermediates: str, final: str) -> None:
        screen = self._emulator
        if intermediates:
            name = INTERMEDIATE_CSI.get((intermediates, final))
            if name is not None and not prefix:
                self._call(getattr(screen, name), [])
            return
        if prefix == "?":
            handler = self._private_csi.get(final)
            if handler is not None and ":" not in params:
                self._call(handler, _numbers(params), private=True)
            return
        if prefix:
            return  # ``>``, ``=`` and ``<`` sequences (reports, key modes) change nothing shown
        if final == "m":
            self._call(
                screen.select_graphic_rendition, colon_sgr(params) if ":" in params else _numbers(params)
            )
        elif final == "b":
            if self._after_text:
                self._call(screen.repeat, _numbers(params))
        elif ":" not in params:
            handler = self._csi.get(final)
            if handler is not None:
                self._call(handler, _numbers(params))

    def _dispatch_escape(self, intermediates: str, final: str) -> None:
        screen = self._emulator
        if not intermediates:
            handler = self._escape.get(final)
            if handler is not None:
                self._call(handler, [])
        elif intermediates == "#":
            if final == "8":
                screen.alignment_display()
        elif intermediates in ("(", ")"):
            screen.define_charset(final, intermediates)

    def _sequence(self, data: str, offset: int) -> int:
        """Read characters from ``offset`` through the state machine until it is back in its
        ground state (or the data ends); return where ordinary reading goes on."""
        length = len(data)
        state = self._state
        controls = self._controls
        while offset < length:
            char = data[offset]
            offset += 1
            if state == _STRING or state == _OSC:
                end = (_OSC_END if state == _OSC else _STRING_END)(data, offset - 1)
                if end is None:
                    offset = length  # the whole rest is in the string
                    break
                char = end.group()
                offset = end.end()
                self._params = self._prefix = self._intermediates = ""
                if char != "\x1b":
                    state = _GROUND
                    break
                state = _ESCAPE
                continue
            code = ord(char)
            if char == "\x1b":
                state = _ESCAPE
                self._params = self._prefix = self._intermediates = ""
                continue
            if char in "\x18\x1a":
                state = _GROUND  # CAN and SUB cancel a sequence
                break
            if code < 0x20:
                handler = controls.get(char)
                if handler is not None:
                    handler()
                if state == _GROUND:
                    break
                continue
            if state == _GROUND:
                if char == "\x9b":
                    state = _CSI
                elif char == "\x9d":
                    state = _OSC
                elif char in "\x90\x98\x9e\x9f":
                    state = _STRING
                else:
                    handler = controls.get(char)
                    if handler is not None:
                        handler()  # C1 controls: IND, NEL, HTS; the others are ignored, as DEL is
                    break
                self._params = self._prefix = self._intermediates = ""
            elif state == _ESCAPE:
                if 0x20 <= code <= 0x2F:
                    self._intermediates = char
                    state = _ESCAPE_INTERMEDIATE
                elif char == "[":
                    state = _CSI
                elif char == "]":
                    state = _OSC
                elif char in "PX^_":
                    state = _STRING
                elif 0x30 <= code <= 0x7E:
                    state = _GROUND
                    self._dispatch_escape("", char)
                    break
            elif state == _ESCAPE_INTERMEDIATE:
                if 0x20 <= code <= 0x2F:
                    self._intermediates += char
                elif 0x30 <= code <= 0x7E:
                    state = _GROUND
                    self._dispatch_escape(self._intermediates, char)
                    break
            elif state == _CSI:
                if "0" <= char <= ";":
                    self._params += char
                elif "<" <= char <= "?":
                    if self._params or self._prefix:
                        state = _CSI_IGNORE
                    else:
                        self._prefix = char
                elif 0x20 <= code <= 0x2F:
                    self._intermediates = char
                    state = _CSI_INTERMEDIATE
                elif 0x40 <= code <= 0x7E:
                    state = _GROUND
                    self._dispatch_csi(self._prefix, self._params, "", char)
                    break
                elif code >= 0x80:
                    state = _CSI_IGNORE
            elif state == _CSI_INTERMEDIATE:
                if 0x20 <= code <= 0x2F:
                    self._intermediates += char
                elif 0x40 <= code <= 0x7E:
                    state = _GROUND
                    self._dispatch_csi(self._prefix, self._params, self._intermediates, char)
                    break
                elif code != 0x7F:
                    state = _CSI_IGNORE
            elif state == _CSI_IGNORE:
                if 0x40 <= code <= 0x7E:
                    state = _GROUND
                    break
        self._state = state
        if state == _GROUND:
            self._after_text = False
        return offset


def _numbers(params: str) -> list[int]:
    """CSI parameters as numbers: an empty one is 0, and none is above 9999."""
    return [min(int(p or 0), 9999) for p in params.split(";")]
