# -*- test-case-name: tests.test_lag -*-
"""Measures how late the reactor runs a timer: the longest stall since the last reset."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import LoopingCall


class LagMonitor:
    """Runs a short timer and records how late each tick was."""

    def __init__(self, reactor: Any, interval: float = 0.001) -> None:
        self._reactor = reactor
        self._interval = interval
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._last: float | None = None
        self.max_lag = 0.0
        self.samples = 0

    def start(self) -> None:
        self._last = self._reactor.seconds()
        self._loop.start(self._interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        now = self._reactor.seconds()
        if self._last is not None:
            lag = now - self._last - self._interval
            if lag > self.max_lag:
                self.max_lag = lag
            self.samples += 1
        self._last = now

    def reset(self) -> None:
        self.max_lag = 0.0
        self.samples = 0
