# -*- test-case-name: tests.test_session -*-
"""A session: one program, its recording, its screen and its listeners.

A :class:`Session` is the same class for every kind of session. What differs
between kinds comes in as parts (see :mod:`vibetwist.sessions.kinds`, where
they are put together):

- a process (:class:`vibetwist.interfaces.ITerminalProcess`) that carries
  input, resizes and signals: the daemon's PTY, or another process's
  ``ipc.sock``; none before the program runs and once it has ended;
- a source (:class:`vibetwist.interfaces.ISessionSource`) that output and
  the recording come from;
- a store (:class:`vibetwist.interfaces.IInfoStore`) that writes session.json;
- the lifecycle (:class:`vibetwist.sessions.lifecycle.Lifecycle`), which alone
  sets the status; its moves go to the daemon's stream of session events
  (:class:`vibetwist.sessions.events.SessionEvents`).

What it does is counted in the daemon's :class:`vibetwist.sessions.tally.Tally`.

Input and resizes sent while the program is starting are kept and applied
once it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from signal import SIGHUP, SIGKILL, SIGTERM
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from vibetwist.errors import BadRequest, Conflict
from vibetwist.interfaces import (
    IInfoStore,
    ISession,
    ISessionSource,
    IStreamListener,
    ITerminalEvents,
    ITerminalProcess,
)
from vibetwist.model.asciicast import Event, Exit
from vibetwist.model.handover import HandedSession
from vibetwist.model.info import SessionInfo, Status, check_size, now_iso
from vibetwist.screen.terminal import TerminalScreen
from vibetwist.sessions.activity import ActivityMonitor, ActivityWatch
from vibetwist.sessions.events import SessionEvents
from vibetwist.sessions.lifecycle import Lifecycle
from vibetwist.sessions.screenfeed import ScreenFeed
from vibetwist.sessions.tally import Tally

#: Seconds between SIGTERM and SIGKILL when a session is deleted.
KILL_GRACE = 3.0
#: Seconds the terminal may stay open (held by background jobs) after the program exits.
HANGUP_GRACE = 1.0
#: Seconds between saves of session.json for changes that are not status changes.
SAVE_DELAY = 1.0


@implementer(ISession, ITerminalEvents)
class Session:
    """One program, recorded, with a screen and any number of listeners."""

    log = Logger()

    def __init__(
        self,
        info: SessionInfo,
        *,
        reactor: Any,
        recording_path: Path,
        screen: TerminalScreen,
        feed: ScreenFeed,
        source: ISessionSource,
        store: IInfoStore,
        size: tuple[int, int] | None = None,
        events: SessionEvents | None = None,
        tally: Tally | None = None,
        started: float | None = None,
    ) -> None:
        """
        :param started: when the recording's time 0 was (a session an earlier daemon of
            this process ran); now, by default.
        """
        self._info = info
        self._reactor = reactor
        self._events = events
        #: What this session counts (shared by the daemon's sessions).
        self.tally = tally if tally is not None else Tally()
        self.recording_path = recording_path
        self.screen = screen
        self.feed = feed
        self._source = source
        self._store = store
        self._lifecycle = Lifecycle(info.status, self._status_changed)
        self._start = reactor.seconds() if started is None else started
        self.process: ITerminalProcess | None = None
        #: The terminal's size (cols, rows) as last set.
        self.size = size or (info.initial_cols, info.initial_rows)
        self.exit_line: bytes | None = None
        self._listeners: set[IStreamListener] = set()
        self._pending_input: list[bytes] = []
        self._pending_size: tuple[int, int] | None = None
        self._kill_timer: Any = None
        self._hangup_timer: Any = None
        self._save_timer: Any = None
        self._leader_code: int | None = None
        #: Called when a kill must take back a program that has not started yet.
        self.cancel_start: Callable[[], None] | None = None
        #: Whether session.json may be written (not before the session's folder exists).
        self.saving = True
        #: Whether the program is handed over to the next daemon of this process.
        self._handed = False
        #: What the session is doing (bells, titles, commands), once watched.
        self.activity: ActivityWatch | None = None
        source.bind(self)

    # -- what the world sees -------------------------------------------------------

    @property
    def info(self) -> SessionInfo:
        return self._info

    @property
    def id(self) -> str:
        return self._info.id

    @property
    def status(self) -> Status:
        return self._lifecycle.status

    @property
    def live(self) -> bool:
        """True while the program is starting or running."""
        return self._lifecycle.live

    @property
    def header_line(self) -> bytes:
        return bytes(self._source.header_line)

    @property
    def recorded_end(self) -> int:
        return int(self._source.end)

    def seconds(self) -> float:
        """Seconds since the session began here (the time of its recording's events)."""
        return max(0.0, self._reactor.seconds() - self._start)

    @property
    def listeners(self) -> frozenset[IStreamListener]:
        """Who listens now."""
        return frozenset(self._listeners)

    def watch(self, monitor: ActivityMonitor) -> None:
        """Have monitor watch what the session does (its output and input)."""
        if self.activity is None:
            self.activity = monitor.watch(self)
            if not self._lifecycle.live:
                self.activity.ended()

    def listen(self, listener: IStreamListener) -> None:
        self._listeners.add(listener)

    def unlisten(self, listener: IStreamListener) -> None:
        self._listeners.discard(listener)

    # -- what the parts tell the session ----------------------------------------------

    def publish(self, line: bytes, record: Event | Exit) -> None:
        """Hand one recording line, and what it says, to every listener."""
        for listener in list(self._listeners):
            try:
                listener.event(line, record)
            except Exception:
                # One broken viewer must not stop the output reaching the others.
                self.log.failure("a viewer of {id} failed; dropping it", id=self.id)
                self._listeners.discard(listener)
        activity = self.activity
        if activity is not None and isinstance(record, Event) and record.kind == "o":
            try:
                activity.output(record.data)
            except Exception:
                # Watching must never stop the output.
                self.log.failure("watching the output of {id} failed", id=self.id)
                self.activity = None

    def cleared(self, offset: int, save: bool = True) -> None:
        """The screen's scrollback was cleared by the line at offset."""
        self._info = attrs.evolve(self._info, last_clear_offset=offset)
        if save:
            self._save_soon()

    def merge(self, **fields: Any) -> None:
        """Take in fields someone else wrote to session.json (nothing is saved)."""
        self._info = attrs.evolve(self._info, **fields)

    def spawned(self, process: ITerminalProcess) -> None:
        """The program runs behind process: apply what was sent while it started."""
        self.process = process
        self.cancel_start = None
        if process.pid is not None:
            self._info = attrs.evolve(self._info, pid=process.pid)
        if not self._lifecycle.move("spawned"):
            self._save()  # already running (a session found on disk): keep its pid
        size, self._pending_size = self._pending_size, None
        if size is not None:
            # A program started elsewhere (a holder) began at the size asked for at create.
            process.resize(*size)
        pending, self._pending_input = self._pending_input, []
        for data in pending:
            process.write(data)

    def end(self, code: int | None) -> None:
        """The session has ended with code (None when nobody knows it)."""
        if not self._lifecycle.live:
            return
        self._info = attrs.evolve(self._info, exit_code=code)
        self._lifecycle.move("ended")

    def _status_changed(self, status: Status) -> None:
        if status is Status.EXITED:
            if self.activity is not None:
                self.activity.ended()
            self._finish()
            if self._events is not None:
                self._events.exited(self._info)
        else:
            self._update()
            if status is Status.RUNNING and self._events is not None:
                self._events.started(self._info)

    def _finish(self) -> None:
        for name in ("_kill_timer", "_hangup_timer"):
            timer = getattr(self, name)
            if timer is not None and timer.active():
                timer.cancel()
            setattr(self, name, None)
        self.process = None
        self.cancel_start = None
        self.feed.rest()
        code = self._info.exit_code
        self.exit_line = self._source.finish(code)
        self._update()
        if self.exit_line is not None:
            self.publish(self.exit_line, Exit(code, self.id))

    # -- session.json ------------------------------------------------------------------

    def _save(self) -> None:
        self._cancel_save()
        if not self.saving:
            return  # saved once the folder is made
        try:
            self._store.save(self._info)
        except OSError as e:
            self.log.error("cannot save session.json of {id}: {error}", id=self.id, error=e)

    def _cancel_save(self) -> None:
        if self._save_timer is not None and self._save_timer.active():
            self._save_timer.cancel()
        self._save_timer = None

    def _save_soon(self) -> None:
        if self._save_timer is None or not self._save_timer.active():
            self._save_timer = self._reactor.callLater(SAVE_DELAY, self._save)

    def _update(self, **changes: Any) -> None:
        self._info = attrs.evolve(self._info, status=self.status, last_modified=now_iso(), **changes)
        self._save()

    # -- ITerminalEvents (the daemon's own PTY) -----------------------------------------

    def output(self, data: bytes) -> None:
        """The program wrote data: the source records it, streams it, and feeds the screen."""
        self._source.output(data)

    def leader_exited(self, code: int) -> None:
        """The program exited; give its terminal a moment to drain, then hang it up."""
        self._leader_code = code
        self._hangup_timer = self._reactor.callLater(HANGUP_GRACE, self._hang_up)

    def _hang_up(self) -> None:
        self._hangup_timer = None
        process = self.process
        if process is not None and self._lifecycle.live:
            # Background jobs still hold the terminal: end them as a closing terminal would.
            process.signal_all(SIGHUP)
            process.hang_up()

    def ended(self, code: int) -> None:
        """Every byte is in: the exit line closes the recording."""
        if not self._lifecycle.live:
            return
        self._source.flush()
        self.end(self._leader_code if self._leader_code is not None else code)

    # -- what clients ask ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Type data into the program (kept until it runs if it is still starting)."""
        if not self._lifecycle.live:
            raise BadRequest("Session is not running")
        self.tally.input_bytes += len(data)
        if self.activity is not None:
            self.activity.typed()
        if self.process is None:
            self._pending_input.append(data)
        else:
            self.process.write(data)

    def resize(self, cols: object, rows: object) -> None:
        """Change the terminal's size; the source records it."""
        cols, rows = check_size(cols, rows)
        if not self._lifecycle.live:
            raise BadRequest("Session is not running")
        if self.process is None:
            self._pending_size = (cols, rows)
        else:
            self.process.resize(cols, rows)
        self.size = (cols, rows)
        self._source.resized(cols, rows)

    @property
    def start_size(self) -> tuple[int, int]:
        """The size the program should start at: the last one asked for while it started."""
        return self._pending_size or (self._info.initial_cols, self._info.initial_rows)

    def rename(self, name: str) -> None:
        self._update(name=name)

    def kill(self, grace: float = KILL_GRACE) -> None:
        """End the program and every process of its session: SIGTERM, then SIGKILL."""
        if not self._lifecycle.live:
            raise Conflict("Session has already exited")
        if self.process is None:
            # Still queued: it will never start.
            if self.cancel_start is not None:
                self.cancel_start()
            self.end(None)
            return
        self.process.signal_all(SIGTERM)
        if self._kill_timer is None:
            self._kill_timer = self._reactor.callLater(grace, self._force_kill)

    def _force_kill(self) -> None:
        self._kill_timer = None
        process = self.process
        if process is not None:
            process.signal_all(SIGKILL)
            process.hang_up()

    def when_ended(self) -> Deferred[None]:
        return self._lifecycle.when_ended()

    def flush(self) -> None:
        if self._save_timer is not None and self._save_timer.active():
            self._save()

    def close(self) -> None:
        self.feed.stop()
        self._cancel_save()
        self._source.close()

    def removed(self) -> None:
        """The session's files are gone: it is no more."""
        self._lifecycle.move("removed")

    def hand_over(self) -> HandedSession | None:
        """Let go of the program for the next daemon of this process, which goes on with it
        from where this one stands (None if that one finds the session on disk instead)."""
        process = self.process
        if not self._lifecycle.live or process is None:
            return None
        output = self._source.hand_over()
        if output is None:
            return None
        terminal = process.hand_over()
        if terminal is None:
            return None
        self._handed = True
        self.flush()
        kill_in = None
        if self._kill_timer is not None and self._kill_timer.active():
            kill_in = max(0.0, self._kill_timer.getTime() - self._reactor.seconds())
        return HandedSession(self.id, terminal, output, self._start, self.size, kill_in)

    def take_back(self) -> None:
        if self._handed and self.process is not None:
            self.process.take_back()
        self._handed = False

    def daemon_stopping(self) -> Deferred[None] | None:
        return self._source.daemon_stopping()  # type: ignore[no-any-return]

    def files_changed(self, name: str) -> None:
        self._source.files_changed(name)

    def check(self) -> None:
        self._source.check()

    def folder_removed(self) -> bool:
        return bool(self._source.folder_removed())
