"""Tests for vibetwist.screen.terminal: the session screen, its snapshots and its scrollback."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from vibetwist.model.snapshot import RGB, UNDERLINE
from vibetwist.screen.terminal import TerminalScreen


class ScreenTests(SynchronousTestCase):
    """What the screen shows for a given stream."""

    def screen(self, text: str, cols: int = 20, rows: int = 4) -> TerminalScreen:
        screen = TerminalScreen(cols, rows, scrollback=50)
        screen.feed(text)
        return screen

    def test_zero_width_characters_keep_following_text(self) -> None:
        """U+200D, U+FE0F and U+200B join the cell before them, and the text after them is
        not dropped (stock pyte stops there)."""
        for joiner in ["\u200d", "\ufe0f", "\u200b"]:
            screen = self.screen(f"a{joiner}b c")
            self.assertEqual(screen.lines()[0], f"a{joiner}b c")
            self.assertEqual([cell.char for cell in screen.snapshot().rows[0][:3]], [f"a{joiner}", "b", " "])

    def test_combining_marks_kept(self) -> None:
        """Combining marks still combine with the character before them."""
        self.assertEqual(self.screen("e\u0301x").lines()[0], "\u00e9x")

    def test_text_and_scrollback(self) -> None:
        """Lines that scroll off the top are counted as scrollback; the view is the bottom rows."""
        screen = self.screen("".join(f"l{i}\r\n" for i in range(10)), rows=4)
        self.assertEqual(screen.lines(), ["l7", "l8", "l9", ""])
        self.assertEqual(screen.scrollback_lines, 7)
        self.assertEqual(screen.snapshot().viewport_y, 7)

    def test_snapshot_cells(self) -> None:
        """Colours, attributes, wide characters and the cursor come through to the snapshot."""
        screen = self.screen("\x1b[4;31mA\x1b[0m\x1b[38;2;1;2;3mB\x1b[0m中x")
        snap = screen.snapshot()
        row = snap.rows[0]
        self.assertEqual((row[0].char, row[0].fg, row[0].attrs), ("A", 1, UNDERLINE))
        self.assertEqual((row[1].char, row[1].fg), ("B", RGB(1, 2, 3)))
        self.assertEqual([c.char for c in row[2:4]], ["中", "x"])  # the wide char's second column is left out
        self.assertEqual((snap.cursor_x, snap.cursor_y), (5, 0))

    def test_resize(self) -> None:
        """A resize changes the screen's size, also before anything was drawn."""
        screen = TerminalScreen(10, 5)
        screen.resize(30, 8)
        self.assertEqual((screen.cols, screen.rows), (30, 8))
        screen.feed("x")
        screen.resize(40, 9)
        self.assertEqual((screen.cols, screen.rows, len(screen.lines())), (40, 9, 9))

    def test_fewer_rows_drop_blank_rows_below_the_cursor_first(self) -> None:
        """Losing rows takes the blank rows under the cursor; the text stays where it was."""
        screen = self.screen("one\r\ntwo\r\n$ ", rows=8)
        screen.resize(20, 4)
        self.assertEqual(screen.lines(), ["one", "two", "$", ""])
        self.assertEqual(screen.scrollback_lines, 0)
        self.assertEqual((screen.snapshot().cursor_x, screen.snapshot().cursor_y), (2, 2))

    def test_fewer_rows_scroll_the_top_into_the_scrollback(self) -> None:
        """When the cursor sits low, the top rows scroll into the scrollback, as in a
        terminal: no line of text is lost, and the cursor moves up with its line."""
        screen = self.screen("".join(f"l{i}\r\n" for i in range(5)) + "$ ", rows=8)
        screen.resize(20, 3)
        self.assertEqual(screen.lines(), ["l3", "l4", "$"])
        history = ["".join(c.char for c in row).rstrip() for row in screen.history_rows()]
        self.assertEqual(history, ["l0", "l1", "l2"])
        self.assertEqual((screen.snapshot().cursor_x, screen.snapshot().cursor_y), (2, 2))

    def test_fewer_rows_drop_text_below_the_cursor(self) -> None:
        """Rows under the cursor go first even with text (a status line), as in xterm.js and
        tmux: the program redraws it."""
        screen = self.screen("top\r\nmid\x1b[4;1Hstatus\x1b[2;1H", rows=4)
        screen.resize(20, 3)
        self.assertEqual(screen.lines(), ["top", "mid", ""])
        self.assertEqual(screen.snapshot().cursor_y, 1)

    def test_more_rows_bring_back_the_scrollback(self) -> None:
        """With the cursor on the bottom row, more rows pull lines back from the scrollback;
        with it higher up, blank rows come at the bottom."""
        screen = self.screen("".join(f"l{i}\r\n" for i in range(6)) + "$ ", rows=3)
        screen.resize(20, 5)
        self.assertEqual(screen.lines(), ["l2", "l3", "l4", "l5", "$"])
        self.assertEqual((screen.scrollback_lines, screen.cursor), (2, (2, 4)))
        screen.feed("\x1b[1;1H")
        screen.resize(20, 7)
        self.assertEqual(screen.lines(), ["l2", "l3", "l4", "l5", "$", "", ""])


class ScreenStateTests(SynchronousTestCase):
    """The parts of the screen a replay to a terminal emulator needs besides the visible rows."""

    def test_history_rows_oldest_first(self) -> None:
        """Lines that scrolled off the top are kept as cells, oldest first."""
        screen = TerminalScreen(10, 3, scrollback=100)
        screen.feed("\r\n".join(f"line{i}" for i in range(8)))
        history = screen.history_rows()
        self.assertEqual(len(history), 5)
        texts = ["".join(c.char for c in row).rstrip() for row in history]
        self.assertEqual(texts, [f"line{i}" for i in range(5)])
        self.assertEqual(screen.lines(), ["line5", "line6", "line7"])
        self.assertEqual(screen.history_rows_between(1, 3), history[1:3])
        self.assertEqual(screen.history_rows_between(4, 99), history[4:])

    def test_private_modes(self) -> None:
        """DEC private modes set by the program are reported by number, and reset ones are not."""
        screen = TerminalScreen(10, 3)
        screen.feed("\x1b[?1h\x1b[?2004h\x1b[?25l")
        modes = screen.private_modes()
        self.assertIn(1, modes)
        self.assertIn(2004, modes)
        self.assertNotIn(25, modes)
        screen.feed("\x1b[?1l\x1b[?25h")
        self.assertNotIn(1, screen.private_modes())
        self.assertIn(25, screen.private_modes())
