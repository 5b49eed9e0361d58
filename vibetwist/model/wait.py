# -*- test-case-name: tests.test_wait -*-
"""What ``POST /api/sessions/:id/wait`` asks for, and the bounded search of output for a pattern.

Pure: a :class:`WaitRequest` is read from the request's JSON body (or a
:class:`vibetwist.errors.BadRequest` says why not), and an
:class:`OutputSearch` is handed output text piece by piece and says when its
pattern has shown. What either searches is bounded, so one search never
holds the daemon for long, however much a program prints.
"""

from __future__ import annotations

import math
import re
from typing import Any

import attrs

from vibetwist.errors import BadRequest

#: The longest wait a client may ask for, in seconds.
MAX_TIMEOUT = 3600.0
#: The wait a client gets when it names no timeout, in seconds.
DEFAULT_TIMEOUT = 30.0
#: The longest pattern, in characters.
MAX_PATTERN = 1000
#: How much output before the new output each search looks at again (a match may
#: begin this many characters before the output that completes it).
OVERLAP = 4096
#: The most output already recorded that a new wait searches (the end of it, when
#: ``after`` lies further back).
MAX_BACKLOG = 1 << 20
#: Where a wait looks: the screen's text or the program's output.
MODES = ("screen", "output")
FIELDS = frozenset({"pattern", "idle", "timeout", "on", "after"})


def _number(body: dict[str, Any], name: str, default: float | None) -> float | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{name} must be a number of seconds")
    if not 0 < value <= MAX_TIMEOUT:
        raise BadRequest(f"{name} must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
    return float(value)


@attrs.frozen
class WaitRequest:
    """One wait: for ``pattern`` (compiled) in ``on``, or for ``idle`` seconds of quiet."""

    timeout: float
    pattern: re.Pattern[str] | None = None
    on: str = "screen"
    after: int | None = None
    idle: float | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> WaitRequest:
        """The wait a request body asks for; BadRequest for anything out of place."""
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise BadRequest(f"Unknown field: {unknown[0]}")
        if ("pattern" in body) == ("idle" in body):
            raise BadRequest("Exactly one of pattern or idle is required")
        timeout = _number(body, "timeout", DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT
        if "idle" in body:
            if "on" in body or "after" in body:
                raise BadRequest("on and after go with pattern, not with idle")
            return cls(timeout=timeout, idle=_number(body, "idle", None))
        pattern = body["pattern"]
        if not isinstance(pattern, str) or not pattern:
            raise BadRequest("pattern must be a non-empty string")
        if len(pattern) > MAX_PATTERN:
            raise BadRequest(f"pattern must be at most {MAX_PATTERN} characters")
        try:
            compiled = re.compile(pattern)
        except (re.error, RecursionError, OverflowError, ValueError) as e:
            raise BadRequest("pattern is not a regular expression", details=str(e)[:200]) from e
        on = body.get("on", "screen")
        if on not in MODES:
            raise BadRequest('on must be "screen" or "output"')
        after = body.get("after")
        if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
            raise BadRequest("after must be a recording offset (an integer, 0 or more)")
        return cls(timeout=timeout, pattern=compiled, on=on, after=after)


class OutputSearch:
    """Looks for a pattern in output handed in piece by piece.

    Each search covers the new text and up to ``overlap`` characters before it,
    so it finds every match that starts at most ``overlap`` characters before
    the text that completes it, wherever the output was cut into pieces. ``^``
    and ``\\A`` stand for the start of the output searched, never for a place
    where the overlap cut it (``(?m)^`` is the start of any line).
    """

    def __init__(self, pattern: re.Pattern[str], overlap: int = OVERLAP) -> None:
        self.pattern = pattern
        self._overlap = overlap
        self._tail = ""
        #: Whether the tail no longer starts where the output began: then the search
        #: starts one character in, so ``^`` and ``\A`` match only the output's real start.
        self._cut = False

    def feed(self, text: str) -> tuple[str, int] | None:
        """Take in more output: None while the pattern has not shown, then the matched text and
        where in ``text`` the match ends (0 for a match that ends before it)."""
        if not text:
            return None
        window = self._tail + text
        match = self.pattern.search(window, 1 if self._cut else 0)
        if match is not None:
            return match.group(0), max(0, match.end() - len(self._tail))
        keep = self._overlap + 1  # the character before the overlap, for ^ and lookbehinds
        self._cut = self._cut or len(window) > keep
        self._tail = window[-keep:]
        return None
