"""Tests for vibetwist._reactor.lag: the longest reactor stall since the last reset."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from vibetwist._reactor.lag import COARSE_INTERVAL, FINE_INTERVAL, LagMonitor


class LagMonitorTests(SynchronousTestCase):
    """The lag monitor's ticks, their lateness, and the longest stall."""

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

    def test_observes_every_tick(self) -> None:
        """Each tick's lateness (never below 0) goes to observe, the metrics' histogram."""
        clock = Clock()
        seen: list[float] = []
        lag = LagMonitor(clock, interval=0.1, observe=seen.append)
        lag.start()
        clock.advance(0.1)
        clock.advance(0.35)  # a stall: the tick due at 0.2 runs at 0.45
        clock.advance(0.06)  # back on the 0.1 s grid (0.5): on time
        self.assertEqual(len(seen), 3)
        self.assertAlmostEqual(seen[0], 0.0)
        self.assertAlmostEqual(seen[1], 0.25)
        self.assertAlmostEqual(seen[2], 0.0)
        self.assertAlmostEqual(lag.max_lag, 0.25)
        lag.stop()

    def test_intervals(self) -> None:
        """The always-on monitor ticks four times a second; --measure-lag's every millisecond."""
        self.assertEqual((COARSE_INTERVAL, FINE_INTERVAL), (0.25, 0.001))
        self.assertEqual(LagMonitor(Clock()).interval, FINE_INTERVAL)
