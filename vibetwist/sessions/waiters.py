# -*- test-case-name: tests.test_wait -*-
"""Waits on sessions: until a pattern shows, or the program goes quiet (``POST .../wait``).

A :class:`WaitService` holds every pending wait of the daemon, at most
:data:`MAX_PER_SESSION` per session and :data:`MAX_WAITERS` in all. The waits
of one session share a :class:`SessionWaiters`, which touches the session
only while it has waits:

- **output** and **idle** waits make it a listener of the session's lines; with
  none, output passes it by at no cost. Output is not searched line by line:
  new text gathers (at most :data:`MAX_PENDING` characters; past that the
  oldest is dropped unsearched) and is searched in rounds, each round taking at
  most :data:`SCAN_BUDGET` seconds of one reactor turn and the next starting
  no sooner than :data:`SCAN_PAUSE` times the last one's length later. Searching
  thus takes at most about a twentieth of the reactor however many waits there
  are, and a wait on a quiet session answers on the turn its output arrives.
- **screen** waits watch the screen feed, and look at the screen's text when
  it has taken in new output, at most every :data:`SCREEN_INTERVAL` seconds.

Each wait ends once: matched, timed out, the program ended (what it printed
last is searched first), the client gone, or the daemon restarting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.logger import Logger
from zope.interface import implementer

from vibetwist.errors import FormatError, RetryLater
from vibetwist.interfaces import ISession, IStreamListener
from vibetwist.model.asciicast import Event, parse_line
from vibetwist.model.info import Status
from vibetwist.model.wait import MAX_BACKLOG, OutputSearch, WaitRequest
from vibetwist.sessions.recording import RecordingReader

#: Pending waits one session may have.
MAX_PER_SESSION = 200
#: Pending waits the daemon holds in all.
MAX_WAITERS = 2000
#: Output gathered for the next search round, in characters, past which the oldest is dropped
#: (one search of it takes a few milliseconds at most, even for a slow pattern).
MAX_PENDING = 1 << 16
#: The longest a search round runs in one reactor turn before it goes on in the next.
SCAN_BUDGET = 0.005
#: A search round is followed by a pause this many times as long as the round before the
#: next one starts: searches take at most a twentieth of the reactor's time.
SCAN_PAUSE = 19
#: How often, at most, the screen's text is searched while it changes.
SCREEN_INTERVAL = 0.05
#: How long an ended session's screen may take to show its last output before it is searched.
SCREEN_CATCH_UP = 2.0

#: An answer: the HTTP status and the JSON body.
Answer = tuple[int, dict[str, Any]]


class TooManyWaiters(RetryLater):
    """The session, or the daemon, holds as many pending waits as it allows (HTTP 503)."""

    status = 503
    reason = b"Service Unavailable"


class Waiter:
    """One pending wait; ``answer`` fires once with its :data:`Answer`."""

    def __init__(
        self, request: WaitRequest, start: int, added: float, gone: Callable[[Waiter], None]
    ) -> None:
        self.request = request
        #: Output lines that start before this offset are not searched live (the backlog was).
        self.start = start
        self.added = added
        self.search = OutputSearch(request.pattern) if request.pattern is not None else None
        #: The timeout's call, and an idle wait's next look at the quiet.
        self.timeout_call: Any = None
        self.idle_call: Any = None
        self.answer: Deferred[Answer] = Deferred(lambda _: self._forget())
        self._gone = gone
        self._forgotten = False

    @property
    def done(self) -> bool:
        return self._forgotten

    def finish(self, code: int, body: dict[str, Any]) -> None:
        if self._forgotten:
            return
        self._forget()
        self.answer.callback((code, body))

    def _forget(self) -> None:
        # Answered, or the client went away (klein cancels the answer then).
        if self._forgotten:
            return
        self._forgotten = True
        for call in (self.timeout_call, self.idle_call):
            if call is not None and call.active():
                call.cancel()
        self.timeout_call = self.idle_call = None
        self._gone(self)


def matched(text: str, offset: int) -> Answer:
    return 200, {"matched": True, "text": text, "offset": offset}


@implementer(IStreamListener)
class SessionWaiters:
    """The pending waits of one session."""

    log = Logger()

    def __init__(
        self,
        session: ISession,
        reactor: Any,
        on_empty: Callable[[SessionWaiters], None],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.session = session
        self._reactor = reactor
        self._on_empty = on_empty
        self._clock = clock
        self.output: list[Waiter] = []
        self.screen: list[Waiter] = []
        self.idle: list[Waiter] = []
        self._listening = False
        self._watching = False
        #: Output not searched yet: (start offset, end offset, text) per line.
        self._pending: list[tuple[int, int, str]] = []
        self._pending_chars = 0
        #: Characters dropped unsearched because the searches fell behind.
        self.dropped = 0
        self._scan_call: Any = None
        self._scanning: Iterator[None] | None = None
        self._next_scan = 0.0
        #: How long the search round under way has taken so far, in seconds.
        self._round_time = 0.0
        self._screen_call: Any = None
        self._last_screen = float("-inf")
        self._last_output = reactor.seconds()
        self._ending = False
        self._screen_ending = False
        session.when_ended().addCallback(lambda _: self._ended())

    def __len__(self) -> int:
        return len(self.output) + len(self.screen) + len(self.idle)

    # -- adding and removing -----------------------------------------------------------

    def add(self, waiter: Waiter) -> None:
        request = waiter.request
        if request.idle is not None:
            self.idle.append(waiter)
            self._idle_timer(waiter, request.idle)
        elif request.on == "output":
            self.output.append(waiter)
            if self._backlog(waiter):
                return
        else:
            self.screen.append(waiter)
        self._update()
        if waiter.done:
            return
        if self.session.status is Status.EXITED:
            self._ended()
        elif request.on == "screen" and request.idle is None:
            self._screen_changed()

    def remove(self, waiter: Waiter) -> None:
        for waiters in (self.output, self.screen, self.idle):
            if waiter in waiters:
                waiters.remove(waiter)
        self._update()
        if not self:
            self._on_empty(self)

    def _update(self) -> None:
        """Listen to output, and watch the screen, only while some wait needs it."""
        listen = bool(self.output or self.idle)
        if listen != self._listening:
            self._listening = listen
            if listen:
                self._last_output = self._reactor.seconds()
                self.session.listen(self)
            else:
                self.session.unlisten(self)
                self._pending, self._pending_chars = [], 0
        watch = bool(self.screen)
        if watch != self._watching:
            self._watching = watch
            if watch:
                self.session.feed.watch(self._screen_changed)
            else:
                self.session.feed.unwatch(self._screen_changed)
                if self._screen_call is not None and self._screen_call.active():
                    self._screen_call.cancel()
                self._screen_call = None

    def interrupt(self, answer: Answer) -> None:
        for waiter in [*self.output, *self.screen, *self.idle]:
            waiter.finish(*answer)

    # -- output ------------------------------------------------------------------------

    def _backlog(self, waiter: Waiter) -> bool:
        """Search what was recorded after the wait's ``after``; True if the pattern is there."""
        after = waiter.request.after
        end = self.session.recorded_end
        if after is None or after >= end or waiter.search is None:
            return False
        reader = RecordingReader(self.session.recording_path, max(after, end - MAX_BACKLOG))
        pieces: list[tuple[int, str]] = []
        try:
            while reader.offset < end:
                lines = reader.read_lines(end, 1 << 18)
                if not lines:
                    break
                for offset, line in lines:
                    if offset < after:
                        continue
                    try:
                        record = parse_line(line)
                    except FormatError:
                        continue
                    if isinstance(record, Event) and record.kind == "o":
                        pieces.append((offset + len(line), record.data))
        except OSError as e:
            self.log.warn(
                "cannot read the recording of {id} to wait on: {error}", id=self.session.id, error=e
            )
        finally:
            reader.close()
        return self._search(waiter, pieces)

    def _search(self, waiter: Waiter, pieces: list[tuple[int, str]]) -> bool:
        """Hand the waiter's search these (end offset, text) pieces; True if it matched."""
        if not pieces or waiter.search is None:
            return False
        found = waiter.search.feed("".join(text for _, text in pieces))
        if found is None:
            return False
        text, end = found
        # The answer's offset is just past the line in which the match ends.
        seen = 0
        offset = pieces[-1][0]
        for piece_end, piece in pieces:
            seen += len(piece)
            if seen >= end:
                offset = piece_end
                break
        waiter.finish(*matched(text, offset))
        return True

    def event(self, line: bytes, record: Any) -> None:
        """A line of the session's recording (IStreamListener): gather output for the searches."""
        if not isinstance(record, Event) or record.kind != "o":
            return
        self._last_output = self._reactor.seconds()
        if not self.output:
            return
        end = self.session.recorded_end
        self._pending.append((end - len(line), end, record.data))
        self._pending_chars += len(record.data)
        while self._pending_chars > MAX_PENDING and len(self._pending) > 1:
            _, _, text = self._pending.pop(0)
            self._pending_chars -= len(text)
            self.dropped += len(text)
        if self._scan_call is None and self._scanning is None:
            delay = max(0.0, self._next_scan - self._clock())
            self._scan_call = self._reactor.callLater(delay, self._scan)

    def _scan(self) -> None:
        """Run (or go on with) a search round for SCAN_BUDGET seconds at most."""
        self._scan_call = None
        began = self._clock()
        if self._scanning is None:
            self._scanning = self._round()
            self._round_time = 0.0
        deadline = began + SCAN_BUDGET
        for _ in self._scanning:
            if self._clock() >= deadline:
                self._round_time += self._clock() - began
                self._scan_call = self._reactor.callLater(0, self._scan)
                return
        self._scanning = None
        now = self._clock()
        self._round_time += now - began
        self._next_scan = now + SCAN_PAUSE * self._round_time
        if self._ending:
            self._searched_last()
        elif self._pending and self.output:
            self._scan_call = self._reactor.callLater(max(0.0, self._next_scan - now), self._scan)

    def _round(self) -> Iterator[None]:
        """One search round: every output wait gets the output gathered so far."""
        pending, self._pending, self._pending_chars = self._pending, [], 0
        for waiter in list(self.output):
            if waiter.done:
                continue
            pieces = [(end, text) for start, end, text in pending if start >= waiter.start]
            self._search(waiter, pieces)
            yield None

    # -- the screen --------------------------------------------------------------------

    def _screen_changed(self) -> None:
        """The screen took in output: search it soon (at most every SCREEN_INTERVAL)."""
        if self._screen_call is not None or not self.screen:
            return
        delay = max(0.0, self._last_screen + SCREEN_INTERVAL - self._reactor.seconds())
        self._screen_call = self._reactor.callLater(delay, self._check_screen)

    def _check_screen(self) -> None:
        self._screen_call = None
        self._last_screen = self._reactor.seconds()
        feed = self.session.feed
        text: str | None = None
        for waiter in list(self.screen):
            after = waiter.request.after
            if waiter.done or (after is not None and feed.position < after):
                continue
            if text is None:
                text = self.session.screen.text()
            pattern = waiter.request.pattern
            match = pattern.search(text) if pattern is not None else None
            if match is not None:
                waiter.finish(*matched(match.group(0), feed.position))

    # -- quiet -------------------------------------------------------------------------

    def _idle_timer(self, waiter: Waiter, delay: float) -> None:
        waiter.idle_call = self._reactor.callLater(delay, self._idle_check, waiter)

    def _idle_check(self, waiter: Waiter) -> None:
        idle = waiter.request.idle or 0.0
        now = self._reactor.seconds()
        since = max(self._last_output, waiter.added)
        waiter.idle_call = None
        if now - since >= idle:
            waiter.finish(
                200, {"matched": True, "text": "", "offset": self.session.recorded_end, "idle": idle}
            )
        else:
            self._idle_timer(waiter, since + idle - now)

    # -- the end -----------------------------------------------------------------------

    def _ended(self) -> None:
        """The program ended: search what it printed last, then answer every wait."""
        if not self:
            self._on_empty(self)  # nothing to answer: the service forgets this session
            return
        if self._ending:
            return  # _searched_last answers the waits added meanwhile too
        self._ending = True
        if self._scan_call is not None and self._scan_call.active():
            self._scan_call.cancel()
        self._scan_call = None
        if self._scanning is not None or self._pending:
            self._scan()  # ends in _searched_last, in this turn or a later one
        else:
            self._searched_last()

    def _searched_last(self) -> None:
        """Every output line is searched: what has not matched answers exited."""
        if self._pending:
            self._scan_call = self._reactor.callLater(0, self._scan)
            return
        self._ending = False
        answer = self._exited()
        for waiter in [*self.output, *self.idle]:
            waiter.finish(*answer)
        if self.screen and not self._screen_ending:
            self._screen_ending = True
            d = self.session.feed.when_caught_up().addTimeout(SCREEN_CATCH_UP, self._reactor)
            d.addErrback(lambda f: f.trap(TimeoutError, CancelledError))
            d.addCallback(lambda _: self._screen_ended())

    def _screen_ended(self) -> None:
        self._screen_ending = False
        self._check_screen()
        answer = self._exited()
        for waiter in list(self.screen):
            waiter.finish(*answer)

    def _exited(self) -> Answer:
        return 200, {"matched": False, "exited": True, "exitCode": self.session.info.exit_code}


