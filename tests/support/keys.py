"""The named keys a client may send, and the bytes each must type."""

#: The named keys of the protocol, written out again so the tests do not read the
#: table they check (docs/protocol.md lists them; L{vibetwist.model.keys.KEYS} is the table).
EXPECTED = {
    "arrow_up": b"\x1b[A",
    "arrow_down": b"\x1b[B",
    "arrow_right": b"\x1b[C",
    "arrow_left": b"\x1b[D",
    "escape": b"\x1b",
    "enter": b"\r",
    "ctrl_enter": b"\n",
    "shift_enter": b"\r\n",
    "backspace": b"\x7f",
    "tab": b"\t",
    "shift_tab": b"\x1b[Z",
    "page_up": b"\x1b[5~",
    "page_down": b"\x1b[6~",
    "home": b"\x1b[H",
    "end": b"\x1b[F",
    "delete": b"\x1b[3~",
    "f1": b"\x1bOP",
    "f2": b"\x1bOQ",
    "f3": b"\x1bOR",
    "f4": b"\x1bOS",
    "f5": b"\x1b[15~",
    "f6": b"\x1b[17~",
    "f7": b"\x1b[18~",
    "f8": b"\x1b[19~",
    "f9": b"\x1b[20~",
    "f10": b"\x1b[21~",
    "f11": b"\x1b[23~",
    "f12": b"\x1b[24~",
}
