"""Tests for vibetwist.screenfeed: the screen reads the recording back in slices."""

from __future__ import annotations

from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from vibetwist.asciicast import encode_event
from vibetwist.recording import RecordingReader
from vibetwist.screen import TerminalScreen
from vibetwist.screenfeed import SLICE, ScreenFeed, ScreenScheduler


class SteppedReactor:
    """Runs each scheduled call only when the test says so."""

    def __init__(self) -> None:
        self.calls: list[Callable[[], object]] = []

    def callLater(self, delay: float, f: Callable[[], object]) -> None:
        self.calls.append(f)

    def step(self) -> None:
        self.calls.pop(0)()

    def run(self) -> None:
        while self.calls:
            self.step()


class FeedTests(SynchronousTestCase):
    """Where the screen is in the recording, and who hears that it changed."""

    def setUp(self) -> None:
        self.reactor = SteppedReactor()
        self.path = self.mktemp()
        self.header = b'{"version":2,"width":20,"height":3}\n'
        with open(self.path, "wb") as f:
            f.write(self.header)
        # A budget of 0: each slice of screen work gets a reactor turn of its own.
        self.screens = ScreenScheduler(self.reactor, budget=0, busy_delay=0)
        self.screen = TerminalScreen(20, 3)
        self.feed = ScreenFeed(self.screen, RecordingReader(self.path, len(self.header)), self.screens)
        self.addCleanup(self.feed.stop)
        self.end = len(self.header)

    def record(self, text: str) -> int:
        line = encode_event(0.5, "o", text)
        start = self.end
        with open(self.path, "ab") as f:
            f.write(line)
        self.end += len(line)
        self.feed.recorded(self.end)
        return start

    def test_position_follows_whole_events(self) -> None:
        """position is the offset just past the last event the screen took in whole."""
        self.assertEqual(self.feed.position, len(self.header))
        self.record("one")
        self.record("two")
        self.reactor.run()
        self.assertEqual(self.feed.position, self.end)
        self.assertEqual(self.screen.lines()[0], "onetwo")

    def test_at_boundary_waits_for_the_event_to_finish(self) -> None:
        """Part way through a long event, a boundary callback waits until the event is done."""
        start = self.record("a" * (SLICE * 3))
        self.reactor.step()  # the first slice
        self.reactor.step()
        seen: list[tuple[int, str]] = []
        self.feed.at_boundary(lambda: seen.append((self.feed.position, self.screen.text())))
        self.assertEqual(seen, [])
        self.reactor.run()
        self.assertEqual(len(seen), 1)
        self.assertEqual(seen[0][0], self.end)
        self.assertNotEqual(start, self.end)

    def test_at_boundary_at_once_when_idle(self) -> None:
        seen: list[int] = []
        self.feed.at_boundary(lambda: seen.append(self.feed.position))
        self.assertEqual(seen, [len(self.header)])

    def test_watchers_hear_each_event(self) -> None:
        heard: list[int] = []
        self.feed.watchers.add(lambda: heard.append(self.feed.position))
        self.record("x")
        self.record("y")
        self.reactor.run()
        self.assertEqual(heard[-1], self.end)
        self.assertEqual(len(heard), 2)
