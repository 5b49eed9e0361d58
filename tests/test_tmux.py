"""The screen against a real terminal: tmux shown the same bytes must show the same cells.

Each test has tmux (a private server on its own socket) run ``cat`` of a
byte stream in a pane of the same size with output post-processing off, then
reads the pane back with ``capture-pane -p -e -N`` (text with its SGR
attributes, trailing blanks kept) and the cursor position.  The capture is
turned into cells by feeding it, line by line, to a fresh screen: it holds
only text and SGR sequences.  Needs ``tmux`` on PATH; skipped without it.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time

import attrs
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.model.snapshot import Snapshot
from vibetwist.screen.terminal import TerminalScreen

TMUX = shutil.which("tmux")


def tmux_capture(data: bytes, cols: int, rows: int) -> tuple[str, tuple[int, int]]:
    """What tmux shows for ``data``: the pane as text with SGR sequences, and the cursor."""
    assert TMUX is not None
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "sock")
        stream = os.path.join(tmp, "stream")
        with open(stream, "wb") as out:
            out.write(data)
        tmux = [TMUX, "-S", sock]
        script = f"stty -opost -echo; cat {stream}; {TMUX} -S {sock} wait-for -S fed; exec sleep 60"
        subprocess.run(
            [*tmux, "-f", "/dev/null", "new-session", "-d", "-x", str(cols), "-y", str(rows), script],
            check=True,
            env={**os.environ, "TMUX": ""},
        )
        try:
            subprocess.run([*tmux, "wait-for", "fed"], check=True, timeout=20)
            # tmux may still be reading the pane's last output: wait until two looks agree.
            previous = None
            for _ in range(100):
                look = [
                    subprocess.run(command, check=True, capture_output=True).stdout.decode("utf-8")
                    for command in (
                        [*tmux, "capture-pane", "-p", "-e", "-N"],
                        [*tmux, "display", "-p", "#{cursor_x} #{cursor_y}"],
                    )
                ]
                if look == previous:
                    break
                previous = look
                time.sleep(0.02)
        finally:
            subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)
    capture, cursor = look
    x, y = cursor.split()
    return capture, (int(x), int(y))


def cells_of_capture(capture: str, cols: int, rows: int) -> Snapshot:
    """The cells tmux captured, read back by a fresh screen (the capture is only text and SGR)."""
    screen = TerminalScreen(cols, rows, scrollback=1)
    screen.feed("\r\n".join(capture.rstrip("\n").split("\n")[:rows]))
    return screen.snapshot()


def strip_zero_width(text: str) -> str:
    """tmux's capture leaves out U+200D, U+FE0F and U+200B, which join the cell before them."""
    return text.replace("\u200d", "").replace("\ufe0f", "").replace("\u200b", "")


class TmuxReferenceTests(SynchronousTestCase):
    """The screen shows what tmux shows for the same bytes."""

    if TMUX is None:
        skip = "tmux is not installed"

    def assertSameAsTmux(self, text: str, cols: int = 20, rows: int = 6) -> None:
        capture, cursor = tmux_capture(text.encode("utf-8"), cols, rows)
        expected = cells_of_capture(strip_zero_width(capture), cols, rows)
        screen = TerminalScreen(cols, rows, scrollback=100)
        screen.feed(text)
        snap = screen.snapshot()
        rows = [
            tuple(attrs.evolve(cell, char=strip_zero_width(cell.char)) for cell in row) for row in snap.rows
        ]
        self.assertEqual(rows, list(expected.rows))
        self.assertEqual((snap.cursor_x, snap.cursor_y), cursor)

    def test_text_after_zero_width_characters(self) -> None:
        """U+200D, U+FE0F and U+200B join the cell before them and the text after them is shown,
        as tmux shows it."""
        self.assertSameAsTmux("a\u200db c\ufe0fd e\u200bf\r\nafter")

    def test_wide_character_in_last_column(self) -> None:
        """A wide character that does not fit wraps to the next line.  (xterm.js, and so the
        screen, also blanks the last column it leaves; tmux leaves it as it was, so it is blank
        here.)"""
        self.assertSameAsTmux("123456789中x\r\n12345678中\u4e00\u4e01", cols=10, rows=4)

    def test_colon_sgr(self) -> None:
        """Colon-form SGR colours and underline match tmux's."""
        self.assertSameAsTmux(
            "\x1b[38:2::255:0:0mR\x1b[48:5:200mB\x1b[0m\x1b[4:3mU\x1b[4:0mN\x1b[38:2:1:2:3mC\x1b[0m"
        )

    def test_attributes_and_colours(self) -> None:
        """Dim, invisible, bold, italic, underline, inverse, strikethrough and colour kinds match tmux's."""
        self.assertSameAsTmux(
            "\x1b[2mD\x1b[22m\x1b[8mH\x1b[28m\x1b[1mB\x1b[3mI\x1b[4mU\x1b[7mV\x1b[9mS\x1b[0m\r\n"
            "\x1b[38;5;196mP\x1b[38;2;255;0;0mQ\x1b[31mr\x1b[91mR\x1b[105mM\x1b[48;2;0;0;1mb\x1b[0m"
        )

    def test_colour_listing(self) -> None:
        """A coloured, scrolling listing (like ls --color) ends on the same screen."""
        rnd = random.Random(5)
        lines = []
        for i in range(40):
            # No background: a line wrapping in one fills the next with it, which capture-pane
            # does not report.
            colour = rnd.choice(["01;34", "01;32", "0", "01;36", "31;01", "38;5;208"])
            name = "".join(rnd.choice("abcdefgh_.") for _ in range(rnd.randint(1, 25)))
            lines.append(f"-rw-r--r-- 1 root {i:5d} \x1b[0m\x1b[{colour}m{name}\x1b[0m")
        self.assertSameAsTmux("\r\n".join(lines), cols=40, rows=8)

    def test_full_screen_redraw(self) -> None:
        """Cursor moves, erases, colours and wide characters of a redrawing program end the same.

        Erasing with a background colour is left out: ``capture-pane`` does
        not report the erased cells past a line's last character.
        """
        rnd = random.Random(7)
        parts = ["\x1b[2J"]
        for _ in range(300):
            if rnd.random() < 0.5:
                word = rnd.choice(["cpu", "mem 42%", "ok", "load 1.0", "\x1b[0m\x1b[K"])
                y, x = rnd.randint(1, 4), rnd.randint(1, 31 - min(len(word), 8))
            else:
                word = rnd.choice(["日本", "表", "中文字"])
                y, x = rnd.randint(5, 8), rnd.randrange(1, 32 - 2 * len(word), 2)
            parts.append(f"\x1b[{y};{x}H\x1b[{rnd.choice([0, 1, 32, 44, 7])}m{word}\x1b[0m")
        self.assertSameAsTmux("".join(parts), cols=30, rows=8)
