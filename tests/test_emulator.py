"""Tests for vibetwist.screen.emulator and vibetwist.screen.parser: fast paths that change nothing
shown, skipping, what stock pyte gets wrong, and the frozen scrollback.  What the screen shows is
compared with xterm.js in tests/test_differential.py."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support import streams
from tests.support.xterm import model_state
from vibetwist.model.snapshot import (
    BLANK,
    BOLD,
    DIM,
    INVISIBLE,
    RGB,
    UNDERLINE,
    Cell,
)
from vibetwist.screen import parser as emulator_stream
from vibetwist.screen.emulator import Emulator
from vibetwist.screen.scrollback import Scrollback
from vibetwist.screen.terminal import TerminalScreen


def fast_state(screen: TerminalScreen) -> dict[str, Any]:
    return {**model_state(screen), "modes": screen.private_modes()}


def _chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:])]


class ChunkingTests(SynchronousTestCase):
    """The fast paths (whole lines scrolled in at once, text runs, held-back lines) change nothing shown."""

    @given(
        st.text(st.sampled_from("ab \r\n\x1b[31;1m中\u200d(0q"), max_size=300),
        st.lists(st.integers(0, 300)),
    )
    def test_chunking_does_not_matter(self, text: str, cuts: list[int]) -> None:
        """Feeding the same text in any chunks gives the same screen (also with colon-form SGR)."""
        text = text.replace("\x1b[31;1m", "\x1b[38:2::1:2:3m").replace("(0", "\x1b(0").replace("(", "\x1b(B")
        whole = TerminalScreen(12, 4, scrollback=10)
        whole.feed(text)
        pieces = TerminalScreen(12, 4, scrollback=10)
        for chunk in _chunks(text, cuts):
            pieces.feed(chunk)
        self.assertEqual(fast_state(pieces), fast_state(whole))

    @given(
        st.lists(
            st.one_of(streams.printed, streams.sgr, st.just("\r\n"), st.just("ab\r\n")), max_size=80
        ).map("".join),
        st.lists(st.integers(0, 10_000), max_size=12),
        st.integers(1, 5),
    )
    def test_reads_see_everything_fed(self, text: str, cuts: list[int], batch: int) -> None:
        """A read after any chunk shows what feeding everything so far at once shows (nothing held back)."""
        self.patch(emulator_stream, "LINE_BATCH", batch)
        fast = TerminalScreen(8, 3, scrollback=4)
        fed = ""
        for chunk in _chunks(text, cuts):
            fed += chunk
            fast.feed(chunk)
            whole = TerminalScreen(8, 3, scrollback=4)
            whole.feed(fed)
            self.assertEqual(fast_state(fast), fast_state(whole))

    @given(
        st.lists(
            st.one_of(streams.printed, streams.sgr, st.just("\r\n"), streams.escapes),
            min_size=1,
            max_size=200,
        ).map("".join)
    )
    def test_scrolled_lines_same_as_drawn_ones(self, text: str) -> None:
        """Many lines scrolled in at once, past the scrollback's size, give the screen that
        drawing them one by one gives."""
        self.patch(emulator_stream, "LINE_BATCH", 64)
        fast = TerminalScreen(10, 3, scrollback=5)
        fast.feed(text)
        self.patch(Emulator, "can_scroll_in", lambda self: False)
        slow = TerminalScreen(10, 3, scrollback=5)
        slow.feed(text)
        self.assertEqual(fast_state(fast), fast_state(slow))

    @given(
        st.lists(
            st.one_of(
                st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=35),
                st.sampled_from(["\x1b[1m", "\x1b[44m", "\x1b[0m"]),
            ),
            min_size=1,
            max_size=60,
        )
    )
    def test_wide_lines_scrolled_as_drawn(self, lines: list[str]) -> None:
        """Lines wider than the screen, scrolled in at once, wrap as drawing them does."""
        text = "\r\n" * 3 + "\r\n".join(lines) + "\r\n"
        self.patch(emulator_stream, "LINE_BATCH", 8)
        fast = TerminalScreen(10, 3, scrollback=5)
        fast.feed(text)
        self.patch(Emulator, "can_scroll_in", lambda self: False)
        slow = TerminalScreen(10, 3, scrollback=5)
        slow.feed(text)
        self.assertEqual(fast_state(fast), fast_state(slow))

    def test_wide_line_rows(self) -> None:
        """A line of 25 characters on a 10-column screen takes three rows; one of exactly
        20, two."""
        s = screen("\r\n" * 3 + "a" * 25 + "\r\n" + "b" * 20 + "\r\n", cols=10, rows=3)
        shown = ["".join(c.char for c in row).rstrip() for row in s.history_rows()] + s.text().splitlines()
        self.assertEqual(
            [row for row in shown if row][-5:], ["a" * 10, "a" * 10, "a" * 5, "b" * 10, "b" * 10]
        )


class SkipTests(SynchronousTestCase):
    """Output dropped by ``skip`` could not have changed the screen."""

    @given(
        st.lists(st.one_of(streams.printed, streams.escapes), max_size=10).map("".join),
        streams.scrolling_lines,
        st.lists(st.one_of(streams.printed, streams.escapes), max_size=10).map("".join),
        st.integers(1, 12),
        st.integers(1, 4),
    )
    def test_skip_changes_nothing_shown(
        self, before: str, lines: str, after: str, cols: int, rows: int
    ) -> None:
        """Skipping then feeding the rest shows what feeding everything shows: cells, cursor, scrollback."""
        text = lines + after
        fed = TerminalScreen(cols, rows, scrollback=3)
        fed.feed(before)
        fed.feed(text)
        skipped = TerminalScreen(cols, rows, scrollback=3)
        skipped.feed(before)
        dropped = skipped.skip(text)
        skipped.feed(text[dropped:])
        self.assertEqual(skipped.snapshot(), fed.snapshot())
        self.assertEqual(skipped.history_rows(), fed.history_rows())
        self.assertEqual(skipped.private_modes(), fed.private_modes())

    def test_flood_is_skipped(self) -> None:
        """Of a long coloured scrolling flood only the lines the screen and scrollback hold are fed."""
        flood = "".join(f"\x1b[0;3{i % 8}mline {i}\x1b[1m!\r\n" for i in range(1000))
        skipped = TerminalScreen(20, 5, scrollback=10)
        dropped = skipped.skip(flood)
        self.assertEqual(flood[dropped:].count("\n"), 15)
        skipped.feed(flood[dropped:])
        fed = TerminalScreen(20, 5, scrollback=10)
        fed.feed(flood)
        self.assertEqual((skipped.snapshot(), skipped.history_rows()), (fed.snapshot(), fed.history_rows()))

    def test_nothing_skipped_inside_a_sequence(self) -> None:
        """While a fed CSI sequence waits for its end, nothing is skipped."""
        screen = TerminalScreen(10, 2, scrollback=2)
        screen.feed("\x1b[3")
        self.assertEqual(screen.skip("1mx\r\n" * 50), 0)

    def test_nothing_skipped_when_not_only_scrolling(self) -> None:
        """Too few scrolling lines before a cursor move, or a mode change first, keep everything."""
        lines = "x\r\n" * 100
        for text in [lines[:30] + "\x1b[H" + lines, "\x1b[?7l" + lines, lines[:57]]:
            self.assertEqual(TerminalScreen(10, 5, scrollback=10).skip(text), 0)


def screen(text: str, cols: int = 10, rows: int = 3) -> TerminalScreen:
    s = TerminalScreen(cols, rows, scrollback=50)
    s.feed(text)
    return s


class FixTests(SynchronousTestCase):
    """Where stock pyte is wrong, the screen does what a terminal does."""

    def test_text_after_zero_width_and_controls(self) -> None:
        """Text after U+200D, U+FE0F, U+200B or a stray control character is drawn."""
        for breaker in ["\u200d", "\ufe0f", "\u200b"]:
            self.assertEqual(screen(f"a{breaker}b c").lines()[0], f"a{breaker}b c")
        for breaker in ["\x01", "\x7f", "\x9a"]:
            self.assertEqual(screen(f"a{breaker}b c").lines()[0], "ab c")
        self.assertEqual(screen("a\x85b c").lines()[:2], ["a", "b c"])  # NEL, as xterm.js reads it

    def test_wide_character_in_last_column_wraps(self) -> None:
        """A wide character that does not fit in the last column starts the next line."""
        s = screen("123456789中x")
        self.assertEqual(s.lines()[:2], ["123456789", "中x"])
        self.assertEqual((s.snapshot().cursor_x, s.snapshot().cursor_y), (3, 1))

    def test_colon_sgr(self) -> None:
        """Colon-form SGR sets RGB and palette colours and underline, and is not printed."""
        s = screen("\x1b[38:2::1:2:3mA\x1b[48:5:200mB\x1b[38:2:4:5:6;4:3mC\x1b[4:0mD")
        row = s.snapshot().rows[0]
        self.assertEqual(s.lines()[0], "ABCD")
        self.assertEqual(row[0].fg, RGB(1, 2, 3))
        self.assertEqual(row[1].bg, 200)
        self.assertEqual((row[2].fg, row[2].attrs), (RGB(4, 5, 6), UNDERLINE))
        self.assertEqual(row[3].attrs, 0)

    def test_dim_and_invisible(self) -> None:
        """SGR 2 and 8 set dim and invisible; 22 and 28 clear them."""
        row = screen("\x1b[2mA\x1b[8mB\x1b[22mC\x1b[28mD").snapshot().rows[0]
        self.assertEqual([c.attrs for c in row[:4]], [DIM, DIM | INVISIBLE, INVISIBLE, 0])

    def test_palette_and_rgb_stay_apart(self) -> None:
        """A 256-colour index stays an index and an RGB colour stays RGB, even when they look alike."""
        row = screen("\x1b[38;5;196mA\x1b[38;2;255;0;0mB\x1b[91mC\x1b[38;2;0;0;1mD").snapshot().rows[0]
        self.assertEqual([c.fg for c in row[:4]], [196, RGB(255, 0, 0), 9, RGB(0, 0, 1)])

    def test_bad_sequences_are_ignored(self) -> None:
        """A sequence stock pyte raises on (too many parameters, a bad selector) is ignored."""
        s = screen("a\x1b[1;2;3Hb\x1b[5Kc\x1b[?1mx")
        self.assertEqual(s.lines()[0], "abcx")

    def test_sequence_split_across_feeds(self) -> None:
        """A CSI sequence cut by the end of a feed takes effect once it is complete."""
        s = TerminalScreen(10, 3)
        for piece in ["a\x1b", "[", "3", "8:2::9:8:7", "mb"]:
            s.feed(piece)
        row = s.snapshot().rows[0]
        self.assertEqual((s.lines()[0], row[1].fg), ("ab", RGB(9, 8, 7)))

    def test_cut_sequence_waits_for_its_end(self) -> None:
        """A CSI sequence cut by the end of a feed leaves the screen part way through a sequence
        and changes nothing, even when the screen is read in between, until its end comes; REP
        cut from the text before it still repeats that text's last character."""
        s = TerminalScreen(10, 3)
        s.feed("ab\x1b[2")
        self.assertTrue(s.mid_sequence())
        self.assertEqual((s.lines(), s.cursor), (["ab", "", ""], (2, 0)))
        s.feed(";4Hc")
        self.assertFalse(s.mid_sequence())
        self.assertEqual(s.lines(), ["ab", "   c", ""])
        s.feed("x\x1b")
        s.feed("[")
        s.feed("3b")
        self.assertEqual(s.lines()[1], "   cxxxx")


