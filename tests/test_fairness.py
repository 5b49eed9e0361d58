"""Tests for vibetwist._reactor.fairness: at most N ready descriptors per reactor turn."""

from __future__ import annotations

import os
import select

from twisted.internet.selectreactor import SelectReactor
from twisted.trial.unittest import SynchronousTestCase

from vibetwist._reactor.fairness import CappedPoller, cap_events_per_turn


class CappedPollerTests(SynchronousTestCase):
    """A capped epoll returns at most cap events, and the rest on later polls."""

    def test_cap(self) -> None:
        """With 20 readable pipes and a cap of 8, polls return 8, 8, then the others come back."""
        poller = select.epoll()
        self.addCleanup(poller.close)
        fds = []
        for _ in range(20):
            r, w = os.pipe()
            os.write(w, b"x")
            fds += [r, w]
            poller.register(r, select.EPOLLIN)
        self.addCleanup(lambda: [os.close(fd) for fd in fds])
        capped = CappedPoller(poller, 8)
        seen: set[int] = set()
        for _ in range(3):
            events = capped.poll(0, 20)
            self.assertLessEqual(len(events), 8)
            seen.update(fd for fd, _ in events)
        self.assertEqual(len(seen), 20)  # level-triggered and round-robin: nobody starves

    def test_passes_other_calls(self) -> None:
        """register, unregister and fileno reach the real epoll object."""
        poller = select.epoll()
        self.addCleanup(poller.close)
        capped = CappedPoller(poller, 2)
        self.assertEqual(capped.fileno(), poller.fileno())

    def test_only_epoll(self) -> None:
        """A reactor that is not epoll is left alone."""
        reactor = SelectReactor()
        self.assertFalse(cap_events_per_turn(reactor))