class WaitService:
    """Every pending wait of the daemon."""

    def __init__(self, reactor: Any, max_per_session: int = MAX_PER_SESSION, max_waiters: int = MAX_WAITERS):
        self._reactor = reactor
        self.max_per_session = max_per_session
        self.max_waiters = max_waiters
        self.sessions: dict[str, SessionWaiters] = {}
        self.count = 0

    def wait(self, session: ISession, request: WaitRequest) -> Deferred[Answer]:
        """A Deferred of the wait's answer (cancel it when the client goes away)."""
        if self.count >= self.max_waiters:
            raise TooManyWaiters(f"The daemon holds {self.max_waiters} waits already", retry_after=1)
        waiters = self.sessions.get(session.id)
        if waiters is not None and waiters.session is not session:
            waiters.interrupt(self._gone_answer())
            waiters = None
        if waiters is None:
            waiters = SessionWaiters(session, self._reactor, self._empty)
            self.sessions[session.id] = waiters
        elif len(waiters) >= self.max_per_session:
            raise TooManyWaiters(f"This session has {self.max_per_session} waits already", retry_after=1)
        now = self._reactor.seconds()
        start = max(request.after or 0, session.recorded_end)
        self.count += 1
        waiter = Waiter(request, start, now, lambda w: self._forget(waiters, w))
        waiter.timeout_call = self._reactor.callLater(request.timeout, self._timed_out, waiter)
        waiters.add(waiter)
        return waiter.answer

    def _timed_out(self, waiter: Waiter) -> None:
        request = waiter.request
        if request.idle is not None:
            message = f"The session was not quiet for {request.idle:g} s within {request.timeout:g} s"
        else:
            message = f"The pattern did not show within {request.timeout:g} s"
        waiter.timeout_call = None
        waiter.finish(408, {"error": message})

    def _forget(self, waiters: SessionWaiters, waiter: Waiter) -> None:
        self.count -= 1
        waiters.remove(waiter)

    def _empty(self, waiters: SessionWaiters) -> None:
        # Kept while the session runs: each one waits on the session's end, once.
        session = waiters.session
        if session.status is Status.EXITED and self.sessions.get(session.id) is waiters:
            del self.sessions[session.id]

    @staticmethod
    def _gone_answer() -> Answer:
        return 503, {"error": "The daemon is restarting or stopping: wait again"}

    def interrupt(self) -> None:
        """The daemon restarts in place or stops: every wait answers 503 (the client waits again)."""
        for waiters in list(self.sessions.values()):
            waiters.interrupt(self._gone_answer())
