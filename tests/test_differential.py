"""The screen model against a terminal nobody here wrote: xterm.js's headless build.

Hypothesis writes streams from a grammar of what programs really send
(:func:`tests.support.streams.program_output`), cuts them into random chunks
for the model, and hands whole batches of them to one Node process running
xterm.js (:class:`tests.support.xterm.Xterm`); the visible cells (characters,
colours, attributes), the cursor, whether the alternate screen shows, the
main screen under it and the scrollback must be the same.  The differences
that remain on purpose are in docs/screen.md, and the grammar leaves them out.

xterm.js restores a saved cursor to the row it was on counted from the top of
the scrollback, so the cursor moves when lines scrolled into the scrollback
between DECSC and DECRC (xterm and tmux restore it to the same screen row).
Streams that save the cursor are therefore compared with xterm.js keeping no
scrollback, and without changes of size.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support import streams
from tests.support.xterm import Step, Xterm, XtermError, feed_model, model_state

#: Streams per call to Node, and calls per test: each test compares BATCH * EXAMPLES streams.
BATCH = 16
EXAMPLES = 30
SCROLLBACK = 40


def _steps(text: str, cuts: list[int], resizes: list[int]) -> list[Step]:
    """``text`` as UTF-8 cut at ``cuts``, with a change to each of ``resizes`` rows after a cut
    that an ASCII character follows (xterm.js joins a character of no width to none before a resize)."""
    data = text.encode("utf-8")
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    steps: list[Step] = []
    todo = list(resizes)
    for a, b in zip(points, points[1:]):
        steps.append(data[a:b])
        if todo and b < len(data) and data[b] < 0x80:
            steps.append((-1, todo.pop()))
    return steps


def _stream(saves: bool) -> st.SearchStrategy[tuple[int, int, list[Step]]]:
    cuts = st.lists(st.integers(0, 10_000), max_size=6)
    resizes = st.just([]) if saves else st.lists(st.integers(1, 10), max_size=2)
    return st.builds(
        lambda cols, rows, text, cut, sizes: (
            cols,
            rows,
            [(cols, step[1]) if isinstance(step, tuple) else step for step in _steps(text, cut, sizes)],
        ),
        st.integers(2, 20),
        # Without a scrollback, xterm.js reuses the line that scrolls off a one-row screen as the
        # new one, and writes a wide character's wrap into it: two rows at least.
        st.integers(2 if saves else 1, 8),
        streams.program_output(saves),
        cuts,
        resizes,
    )


class XtermDifferentialTests(SynchronousTestCase):
    """For the output programs send, the screen shows what xterm.js shows."""

    def setUp(self) -> None:
        self.xterm = Xterm()
        self.addCleanup(self.xterm.close)

    def assertSameAsXterm(self, batch: list[tuple[int, int, list[Step]]], scrollback: int) -> None:
        """Each stream of ``batch`` gives xterm.js's screen (but for streams xterm.js throws on,
        which must be rare)."""
        references = self.xterm.screens(batch, scrollback=scrollback)
        failed = [ref for ref in references if isinstance(ref, XtermError)]
        self.assertLessEqual(len(failed), len(batch) // 4, failed)
        for (cols, rows, steps), reference in zip(batch, references):
            if isinstance(reference, XtermError):
                continue
            model = model_state(feed_model(cols, rows, steps, scrollback=SCROLLBACK))
            if not scrollback:
                reference = {**reference, "history": None}
                model["history"] = None
            self.assertEqual(model, reference, (cols, rows, steps))

    @settings(max_examples=EXAMPLES)
    @given(st.lists(_stream(saves=False), min_size=BATCH, max_size=BATCH))
    def test_same_as_xterm(self, batch: list[Any]) -> None:
        """Cells, cursor, alternate screen, the main screen under it and the scrollback are
        xterm.js's, for output in any chunks and changes of the number of rows."""
        self.assertSameAsXterm(batch, SCROLLBACK)

    @settings(max_examples=EXAMPLES)
    @given(st.lists(_stream(saves=True), min_size=BATCH, max_size=BATCH))
    def test_same_as_xterm_saving_the_cursor(self, batch: list[Any]) -> None:
        """With the cursor saved and restored too (DECSC, SCOSC, ?1049), cells, cursor and
        screens are xterm.js's."""
        self.assertSameAsXterm(batch, 0)
