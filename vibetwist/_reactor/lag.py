# -*- test-case-name: tests.test_lag -*-
"""Measures how late the reactor runs a timer: each tick's lateness, and the longest since
the last reset.

The daemon always runs one: every ``COARSE_INTERVAL`` seconds for the metrics'
histogram, or every millisecond with ``--measure-lag`` (the benchmarks' figure). A
tick is late by as much as the reactor was busy when it was due, so a coarse timer
still catches every stall longer than its interval and samples shorter ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.task import LoopingCall

#: The interval of the always-on monitor. Each wake-up of an idle daemon costs about
#: 0.2 ms here: four a second add under 0.1% of a core (bench/bench_idle.py); a 1 ms
#: timer costs 6-8% of one.
COARSE_INTERVAL = 0.25
#: The interval of --measure-lag.
FINE_INTERVAL = 0.001


class LagMonitor:
    """Runs a short timer and records how late each tick was."""

    def __init__(
        self,
        reactor: Any,
        interval: float = FINE_INTERVAL,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self._reactor = reactor
        self.interval = interval
        #: Called with each tick's lateness in seconds (the metrics' histogram).
        self.observe = observe
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._last: float | None = None
        self.max_lag = 0.0
        self.samples = 0

    def start(self) -> None:
        self._last = self._reactor.seconds()
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        now = self._reactor.seconds()
        if self._last is not None:
            lag = max(0.0, now - self._last - self.interval)
            if lag > self.max_lag:
                self.max_lag = lag
            self.samples += 1
            if self.observe is not None:
                self.observe(lag)
        self._last = now

    def reset(self) -> None:
        self.max_lag = 0.0
        self.samples = 0