class ScrollbackTests(SynchronousTestCase):
    """Frozen lines give back the cells they were made of."""

    def test_cells_round_trip(self) -> None:
        """Runs of styles, wide characters and short lines come back cell for cell."""
        s = screen("\x1b[1mab\x1b[0m中\x1b[44mc e\u0301\x1b[0m\r\nxy\r\n\r\n\r\n", cols=10, rows=2)
        history = s.history_rows()
        self.assertEqual("".join(c.char for c in history[0]), "ab中c é   ")
        self.assertEqual([c.attrs for c in history[0][:2]], [BOLD, BOLD])
        self.assertEqual(history[0][3].bg, 4)
        self.assertEqual(history[1][:3], (Cell("x"), Cell("y"), BLANK))
        self.assertEqual(len(history[1]), 10)

    def test_bounded(self) -> None:
        """Only the newest ``size`` lines are kept."""
        back = Scrollback(3)
        for _ in range(5):
            back.push({}, ("x",))
        self.assertEqual(len(back), 3)

    @given(
        st.dictionaries(
            st.integers(min_value=0, max_value=199),
            st.tuples(
                st.sampled_from(["y", " ", "", "e\u0301", "中"]),
                st.sampled_from([None, "red"]),
                st.booleans(),
            ),
            max_size=12,
        ),
        st.tuples(st.sampled_from([" ", "."]), st.sampled_from([None, "red"]), st.booleans()),
    )
    def test_sparse_line_as_dense(self, line: dict[int, tuple[Any, ...]], default: tuple[Any, ...]) -> None:
        """A line with most cells missing is kept as the same line with every
        missing cell written out as the default."""
        sparse, dense = Scrollback(5), Scrollback(5)
        sparse.push(line, default)
        width = max(line) + 1 if line else 0
        dense.push({x: line.get(x, default) for x in range(width)}, default)
        self.assertEqual(list(sparse.lines), list(dense.lines))

    def test_staircase_lines(self) -> None:
        """LF-only output (a staircase, each line one cell wide) scrolls into the
        scrollback cell for cell."""
        s = screen("y\n" * 30 + "\r\n", cols=10, rows=3)
        history = s.history_rows()
        self.assertEqual(
            ["".join(c.char for c in row).rstrip() for row in history[:11]][-3:],
            [" " * 8 + "y", " " * 9 + "y", " " * 9 + "y"],
        )

    def test_erase_scrollback(self) -> None:
        """ED 3 and a reset forget the scrollback."""
        for clear in ["\x1b[3J", "\x1bc"]:
            s = screen("1\r\n2\r\n3\r\n4\r\n" + clear)
            self.assertEqual((s.scrollback_lines, s.history_rows()), (0, []))
