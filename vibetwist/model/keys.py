# -*- test-case-name: tests.test_keys -*-
"""
The named keys a client may send instead of text, and the bytes each types.

A client names a key in ``POST /api/sessions/:id/input`` (``{"key": name}``) or
on ``/ws/input`` (``"\\x00" + name + "\\x00"``); the session writes the key's
sequence to the terminal as if it had been typed.
"""

from collections.abc import Mapping
from types import MappingProxyType

from vibetwist.errors import BadRequest

__all__ = ["KEYS", "key_sequence"]

KEYS: Mapping[str, str] = MappingProxyType(
    {
        "arrow_up": "\x1b[A",
        "arrow_down": "\x1b[B",
        "arrow_right": "\x1b[C",
        "arrow_left": "\x1b[D",
        "escape": "\x1b",
        "enter": "\r",
        "ctrl_enter": "\n",
        "shift_enter": "\r\n",
        "backspace": "\x7f",
        "tab": "\t",
        "shift_tab": "\x1b[Z",
        "page_up": "\x1b[5~",
        "page_down": "\x1b[6~",
        "home": "\x1b[H",
        "end": "\x1b[F",
        "delete": "\x1b[3~",
        "f1": "\x1bOP",
        "f2": "\x1bOQ",
        "f3": "\x1bOR",
        "f4": "\x1bOS",
        "f5": "\x1b[15~",
        "f6": "\x1b[17~",
        "f7": "\x1b[18~",
        "f8": "\x1b[19~",
        "f9": "\x1b[20~",
        "f10": "\x1b[21~",
        "f11": "\x1b[23~",
        "f12": "\x1b[24~",
    }
)
"""Each named key and the sequence a terminal sends for it."""


def key_sequence(name: object) -> str:
    """
    Look up the sequence a named key types.

    :param name: the key's name, as a client sent it.
    :return: the sequence to write to the terminal.
    :raises BadRequest: if ``name`` is not the name of a key (HTTP 400).
    """
    if isinstance(name, str):
        sequence = KEYS.get(name)
        if sequence is not None:
            return sequence
    raise BadRequest(f"Unknown key: {name}")
