# -*- test-case-name: tests.test_screenfeed -*-
"""Cooperators that spend a bounded time per reactor turn, so long work never holds the reactor."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet.task import Cooperator


def deadline_factory(budget: float) -> Callable[[], Callable[[], bool]]:
    """A Cooperator termination predicate factory: each tick may run for ``budget`` seconds."""

    def start() -> Callable[[], bool]:
        deadline = time.perf_counter() + budget
        return lambda: time.perf_counter() >= deadline

    return start


def budget_cooperator(reactor: Any, budget: float) -> Cooperator:
    """A Cooperator that spends at most about ``budget`` seconds per reactor turn."""
    return Cooperator(
        terminationPredicateFactory=deadline_factory(budget),
        scheduler=lambda work: reactor.callLater(0, work),
    )
