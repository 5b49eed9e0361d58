"""Tests for vibetwist.sessions.screenfeed: the screen reads the recording back in slices."""

from __future__ import annotations

import json
from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from vibetwist.model.asciicast import encode_event
from vibetwist.screen.terminal import TerminalScreen
from vibetwist.sessions.recording import RecordingReader
from vibetwist.sessions.screenfeed import SKIM_BACKLOG, SLICE, ScreenFeed, ScreenScheduler


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


class RecordingCase(SynchronousTestCase):
    """A recording file, a screen and the feed between them."""

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

    def flood(self, lines: int) -> str:
        text = "".join(f"\x1b[3{i % 8}mline {i}\x1b[m {'x' * (i % 50)}\r\n" for i in range(lines))
        with open(self.path, "ab") as f:
            for start in range(0, len(text), 4000):
                line = encode_event(0.1, "o", text[start : start + 4000])
                f.write(line)
                self.end += len(line)
        return text


class FeedTests(RecordingCase):
    """Where the screen is in the recording, and who hears that it changed."""

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
        self.assertEqual(self.screens.urgent, 1, "someone waits: the screen works without pauses")
        self.reactor.run()
        self.assertEqual(self.screens.urgent, 0)
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


class SkimTests(RecordingCase):
    """A screen far behind a flood thins it, and ends as if it had been fed everything."""

    def test_flood_ends_on_the_same_screen(self) -> None:
        self.screen = TerminalScreen(20, 3, scrollback=100)
        from vibetwist.sessions.recording import RecordingReader

        self.feed = ScreenFeed(self.screen, RecordingReader(self.path, len(self.header)), self.screens)
        fed: list[int] = []
        feed = self.screen.feed
        self.patch(self.screen, "feed", lambda text: (fed.append(len(text)), feed(text)))
        text = self.flood(60_000)
        self.assertGreater(self.end, 2 * SKIM_BACKLOG)
        self.feed.recorded(self.end)
        self.reactor.run()
        expected = TerminalScreen(20, 3, scrollback=100)
        expected.feed(text)
        self.assertEqual(self.screen.snapshot(), expected.snapshot())
        self.assertEqual(self.screen.history_rows(), expected.history_rows())
        self.assertEqual(self.feed.position, self.end)
        self.assertTrue(self.feed.caught_up)
        self.assertLess(sum(fed), len(text) // 4, "most of the flood was skimmed off")

    def test_boundary_while_skimming_comes_soon_and_is_exact(self) -> None:
        """A replay asked for during a skimmed flood gets a screen that matches its offset."""
        text = self.flood(60_000)
        self.feed.recorded(self.end)
        for _ in range(5):
            self.reactor.step()
        seen: list[tuple[int, object]] = []
        self.feed.at_boundary(lambda: seen.append((self.feed.position, self.screen.snapshot())))
        steps = 0
        while not seen:
            self.reactor.step()
            steps += 1
        self.assertLess(steps, 1000)
        position, shown = seen[0]
        # What the recording holds up to that position, fed whole, shows the same.
        expected = TerminalScreen(20, 3)
        reader = RecordingReader(self.path, len(self.header))
        for _, line in reader.read_lines(position, 1 << 30):
            expected.feed(json.loads(line)[2])
        reader.close()
        self.assertEqual(shown, expected.snapshot())
        self.assertLess(position, self.end)
        self.assertTrue(text)


class RestTests(RecordingCase):
    """The screen of an ended program catches up on a long backlog only when asked."""

    def test_long_backlog_waits_until_asked(self) -> None:
        self.feed.rest()
        self.flood(60_000)
        self.feed.recorded(self.end)
        self.reactor.run()
        self.assertLess(self.feed.position, self.end)
        done = self.feed.when_caught_up()
        self.reactor.run()
        self.successResultOf(done)
        self.assertEqual(self.feed.position, self.end)

    def test_short_backlog_taken_at_once(self) -> None:
        self.feed.rest()
        self.record("bye")
        self.reactor.run()
        self.assertEqual(self.screen.lines()[0], "bye")

    def test_a_boundary_or_a_watcher_wakes_it(self) -> None:
        self.feed.rest()
        self.flood(60_000)
        self.feed.recorded(self.end)
        self.reactor.run()
        seen: list[int] = []
        self.feed.at_boundary(lambda: seen.append(self.feed.position))
        self.assertEqual(len(seen), 1)  # at once: the screen is between events
        self.feed.watch(lambda: None)
        self.reactor.run()
        self.assertEqual(self.feed.position, self.end)
