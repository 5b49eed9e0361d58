"""A reference terminal for the screen model: xterm.js's headless build, run in Node.

:class:`Xterm` runs ``tests/xterm_screen.mjs`` once and hands it batches of byte
streams; each comes back as what xterm.js shows: the visible cells, the cursor,
whether the alternate screen is on, the main screen under it and the scrollback.
:func:`model_state` reads the same from a :class:`TerminalScreen`, in the same
form, so a test compares the two with one ``assertEqual``.
"""

from __future__ import annotations

import base64
import codecs
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.support.node import NodeScript
from vibetwist.model.snapshot import RGB, Cell, Snapshot
from vibetwist.screen.terminal import TerminalScreen

RUNNER = Path(__file__).parent.parent / "xterm_screen.mjs"

#: A step of a stream: bytes written as one chunk, or a new size ``(cols, rows)``.
Step = bytes | tuple[int, int]
#: One cell as compared: (characters, foreground, background, attribute bits).
CellValue = tuple[str, Any, Any, int]


class XtermError(Exception):
    """xterm.js itself failed on a stream."""


class Xterm:
    """One Node process running xterm.js, fed batches of streams."""

    def __init__(self) -> None:
        self._node = NodeScript(RUNNER)

    def screens(
        self, streams: Iterable[tuple[int, int, Sequence[Step]]], scrollback: int = 1000
    ) -> list[dict[str, Any] | XtermError]:
        """What xterm.js shows after each ``(cols, rows, steps)`` stream, in the form of :func:`model_state`
        (or the error xterm.js raised on it)."""
        request = [
            {
                "cols": cols,
                "rows": rows,
                "scrollback": scrollback,
                "steps": [
                    {"resize": list(step)}
                    if isinstance(step, tuple)
                    else {"data": base64.b64encode(step).decode("ascii")}
                    for step in _joined(steps)
                ],
            }
            for cols, rows, steps in streams
        ]
        return [_result(result) for result in self._node.call(request)]

    def close(self) -> None:
        self._node.close()


def _result(result: dict[str, Any]) -> dict[str, Any] | XtermError:
    try:
        return _reference_state(result)
    except XtermError as e:
        return e


def _joined(steps: Sequence[Step]) -> list[Step]:
    """The steps with the bytes between two resizes written at once (xterm.js joins no
    character of no width to one written by an earlier call)."""
    joined: list[Step] = []
    for step in steps:
        if isinstance(step, bytes) and joined and isinstance(joined[-1], bytes):
            joined[-1] += step
        else:
            joined.append(step)
    return joined


def _color(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _reference_row(cells: list[list[Any]]) -> tuple[CellValue, ...]:
    # A wide character's second cell (width 0, empty) is left out, as in snapshot rows.
    return tuple(
        (unicodedata.normalize("NFC", chars or " "), _color(fg), _color(bg), attrs)
        for chars, width, fg, bg, attrs in cells
        if width or chars
    )


def _reference_state(result: dict[str, Any]) -> dict[str, Any]:
    if "error" in result:
        raise XtermError(result["error"])
    state = {
        "alternate": result["alternate"],
        "cursor": tuple(result["cursor"]),
        "screen": [_reference_row(row) for row in result["screen"]],
        "history": [_reference_row(row) for row in result["history"]],
    }
    state["main"] = (
        [_reference_row(row) for row in result["main"]] if result["alternate"] else state["screen"]
    )
    return state


def _cell_value(cell: Cell) -> CellValue:
    return (unicodedata.normalize("NFC", cell.char), _rgb(cell.fg), _rgb(cell.bg), cell.attrs)


def _rgb(color: Any) -> Any:
    return (color.r, color.g, color.b) if isinstance(color, RGB) else color


def _rows(rows: Iterable[Sequence[Cell]]) -> list[tuple[CellValue, ...]]:
    return [tuple(map(_cell_value, row)) for row in rows]


def model_state(screen: TerminalScreen) -> dict[str, Any]:
    """What the model shows, in the form :meth:`Xterm.screens` gives xterm.js's screens."""
    snap = screen.snapshot()
    return {
        "alternate": screen.alternate,
        "cursor": screen.cursor,
        "screen": _rows(snap.rows),
        "main": _rows(screen.main_rows()),
        "history": _rows(screen.history_rows()),
    }


def visible_state(snap: Snapshot) -> dict[str, Any]:
    """The cursor and the visible cells of a snapshot (as ``/buffer`` answers it), in the form of
    :func:`model_state` (without trailing blanks: a decoded snapshot may stop there)."""
    return {"cursor": (snap.cursor_x, snap.cursor_y), "screen": trimmed(_rows(snap.rows))}


def trimmed(rows: Iterable[tuple[CellValue, ...]]) -> list[tuple[CellValue, ...]]:
    """The rows without their trailing blank cells (a space, default colours, no attributes),
    and without the blank rows at the end."""
    blank = _cell_value(Cell(" "))
    result = []
    for row in rows:
        end = len(row)
        while end and row[end - 1] == blank:
            end -= 1
        result.append(row[:end])
    while result and not result[-1]:
        result.pop()
    return result


def feed_model(cols: int, rows: int, steps: Sequence[Step], scrollback: int = 1000) -> TerminalScreen:
    """A screen fed the steps (bytes decoded as UTF-8 across steps, a tuple a resize)."""
    screen = TerminalScreen(cols, rows, scrollback=scrollback)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for step in steps:
        if isinstance(step, tuple):
            screen.resize(*step)
        else:
            screen.feed(decoder.decode(step))
    return screen
