"""Tests for vibetwist.screen.replay: drawing a screen into a fresh terminal emulator."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from wcwidth import wcswidth

from tests.support.xterm import Xterm, feed_model, model_state
from vibetwist.model.snapshot import BLANK, BOLD, DIM, RGB, Cell
from vibetwist.screen.replay import ROWS_PER_CHUNK, draw_row, replay, replay_screen, sgr
from vibetwist.screen.terminal import TerminalScreen

# Terminal output: text, wide characters, line ends, styles, cursor moves and erases.
_sgr_params = st.one_of(
    st.sampled_from(["0", "1", "2", "3", "4", "7", "8", "9", "22", "27", "39", "49", ""]),
    st.integers(30, 37).map(str),
    st.integers(40, 47).map(str),
    st.integers(90, 97).map(str),
    st.integers(0, 255).map(lambda n: f"38;5;{n}"),
    st.integers(0, 255).map(lambda n: f"48;5;{n}"),
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)).map(
        lambda c: "38;2;{};{};{}".format(*c)
    ),
)
_pieces = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=30),
    st.sampled_from(["中", "文", "é", "\u00e9", "🙂", "ß"]),
    st.sampled_from(["\r\n", "\n", "\r", "\b", "\t"]),
    st.lists(_sgr_params, min_size=1, max_size=3).map(lambda ps: "\x1b[" + ";".join(ps) + "m"),
    st.tuples(st.integers(1, 12), st.integers(1, 30)).map(lambda p: f"\x1b[{p[0]};{p[1]}H"),
    st.sampled_from(["\x1b[K", "\x1b[1K", "\x1b[2K", "\x1b[J", "\x1b[2J", "\x1b[A", "\x1b[3C"]),
    st.sampled_from(
        ["\x1b[?1h", "\x1b[?1l", "\x1b[?25l", "\x1b[?25h", "\x1b[?2004h", "\x1b[?7l", "\x1b[?7h"]
    ),
    st.tuples(st.integers(1, 8), st.integers(1, 8)).map(lambda m: f"\x1b[{m[0]};{m[1]}r"),
    st.sampled_from(["\x1b(0", "\x1b(B", "\x1b)0", "\x1b)B", "\x1b(A", "\x0e", "\x0f", "\x1b[r"]),
)
terminal_output = st.lists(_pieces, max_size=120).map("".join)
# What follows a replay: text drawn with the pen where the cursor is (in the character set in
# use), line feeds and reverse line feeds (in the scroll region), shifts between G0 and G1.
_drawing = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=30),
    st.sampled_from(["中", "é", "🙂", "\r\n", "\r", "\b", "\n\n\n", "\x1bM\x1bM", "\x0e", "\x0f"]),
    st.lists(_sgr_params, min_size=1, max_size=3).map(lambda ps: "\x1b[" + ";".join(ps) + "m"),
)
following_output = st.lists(_drawing, max_size=30).map("".join)


def rows_text(rows: object) -> list[str]:
    return ["".join(c.char for c in row).rstrip() for row in rows]  # type: ignore[attr-defined]


def trim(row: tuple[Cell, ...], cols: int = 1000) -> tuple[Cell, ...]:
    """The row without trailing blanks, and without cells a terminal could not show: pyte
    can keep a character in the right half of a wide one, or a wide one in the last column."""
    end = len(row)
    while end and row[end - 1] == BLANK:
        end -= 1
    shown = []
    column = 0
    for cell in row[:end]:
        column += 2 if wcswidth(cell.char) == 2 else 1
        if column > cols:
            break
        shown.append(cell)
    while shown and shown[-1] == BLANK:
        shown.pop()
    return tuple(shown)


def redraw(screen: TerminalScreen) -> TerminalScreen:
    """A fresh screen of the same size fed the replay of ``screen``."""
    copy = TerminalScreen(screen.cols, screen.rows, scrollback=1000)
    data = b"".join(replay_screen(screen))
    copy.feed(data.decode("utf-8"))
    return copy


class ReplayTests(SynchronousTestCase):
    """A screen drawn into a fresh emulator shows the same thing."""

    def assertSameScreen(self, copy: TerminalScreen, screen: TerminalScreen) -> None:
        cols = screen.cols
        history = [trim(r, cols) for r in screen.history_rows()]
        self.assertEqual([trim(r, cols) for r in copy.history_rows()], history)
        before, after = screen.snapshot(), copy.snapshot()
        self.assertEqual([trim(r, cols) for r in after.rows], [trim(r, cols) for r in before.rows])
        self.assertEqual((after.cursor_x, after.cursor_y), (min(before.cursor_x, cols - 1), before.cursor_y))
        self.assertEqual(after.viewport_y, before.viewport_y)
        wanted = {1, 7, 25, 2004}
        self.assertEqual(copy.private_modes() & wanted, screen.private_modes() & wanted)

    @settings(max_examples=150)
    @given(terminal_output, following_output, st.integers(5, 30), st.integers(2, 8))
    def test_redraw_shows_the_same_screen(self, text: str, more: str, cols: int, rows: int) -> None:
        """Scrollback, visible cells (characters, colours, attributes), cursor and modes survive,
        and so does what decides how the output that follows is drawn (pen, pending wrap)."""
        screen = TerminalScreen(cols, rows, scrollback=1000)
        screen.feed(text)
        copy = redraw(screen)
        self.assertSameScreen(copy, screen)
        screen.feed(more)
        copy.feed(more)
        self.assertSameScreen(copy, screen)

    def test_wrap_pending_kept(self) -> None:
        """A full last row leaves the cursor past its end: the next character starts a new line."""
        screen = TerminalScreen(5, 2, scrollback=10)
        screen.feed("abcde")
        copy = redraw(screen)
        copy.feed("X")
        self.assertEqual(copy.lines(), ["abcde", "X"])

    def test_long_scrollback_in_chunks(self) -> None:
        """A long scrollback comes in several chunks, the first starting with a reset."""
        screen = TerminalScreen(20, 3, scrollback=2000)
        screen.feed("\r\n".join(f"line {i}" for i in range(100)))
        chunks = list(replay(screen.history_rows(), screen.snapshot(), screen.private_modes()))
        self.assertEqual(len(chunks), -(-97 // ROWS_PER_CHUNK) + 1)
        self.assertTrue(chunks[0].startswith(b"\x1bc"))
        copy = redraw(screen)
        self.assertEqual(rows_text(copy.history_rows())[:2], ["line 0", "line 1"])
        self.assertEqual(copy.lines(), ["line 97", "line 98", "line 99"])

    def test_replay_into_a_used_emulator(self) -> None:
        """The reset at the start clears what the emulator showed before."""
        screen = TerminalScreen(20, 3, scrollback=100)
        screen.feed("new")
        copy = TerminalScreen(20, 3, scrollback=100)
        copy.feed("old stuff\r\nmore\r\n\r\n\r\nscrolled")
        copy.feed(b"".join(replay(screen.history_rows(), screen.snapshot(), frozenset())).decode())
        self.assertEqual(copy.lines(), ["new", "", ""])
        self.assertEqual(len(copy.history_rows()), 0)


class DrawRowTests(SynchronousTestCase):
    """One row as text and styles."""

    def test_plain_row_is_its_text(self) -> None:
        self.assertEqual(draw_row([Cell("a"), Cell("b"), BLANK, BLANK], 10), "ab")

    def test_styles_change_only_where_they_differ(self) -> None:
        row = [Cell("a", fg=1), Cell("b", fg=1), Cell("c", bg=RGB(1, 2, 3), attrs=BOLD | DIM), Cell("d")]
        self.assertEqual(draw_row(row, 10), "\x1b[0;31mab\x1b[0;1;2;48;2;1;2;3mc\x1b[0md")

    def test_palette_colours(self) -> None:
        self.assertEqual(sgr(9, 200, 0), "\x1b[0;91;48;5;200m")
        self.assertEqual(sgr(None, 12, 0), "\x1b[0;104m")

    def test_row_wider_than_the_screen_is_cut(self) -> None:
        """A scrollback line from before a narrowing resize is cut, so it does not wrap."""
        self.assertEqual(draw_row([Cell("中"), Cell("x"), Cell("y")], 3), "中x")
        self.assertEqual(draw_row([Cell("a")] * 8, 5), "aaaaa")

    def test_styled_blank_kept(self) -> None:
        """Trailing spaces with a background are part of the row."""
        self.assertEqual(draw_row([Cell("a"), Cell(" ", bg=2)], 5), "a\x1b[0;42m \x1b[m")


class AlternateScreenReplayTests(SynchronousTestCase):
    """A session on the alternate screen is redrawn on it, with the main screen under it."""

    def test_alternate_screen_and_the_main_one_under_it(self) -> None:
        """The copy shows the full-screen program's screen and cursor; when the program leaves
        it, the copy shows the shell's screen and the cursor where the program found it."""
        screen = TerminalScreen(20, 4, scrollback=100)
        screen.feed("".join(f"line {i}\r\n" for i in range(6)) + "$ vim")
        screen.feed("\x1b[?1049h\x1b[H\x1b[2J~\r\n~\x1b[4;1H\x1b[7m-- INSERT --\x1b[m\x1b[1;1Hhello")
        copy = redraw(screen)
        self.assertTrue(copy.alternate)
        self.assertEqual(copy.lines(), screen.lines())
        self.assertEqual(copy.snapshot(), screen.snapshot())
        more = "\x1b[?1049l\r\n$ "
        screen.feed(more)
        copy.feed(more)
        self.assertFalse(copy.alternate)
        self.assertEqual(copy.lines(), ["line 4", "line 5", "$ vim", "$"])
        self.assertEqual(copy.lines(), screen.lines())
        self.assertEqual(rows_text(copy.history_rows()), rows_text(screen.history_rows()))
        self.assertEqual(copy.cursor, screen.cursor)


