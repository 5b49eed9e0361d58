"""Tests for vibetwist.screen.skim: output dropped while skimming could not have changed the screen."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support.streams import escapes, printed, scrolling_lines
from vibetwist.screen.skim import Skim
from vibetwist.screen.terminal import TerminalScreen


def _state(screen: TerminalScreen) -> tuple[object, ...]:
    return (screen.snapshot(), screen.history_rows(), screen.private_modes())


class SkimTests(SynchronousTestCase):
    """A skimmed screen ends as a fed one."""

    @given(
        st.lists(st.one_of(printed, escapes), max_size=8).map("".join),
        st.lists(
            st.tuples(
                st.one_of(scrolling_lines, st.lists(st.one_of(printed, escapes), max_size=4).map("".join)),
                st.integers(0, 40),
            ),
            max_size=10,
        ),
        st.integers(1, 12),
        st.integers(1, 4),
    )
    def test_skimmed_same_as_fed(
        self, before: str, chunks: list[tuple[str, int]], cols: int, rows: int
    ) -> None:
        """Adding output in any pieces, feeding it in any slices between, ends on the same screen."""
        fed = TerminalScreen(cols, rows, scrollback=2)
        skimmed = TerminalScreen(cols, rows, scrollback=2)
        fed.feed(before)
        skimmed.feed(before)
        skim = Skim(skimmed)
        for text, limit in chunks:
            fed.feed(text)
            skim.add(text[:limit])  # cut anywhere, escape sequences too
            skim.add(text[limit:])
            if limit % 3:
                skim.feed(limit)
        while not skim.feed(7):
            pass
        self.assertEqual(_state(skimmed), _state(fed))

    def test_flood_is_thinned(self) -> None:
        """Of a long scrolling flood, about twice what the screen and scrollback hold is kept."""
        screen = TerminalScreen(40, 10, scrollback=100)
        skim = Skim(screen)
        line = "\x1b[32mok\x1b[0m " + "x" * 30 + "\r\n"
        for _ in range(1000):
            skim.add(line * 10)
        self.assertLess(len(skim), 2 * 2 * 120 * len(line))
        while not skim.feed(512):
            pass
        fed = TerminalScreen(40, 10, scrollback=100)
        fed.feed(line * 10_000)
        self.assertEqual(_state(screen), _state(fed))

    def test_other_output_is_kept(self) -> None:
        """Output with cursor moves is kept whole until the screen takes it."""
        skim = Skim(TerminalScreen(10, 3, scrollback=2))
        text = "\x1b[Hx\r\n" * 100
        skim.add(text)
        self.assertEqual((len(skim), skim.blocked), (len(text), True))


class CutOffSequenceTests(SynchronousTestCase):
    """A screen last fed part of an escape sequence still lets a flood be skimmed."""

    def test_drops_after_a_cut_off_sequence(self) -> None:
        lines = "".join(f"\x1b[01;34mline {i}\x1b[0m\r\n" for i in range(3000))
        fed = TerminalScreen(20, 3, scrollback=10)
        skimmed = TerminalScreen(20, 3, scrollback=10)
        for screen in (fed, skimmed):
            screen.feed("start \x1b[01;3")  # cut off in the middle of a colour
        self.assertTrue(skimmed.mid_sequence())
        fed.feed("2m" + lines)
        skim = Skim(skimmed)
        held = []
        for start in range(0, len(lines), 500):
            skim.add(("2m" if start == 0 else "") + lines[start : start + 500])
            held.append(len(skim))
        self.assertLess(max(held), len(lines) // 4, "the flood was thinned as it came")
        while not skim.feed(1000):
            pass
        self.assertEqual(_state(skimmed), _state(fed))
        self.assertFalse(skimmed.mid_sequence())
