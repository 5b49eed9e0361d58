# -*- test-case-name: tests.test_fairness -*-
"""Bounds how much I/O one reactor turn handles, so timers and PTYs are never kept waiting.

Twisted's epoll reactor asks the kernel for every ready descriptor and handles
them all in one turn. When fifty clients send requests at the same instant,
that turn handles fifty requests back to back and every session's output
waits behind them. Asking for at most ``cap`` ready descriptors per turn
spreads such a burst over several turns; epoll is level-triggered here, so
what is not taken in one turn comes back in the next, and the kernel hands
out ready descriptors round-robin, so none is starved.
"""

from __future__ import annotations

import select
from typing import Any

from twisted.logger import Logger

from vibetwist._reactor.internals import reactor_poller, set_reactor_poller

log = Logger()

#: Ready descriptors handled per reactor turn.
DEFAULT_CAP = 8


class CappedPoller:
    """An epoll object whose poll() returns at most ``cap`` events."""

    def __init__(self, poller: Any, cap: int) -> None:
        self._poller = poller
        self.cap = cap

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        if maxevents <= 0 or maxevents > self.cap:
            maxevents = self.cap
        return self._poller.poll(timeout, maxevents)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._poller, name)


def cap_events_per_turn(reactor: Any, cap: int = DEFAULT_CAP) -> bool:
    """Make an epoll reactor handle at most cap ready descriptors per turn; False if it is
    not an epoll reactor (then nothing changes)."""
    poller = reactor_poller(reactor)
    epoll = getattr(select, "epoll", None)
    if epoll is None or not isinstance(poller, epoll | CappedPoller):
        log.info("reactor {reactor} is not epoll: I/O per turn is not capped", reactor=type(reactor))
        return False
    if isinstance(poller, CappedPoller):
        poller.cap = cap
    else:
        set_reactor_poller(reactor, CappedPoller(poller, cap))
    return True
