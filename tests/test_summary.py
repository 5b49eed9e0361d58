"""Tests for tests.support.summary: the closing line CI reads."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.support.summary import summarize


class SummaryTests(SynchronousTestCase):
    """trial's closing line becomes passed/failed/skipped counts."""

    def test_passed(self) -> None:
        """PASSED with successes and skips counts them."""
        self.assertEqual(summarize("...\nRan 5 tests\n\nPASSED (skips=1, successes=4)\n"), (4, 0, 1, True))

    def test_failed(self) -> None:
        """Failures, errors and unexpected successes all count as failed."""
        out = "FAILED (failures=2, errors=1, unexpectedSuccesses=1, successes=9)"
        self.assertEqual(summarize(out), (9, 4, 0, False))

    def test_nothing_ran(self) -> None:
        """Output without a closing line is a failure, so an empty run never looks green."""
        self.assertEqual(summarize("Traceback ..."), (0, 1, 0, False))
        self.assertFalse(summarize("PASSED (skips=3)")[3])
