# -*- test-case-name: tests.test_fuzz -*-
"""JSON from clients: standard JSON whose strings are valid Unicode.

Python's ``json`` also reads ``NaN`` and ``Infinity``, and ``"\\ud800"`` (a
lone surrogate), which no UTF-8 encoder accepts: stored in a session's name it
would make every later listing fail. Both are refused here, at the boundary.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

#: An escaped surrogate; only then can a string hold a lone one.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def loads(raw: bytes) -> Any:
    """The value of a JSON document; ValueError (or RecursionError) if it is not one,
    or if a string in it is not valid Unicode."""
    value = json.loads(raw, parse_constant=_no_constant)
    if _SURROGATE.search(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError("a string holds a lone surrogate, which is not text") from e
    return value
