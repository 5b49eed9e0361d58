# -*- test-case-name: tests.test_termsignals -*-
"""What a program tells through its output besides text: bells, titles, shell marks.

:class:`SignalScanner` reads a session's output text as it comes, in chunks cut
anywhere, and picks out:

- a BEL (``\\a``) that is not the end of an escape string: :class:`Bell`;
- ``OSC 0`` / ``OSC 2`` (set the window title): :class:`Title`;
- ``OSC 133`` (FinalTerm, iTerm2) and ``OSC 633`` (VS Code) shell-integration marks,
  ``A`` prompt, ``B`` command typed, ``C`` command runs, ``D[;CODE]`` command ended:
  :class:`ShellMark`.

Escape strings (OSC, DCS, APC, PM, SOS) end with ST (``ESC \\``), OSC also with BEL;
CAN and SUB abort them, and an ESC followed by anything else aborts them and starts a
new sequence, as xterm does. Strings longer than :data:`MAX_STRING` are
passed over. Output with none of these (the common case, colours and cursor moves
included) is looked at by a few substring searches, in C.
"""

from __future__ import annotations

import re

import attrs

#: Longest escape string taken in; longer ones are passed over.
MAX_STRING = 4096
#: Longest title kept.
MAX_TITLE = 256

_INTRODUCERS = {"]": "osc", "P": "dcs", "X": "sos", "^": "pm", "_": "apc"}
# The start of an escape string: ESC and its introducer. Other escape sequences (colours,
# cursor moves) are passed over by this one search, in C. C1 controls (0x80-0x9f) are
# left alone: in UTF-8 output they are text.
_STRING_START = re.compile("\x1b[]P_^X]")
# Where an escape string may end: BEL, ESC, CAN, SUB.
_STRING_END = re.compile("[\x07\x1b\x18\x1a]")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")

# The scanner's states besides being inside a string of some kind.
_TEXT = "text"
_ESCAPE = "escape"  # after an ESC outside a string
_STRING = "string"  # inside an escape string
_STRING_ESCAPE = "string-escape"  # after an ESC inside a string: ST if a backslash follows


@attrs.frozen
class Bell:
    """The program rang the bell."""


@attrs.frozen
class Title:
    """The program set the window title."""

    title: str


@attrs.frozen
class ShellMark:
    """A shell-integration mark: ``kind`` is ``A``, ``B``, ``C`` or ``D``; ``code`` the exit
    code a ``D`` mark gives (None when it gives none)."""

    kind: str
    code: int | None = None


Signal = Bell | Title | ShellMark


def _title(body: str) -> str:
    return _CONTROLS.sub("", body)[:MAX_TITLE]


def _osc(body: str) -> Signal | None:
    """What one OSC string says, if it is one of those looked for."""
    number, _, rest = body.partition(";")
    if number in ("0", "2"):
        return Title(_title(rest))
    if number in ("133", "633"):
        kind, _, args = rest.partition(";")
        if kind in ("A", "B", "C"):
            return ShellMark(kind)
        if kind == "D":
            code_text = args.partition(";")[0]
            code = int(code_text) if code_text.isdigit() and len(code_text) <= 9 else None
            return ShellMark("D", code)
    return None


class SignalScanner:
    """Reads output text in chunks and gives the signals in it, whatever the cuts."""

    def __init__(self) -> None:
        self._state = _TEXT
        # The kind of escape string being read ("osc", "dcs", ...) in _STRING.
        self._kind = ""
        self._body: list[str] = []
        self._length = 0

    def feed(self, text: str) -> list[Signal]:
        """The signals completed by text, in order."""
        if self._state is _TEXT and "\x07" not in text and not text.endswith("\x1b"):
            if _STRING_START.search(text) is None:
                return []  # the common case: two searches, in C
        found: list[Signal] = []
        i = 0
        n = len(text)
        while i < n:
            state = self._state
            if state is _TEXT:
                # The first BEL or string start, or else a last ESC (what it starts comes next).
                bell = text.find("\x07", i)
                match = _STRING_START.search(text, i, bell if bell >= 0 else n)
                if match is not None:
                    self._open(_INTRODUCERS[text[match.end() - 1]])
                    i = match.end()
                elif bell >= 0:
                    found.append(Bell())
                    i = bell + 1
                else:
                    if text.endswith("\x1b"):
                        self._state = _ESCAPE
                    break
            elif state is _ESCAPE:
                # What follows an ESC outside a string: a string introducer, or anything
                # else, which is read on as text (an ESC [ ... sequence holds no BEL).
                kind = _INTRODUCERS.get(text[i])
                if kind is None:
                    self._state = _TEXT
                else:
                    self._open(kind)
                    i += 1
            elif state is _STRING_ESCAPE:
                if text[i] == "\\":
                    i += 1
                    self._close(found)
                else:
                    # An ESC that is not ST aborts the string and starts a new sequence.
                    self._abort()
                    self._state = _ESCAPE
            else:
                match = _STRING_END.search(text, i)
                if match is None:
                    self._take(text[i:])
                    break
                self._take(text[i : match.start()])
                c = match.group()
                i = match.end()
                if c == "\x1b":
                    self._state = _STRING_ESCAPE
                elif c == "\x07" and self._kind == "osc":
                    self._close(found)
                elif c == "\x07":
                    self._take(c)
                else:
                    self._abort()  # CAN or SUB
        return found

    def _open(self, kind: str) -> None:
        self._state = _STRING
        self._kind = kind
        self._body = []
        self._length = 0

    def _take(self, part: str) -> None:
        if self._length <= MAX_STRING:
            self._body.append(part)
        self._length += len(part)

    def _close(self, found: list[Signal]) -> None:
        if self._kind == "osc" and self._length <= MAX_STRING:
            signal = _osc("".join(self._body))
            if signal is not None:
                found.append(signal)
        self._abort()

    def _abort(self) -> None:
        self._state = _TEXT
        self._body = []
        self._length = 0
