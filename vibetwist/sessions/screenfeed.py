# -*- test-case-name: tests.test_screenfeed -*-
"""Keeps a session's screen up to date with its output, in bounded slices.

The screen model is far slower than a PTY, so it never sits on the output
path: output is recorded and streamed at once, and the screen reads it back
from the recording, a few milliseconds of work at a time, cooperating with
every other session's screen so the reactor keeps serving.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Cooperator
from twisted.logger import Logger

from vibetwist._reactor.cooperate import deadline_factory
from vibetwist.errors import FormatError
from vibetwist.model.asciicast import Event, parse_dimensions, parse_line
from vibetwist.screen.skim import Skim
from vibetwist.screen.terminal import TerminalScreen
from vibetwist.sessions.recording import RecordingReader

#: How many characters the screen is given before the feed yields.
SLICE = 256
#: How much of the recording is read at once.
READ_SIZE = 16384
#: Output that could not be recorded is kept for the screen up to this many characters.
MEMORY_LIMIT = 1 << 20
#: A screen this far behind the recording skims it (see vibetwist.screen.skim).
SKIM_BACKLOG = 1 << 20
#: The most a skim holds before the screen takes it: what a drop reads is bounded.
SKIM_HOLD = 2 << 20
#: How much of the recording is read at once while skimming.
SKIM_READ_SIZE = 1 << 16
#: How many skimmed characters the screen is given before the feed yields.
SKIM_SLICE = 1024


class ScreenScheduler:
    """Schedules screen work so it never crowds out I/O.

    Each reactor turn reads each PTY once. If every turn also spent its whole
    budget on the screen, output would flow at the screen's speed. So while
    output is arriving the screen works only every ``busy_delay`` seconds,
    leaving the turns between to I/O; when output stops it runs flat out.
    """

    def __init__(self, reactor: Any, budget: float = 0.002, busy_delay: float = 0.010) -> None:
        self._reactor = reactor
        self.busy_delay = busy_delay
        self._output_seen = False
        #: How many screens someone waits on (a viewer's replay): while any, no pause.
        self.urgent = 0
        self.cooperator = Cooperator(
            terminationPredicateFactory=deadline_factory(budget), scheduler=self.schedule
        )

    def output(self) -> None:
        """Output arrived: the next slice of screen work waits its turn."""
        self._output_seen = True

    def schedule(self, work: Callable[[], None]) -> Any:
        delay = self.busy_delay if self._output_seen and not self.urgent else 0
        self._output_seen = False
        return self._reactor.callLater(delay, work)


class ScreenFeed:
    """Feeds a TerminalScreen from a recording (and, past its end, from a bounded memory)."""

    log = Logger()

    def __init__(
        self,
        screen: TerminalScreen,
        reader: RecordingReader,
        screens: ScreenScheduler,
    ) -> None:
        self.screen = screen
        self._reader = reader
        self._recorded_end = reader.offset
        self._memory: deque[Event] = deque()
        self._memory_chars = 0
        self._memory_in = 0
        self._memory_done = 0
        self._screens = screens
        self._running = False
        self._waiters: list[tuple[int, int, Deferred[None]]] = []
        #: The recording offset just past the last line the screen has taken in whole.
        self.position = reader.offset
        self._mid_event = False
        self._skim = Skim(screen)
        #: The offset just past the last line handed to the skim.
        self._skim_end = reader.offset
        self._at_boundary: list[Callable[[], None]] = []
        #: Called (with no arguments) each time the screen has taken in an event.
        self.watchers: set[Callable[[], None]] = set()
        self._resting = False

    @property
    def caught_up(self) -> bool:
        return self.position >= self._recorded_end and not self._memory

    def recorded(self, end: int) -> None:
        """The recording now holds output up to offset ``end``."""
        self._recorded_end = end
        self._screens.output()
        self._kick()

    def unrecorded(self, event: Event) -> None:
        """Output that is not in the recording (it is full or failed)."""
        self._memory.append(event)
        self._memory_in += 1
        self._memory_chars += len(event.data)
        self._screens.output()
        while self._memory_chars > MEMORY_LIMIT and len(self._memory) > 1:
            dropped = self._memory.popleft()
            self._memory_chars -= len(dropped.data)
            self._memory_done += 1
        self._kick()

    def when_caught_up(self) -> Deferred[None]:
        """A Deferred that fires once everything handed in so far is on the screen."""
        d: Deferred[None] = Deferred()
        if self.caught_up:
            d.callback(None)
        else:
            self._waiters.append((self._recorded_end, self._memory_in, d))
            self._kick()
        return d

    def watch(self, watcher: Callable[[], None]) -> None:
        """Call ``watcher`` each time the screen has taken in an event (and keep it current)."""
        self.watchers.add(watcher)
        self._kick()

    def unwatch(self, watcher: Callable[[], None]) -> None:
        self.watchers.discard(watcher)

    def rest(self) -> None:
        """The program has ended: a long backlog is read only when someone asks for the screen.

        A screen far behind a program that flooded it and ended would
        otherwise spend seconds of the daemon's time on output nobody may
        look at, at the expense of sessions that are running.
        """
        self._resting = True

    def _wanted(self) -> bool:
        """Whether the screen must catch up now."""
        if not self._resting or self._waiters or self._at_boundary or self.watchers:
            return True
        return self._recorded_end - self.position <= SKIM_BACKLOG

    def at_boundary(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the screen shows exactly the recording up to ``position``.

        That is at once, unless the screen is part way through an event, in
        which case it is when the event is done.
        """
        if self._mid_event:
            if not self._at_boundary:
                self._screens.urgent += 1
            self._at_boundary.append(callback)
        else:
            callback()
        self._kick()

    def stop(self) -> None:
        """Release the recording; pending waiters fire with what is on the screen."""
        self._memory.clear()
        self._recorded_end = self._reader.offset
        self._reader.close()
        self._fire(force=True)
        self._applied(None)
        self.watchers.clear()

    def _kick(self) -> None:
        if not self._running and not self.caught_up and self._wanted():
            self._running = True
            self._screens.cooperator.cooperate(self._work())

    def _fire(self, force: bool = False) -> None:
        if not self._waiters:
            return
        keep = []
        for rec, mem, d in self._waiters:
            if force or (self.position >= rec and self._memory_done >= mem):
                d.callback(None)
            else:
                keep.append((rec, mem, d))
        self._waiters = keep

    def _work(self) -> Iterator[None]:
        try:
            while True:
                if not self._wanted() and not self._mid_event:
                    break  # resting: taken up again when someone asks
                if self._reader.offset < self._recorded_end:
                    yield from self._read_recording()
                elif len(self._skim):
                    yield from self._drain_skim()
                elif self._memory:
                    event = self._memory.popleft()
                    self._memory_chars -= len(event.data)
                    yield from self._apply(event)
                    self._memory_done += 1
                    self._applied(None)
                else:
                    break
                self._fire()
        finally:
            self._running = False
            self._fire()

    def _skimming(self) -> bool:
        """Whether output should go to the skim rather than to the screen.

        When the screen is far behind, output is read as fast as it can be
        and thinned (what only scrolls past is dropped) until all of it is
        read; then what is left goes to the screen. Not while someone waits
        for an event boundary (a viewer's replay): then the skim is drained
        and the screen fed as output comes, so a boundary always comes soon.
        """
        if self._at_boundary or self._skim.blocked or len(self._skim) > SKIM_HOLD:
            return False
        return len(self._skim) > 0 or self._recorded_end - self._reader.offset > SKIM_BACKLOG

    def _read_recording(self) -> Iterator[None]:
        skimming = self._skimming()
        start = self._reader.offset
        try:
            lines = self._reader.read_lines(self._recorded_end, SKIM_READ_SIZE if skimming else READ_SIZE)
        except OSError as e:
            self.log.error("screen cannot read the recording: {error}", error=e)
            lines = []
            self._reader.offset = self._recorded_end
        if not lines and self._reader.offset > start:
            # Nothing whole to read there (the disk cut the file short): nothing to show.
            yield from self._drain_skim()
            self._applied(self._reader.offset)
        for offset, line in lines:
            try:
                record = parse_line(line)
            except FormatError:
                record = None
            end = offset + len(line)
            if isinstance(record, Event) and record.kind == "o" and skimming and not self._at_boundary:
                # The screen is not touched until the skim is drained: it still shows
                # exactly the recording up to position, so a boundary need not wait.
                self._skim.add(record.data)
                self._skim_end = end
                continue
            yield from self._drain_skim()
            if isinstance(record, Event):
                yield from self._apply(record)
            self._applied(end)
        if len(self._skim) and (self._reader.offset >= self._recorded_end or not self._skimming()):
            # All read (or a boundary is wanted): what the skim kept goes to the screen.
            yield from self._drain_skim()
        elif skimming:
            yield None

    def _drain_skim(self) -> Iterator[None]:
        """Feed the screen everything the skim holds, a slice at a time."""
        if not len(self._skim):
            return
        while True:
            self._mid_event = True
            done = self._skim.feed(SKIM_SLICE)
            if done:
                break
            yield None
        self._applied(self._skim_end)
        yield None

    def _applied(self, position: int | None) -> None:
        """An event is on the screen in whole (position: just past its line, if recorded)."""
        self._mid_event = False
        if position is not None:
            self.position = position
        if self._at_boundary:
            waiting, self._at_boundary = self._at_boundary, []
            self._screens.urgent -= 1
            for callback in waiting:
                callback()
        for watcher in list(self.watchers):
            watcher()

    def _apply(self, event: Event) -> Iterator[None]:
        if event.kind == "o":
            text = event.data
            for start in range(0, len(text), SLICE):
                self._mid_event = True
                self.screen.feed(text[start : start + SLICE])
                yield None
        elif event.kind == "r":
            try:
                cols, rows = parse_dimensions(event.data)
            except FormatError:
                return
            self.screen.resize(cols, rows)