class ReplayInXtermTests(SynchronousTestCase):
    """xterm.js fed a session's replay, then more output, shows what the session's screen shows
    after that output, and what xterm.js fed the session's own output shows: the scroll region
    and the character sets come with the replay."""

    COLS, ROWS = 20, 6

    def setUp(self) -> None:
        self.xterm = Xterm()
        self.addCleanup(self.xterm.close)

    def assertReplayed(self, output: str, more: str) -> None:
        screen = feed_model(self.COLS, self.ROWS, [output.encode()])
        data = b"".join(replay_screen(screen))
        replayed, original = self.xterm.screens(
            [
                (self.COLS, self.ROWS, [data + more.encode()]),
                (self.COLS, self.ROWS, [(output + more).encode()]),
            ]
        )
        self.assertEqual(replayed, original)
        self.assertEqual(model_state(feed_model(self.COLS, self.ROWS, [(output + more).encode()])), replayed)

    def test_scroll_region(self) -> None:
        """Line feeds and reverse line feeds after the replay scroll only the region."""
        lines = "".join(f"line {i}\r\n" for i in range(8))
        self.assertReplayed(lines + "\x1b[2;4r\x1b[4;1Hin region", "\r\n\r\nafter\x1b[2;1H\x1bMup")

    def test_line_drawing_in_g0(self) -> None:
        """Text after the replay is drawn in line drawing while G0 is DEC special graphics."""
        self.assertReplayed("\x1b(0lqk\r\n", "mqqj\x1b(Bx")

    def test_line_drawing_shifted_to_g1(self) -> None:
        """G1 stays designated, and in use after SO, until SI shifts back to G0."""
        self.assertReplayed("\x1b)0\x0elq", "k\x0fk\x0eq")

    def test_scroll_regions_of_both_screens(self) -> None:
        """On the alternate screen its own region scrolls; leaving it, the main screen's
        region does."""
        self.assertReplayed(
            "a\r\nb\r\n\x1b[2;5r\x1b[5;1H\x1b[?1049h\x1b[1;3r\x1b[3;1Hx", "\n\ny\x1b[?1049l\n\n\nz"
        )
