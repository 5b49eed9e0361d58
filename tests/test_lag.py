"""Tests for vibetwist._reactor.lag: the longest reactor stall since the last reset."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from vibetwist._reactor.lag import LagMonitor


class LagMonitorTests(SynchronousTestCase):
    def test_records_the_longest_stall(self) -> None:
        """A tick that comes late by L seconds records L; later shorter stalls leave it."""
        clock = Clock()
        lag = LagMonitor(clock, interval=0.001)
        lag.start()
        clock.advance(0.001)
        self.assertEqual((lag.max_lag, lag.samples), (0.0, 1))
        clock.advance(0.051)  # the reactor was busy for 50 ms beyond the interval
        self.assertAlmostEqual(lag.max_lag, 0.050)
        clock.advance(0.011)
        self.assertAlmostEqual(lag.max_lag, 0.050)
        self.assertEqual(lag.samples, 3)
        lag.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_reset(self) -> None:
        """reset starts a new window with no stall and no samples."""
        clock = Clock()
        lag = LagMonitor(clock)
        lag.start()
        clock.advance(0.5)
        lag.reset()
        self.assertEqual((lag.max_lag, lag.samples), (0.0, 0))
        lag.stop()
