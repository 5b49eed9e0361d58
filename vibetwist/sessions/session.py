# -*- test-case-name: tests.test_session -*-
"""A session: one program in a PTY, its recording, its screen and its viewers.

Lifecycle (the transitions all live in this module)::

    starting --spawned--> running --ended--> exited
        \\---------------killed / failed----------/

Input and resizes sent while starting are kept and applied once the program runs.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from enum import StrEnum
from signal import SIGHUP, SIGKILL, SIGTERM
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import Interface, implementer

from vibetwist import __version__
from vibetwist.errors import BadRequest, Conflict, FormatError
from vibetwist.interfaces import ILauncher, ITerminalEvents, ITerminalProcess
from vibetwist.model.asciicast import (
    ClearDetector,
    Event,
    Exit,
    Header,
    OutputDecoder,
    encode_event,
    encode_exit,
    encode_header,
    encode_size,
)
from vibetwist.model.controldir import ControlDir, is_session_id
from vibetwist.screen.terminal import TerminalScreen
from vibetwist.sessions.pty import SpawnQueue
from vibetwist.sessions.recording import Recording, RecordingReader
from vibetwist.sessions.screenfeed import ScreenFeed, ScreenScheduler

#: Seconds between SIGTERM and SIGKILL when a session is deleted.
KILL_GRACE = 3.0
#: Seconds the terminal may stay open (held by background jobs) after the program exits.
HANGUP_GRACE = 1.0
#: Seconds between saves of session.json for changes that are not status changes.
SAVE_DELAY = 1.0
#: Largest terminal size accepted.
MAX_SIZE = 1000


def now_iso(seconds: float | None = None) -> str:
    """An ISO 8601 UTC time with milliseconds, as VibeTunnel writes it."""
    moment = datetime.fromtimestamp(time.time() if seconds is None else seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_size(cols: object, rows: object) -> tuple[int, int]:
    """cols and rows as integers in 1..1000, or BadRequest."""
    for name, value in (("cols", cols), ("rows", rows)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIZE:
            raise BadRequest(f"{name} must be an integer from 1 to {MAX_SIZE}")
    return int(cols), int(rows)  # type: ignore[call-overload]


class Status(StrEnum):
    """Where a session is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"


@attrs.frozen
class SessionInfo:
    """What session.json holds, and what the API tells about a session."""

    id: str
    name: str
    command: tuple[str, ...]
    working_dir: str
    status: Status
    started_at: str
    initial_cols: int = 80
    initial_rows: int = 24
    exit_code: int | None = None
    pid: int | None = None
    last_clear_offset: int = 0
    version: str = __version__
    last_modified: str = ""
    attached_via_vt: bool = False
    title_mode: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of session.json and of the API."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "command": list(self.command),
            "workingDir": self.working_dir,
            "status": self.status.value,
            "startedAt": self.started_at,
            "initialCols": self.initial_cols,
            "initialRows": self.initial_rows,
            "lastClearOffset": self.last_clear_offset,
            "version": self.version,
            "lastModified": self.last_modified or self.started_at,
            "attachedViaVT": self.attached_via_vt,
        }
        if self.exit_code is not None:
            out["exitCode"] = self.exit_code
        if self.pid is not None:
            out["pid"] = self.pid
        if self.title_mode is not None:
            out["titleMode"] = self.title_mode
        return out

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> SessionInfo:
        """Read a session.json object (ours or VibeTunnel's); FormatError if it is unusable."""
        try:
            sid = value["id"]
            command = value["command"]
            status = Status(value.get("status", "exited"))
        except (KeyError, ValueError) as e:
            raise FormatError(f"session.json lacks a usable field: {e}") from e
        if not is_session_id(sid):
            raise FormatError("session.json has a bad id")
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise FormatError("session.json has a bad command")

        def num(key: str, default: int | None) -> int | None:
            v = value.get(key, default)
            return v if isinstance(v, int) and not isinstance(v, bool) else default

        def size(key: str, default: int) -> int:
            # A screen of a billion columns would never be drawn: keep to what a create allows.
            v = num(key, default)
            return v if v is not None and 1 <= v <= MAX_SIZE else default

        def text(key: str, default: str) -> str:
            v = value.get(key, default)
            return v if isinstance(v, str) else default

        return cls(
            id=sid,
            name=text("name", os.path.basename(command[0]) if command else sid),
            command=tuple(command),
            working_dir=text("workingDir", ""),
            status=status,
            started_at=text("startedAt", now_iso(0)),
            initial_cols=size("initialCols", 80),
            initial_rows=size("initialRows", 24),
            exit_code=num("exitCode", None),
            pid=num("pid", None),
            last_clear_offset=num("lastClearOffset", 0) or 0,
            version=text("version", ""),
            last_modified=text("lastModified", ""),
            attached_via_vt=value.get("attachedViaVT") is True,
            title_mode=value.get("titleMode") if isinstance(value.get("titleMode"), str) else None,
        )


@attrs.frozen
class LaunchPlan:
    """How to start a session's program: what to exec and with what."""

    executable: str
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str


class IStreamListener(Interface):
    """A viewer of a session's recording lines as they are made."""

    def event(line: bytes, record: Event | Exit) -> None:
        """A new asciicast line (output, resize or, last, the exit line) and what it says."""


@implementer(ITerminalEvents)
class Session:
    """One program in a PTY, recorded, with a screen and any number of listeners.

    A subclass whose program or recording belongs to someone else (a session
    another process runs) builds on this protected interface, and on nothing
    else that starts with an underscore:

      - C{_files} (the L{ControlDir}) and C{_reactor}, to read, never to rebind;
      - C{_process}: the program input, resizes and signals go to (None
        before it runs and once it ended), set by a subclass that drives one;
      - L{_recorded_to}: the recording is whole up to an offset someone else wrote;
      - L{_tell_listeners}: hand a recording line to every listener;
      - L{_cancel_save}: drop a session.json save that is waiting;
      - hooks a subclass may extend (calling this class's): L{_save} (write
        session.json), L{_finish} (the session has ended) and L{_file_size}
        (where the recording found on disk ends).
    """

    log = Logger()

    def __init__(
        self,
        info: SessionInfo,
        files: ControlDir,
        *,
        reactor: Any,
        screens: ScreenScheduler,
        scrollback: int,
        header: Header | None = None,
    ) -> None:
        self.info = info
        self._files = files
        self._reactor = reactor
        self._recording: Recording | None = None
        self._max_recording: int | None = None
        self.recording_path = files.recording_path(info.id)
        self._start = reactor.seconds()
        self._decoder = OutputDecoder()
        self._clear = ClearDetector()
        self._process: ITerminalProcess | None = None
        self._pending_input: list[bytes] = []
        self._pending_size: tuple[int, int] | None = None
        self._cancel_spawn: Any = None
        self._kill_timer: Any = None
        self._hangup_timer: Any = None
        self._save_timer: Any = None
        self._leader_code: int | None = None
        self._ended: list[Deferred[None]] = []
        self.listeners: set[Any] = set()
        self.exit_line: bytes | None = None
        self._restored_end: int | None = None
        if header is not None:
            # A new session: its files are made on the turn its program starts.
            self.header_line = encode_header(header)
            self._files_ready = False
        else:
            # A session found on disk.
            self.header_line = self._read_header()
            self._restored_end = self._file_size()
            self._files_ready = True
        #: The terminal's size (cols, rows) as last set.
        self.size = (info.initial_cols, info.initial_rows)
        self.screen = TerminalScreen(info.initial_cols, info.initial_rows, scrollback)
        reader = RecordingReader(self.recording_path, len(self.header_line))
        self.feed = ScreenFeed(self.screen, reader, screens)
        if self._restored_end is not None:
            self.feed.recorded(self._restored_end)

    # -- creation ---------------------------------------------------------

    @classmethod
    def create(
        cls,
        info: SessionInfo,
        plan: LaunchPlan,
        files: ControlDir,
        *,
        reactor: Any,
        screens: ScreenScheduler,
        launcher: ILauncher,
        spawns: SpawnQueue,
        scrollback: int,
        max_recording: int | None,
        shell: str,
    ) -> Session:
        """A new session, its program queued to start.

        Nothing touches the disk or forks here, so a create is answered as fast
        as any request; the files are made and the program started on a
        following reactor turn, one session per turn.
        """
        header = Header(
            width=info.initial_cols,
            height=info.initial_rows,
            timestamp=int(time.time()),
            command=" ".join(info.command),
            title=info.name,
            env={"TERM": plan.env.get("TERM", "xterm-256color"), "SHELL": shell},
        )
        session = cls(info, files, reactor=reactor, screens=screens, scrollback=scrollback, header=header)
        session._max_recording = max_recording
        session._cancel_spawn = spawns.add(lambda: session._start_step(launcher, plan, spawns))
        return session

    @classmethod
    def restore(
        cls, info: SessionInfo, files: ControlDir, *, reactor: Any, screens: ScreenScheduler, scrollback: int
    ) -> Session:
        """A session found on disk: its recording can be read, its program is gone."""
        session = cls(info, files, reactor=reactor, screens=screens, scrollback=scrollback)
        if info.status is not Status.EXITED:
            session._update(status=Status.EXITED)
        return session

    def _prepare_files(self) -> None:
        """Make the session's folder and its recording (header first).

        session.json is written by the status change that follows (running or exited)."""
        if self._files_ready:
            return
        self._files_ready = True
        try:
            self._files.make_session_dir(self.id)
            self._recording = Recording(self.recording_path, self._max_recording)
        except OSError as e:
            self.log.error("session {id} runs unrecorded: {error}", id=self.id, error=e)
            return
        self._recording.append(self.header_line, final=True)
        self.feed.recorded(self._recording.size)

    def _read_header(self) -> bytes:
        try:
            with open(self.recording_path, "rb") as f:
                return f.readline(1 << 20)
        except OSError:
            return b""

    def _file_size(self) -> int:
        """Where the recording found on disk ends (a hook: a subclass may count only whole lines)."""
        try:
            return os.stat(self.recording_path).st_size
        except OSError:
            return 0

    # -- what the world sees -----------------------------------------------

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def status(self) -> Status:
        return self.info.status

    @property
    def recorded_end(self) -> int:
        """The offset just past the last whole line in the recording."""
        if self._recording is not None:
            return self._recording.size
        if self._restored_end is not None:
            return self._restored_end
        return len(self.header_line)

    def _seconds(self) -> float:
        return max(0.0, self._reactor.seconds() - self._start)

    # -- the protected interface for subclasses (see the class docstring) ----------

    def _recorded_to(self, offset: int) -> None:
        """The recording, written by someone else, is whole up to offset: the screen may read it."""
        self._restored_end = offset
        self.feed.recorded(offset)

    def _cancel_save(self) -> None:
        """Drop the session.json save waiting on its timer, if any."""
        if self._save_timer is not None and self._save_timer.active():
            self._save_timer.cancel()
        self._save_timer = None

    def _save(self) -> None:
        """Write session.json now (a hook: a subclass may write it differently)."""
        self._cancel_save()
        if not self._files_ready:
            return  # saved once the files are made
        try:
            self._files.save_info(self.id, self.info.to_json())
        except OSError as e:
            self.log.error("cannot save session.json of {id}: {error}", id=self.id, error=e)

    def _save_soon(self) -> None:
        if self._save_timer is None or not self._save_timer.active():
            self._save_timer = self._reactor.callLater(SAVE_DELAY, self._save)

    def _update(self, **changes: Any) -> None:
        self.info = attrs.evolve(self.info, last_modified=now_iso(), **changes)
        self._save()

    def _emit_event(self, kind: str, data: str) -> None:
        """Record an event, hand it to the screen and every listener."""
        seconds = self._seconds()
        line = encode_event(seconds, kind, data)
        event = Event(seconds, kind, data)
        if self._record(line):
            self.feed.recorded(self.recorded_end)
        else:
            # Not in the recording: the screen gets it from (bounded) memory.
            self.feed.unrecorded(event)
        self._tell_listeners(line, event)

    def _record(self, line: bytes, final: bool = False) -> bool:
        return self._recording is not None and self._recording.append(line, final=final)

    def _tell_listeners(self, line: bytes, record: Event | Exit) -> None:
        """Hand one recording line, and what it says, to every listener."""
        for listener in list(self.listeners):
            try:
                listener.event(line, record)
            except Exception:
                # One broken viewer must not stop the output reaching the others.
                self.log.failure("a viewer of {id} failed; dropping it", id=self.id)
                self.listeners.discard(listener)

    # -- ITerminalEvents ------------------------------------------------------

    def output(self, data: bytes) -> None:
        """The program wrote data: record it, stream it, and let the screen catch up."""
        text = self._decoder.decode(data)
        if text:
            self._output_text(text)

    def _output_text(self, text: str) -> None:
        offset = self.recorded_end
        if self._clear.feed(text):
            self.info = attrs.evolve(self.info, last_clear_offset=offset)
            self._save_soon()
        self._emit_event("o", text)

    def leader_exited(self, code: int) -> None:
        """The program exited; give its terminal a moment to drain, then hang it up."""
        self._leader_code = code
        self._hangup_timer = self._reactor.callLater(HANGUP_GRACE, self._hang_up)

    def _hang_up(self) -> None:
        self._hangup_timer = None
        process = self._process
        if process is not None and self.status is Status.RUNNING:
            # Background jobs still hold the terminal: end them as a closing terminal would.
            process.signal_all(SIGHUP)
            process.hang_up()

    def ended(self, code: int) -> None:
        """Every byte is in: write the exit line, close the recording, tell the listeners."""
        if self.status is Status.EXITED:
            return
        rest = self._decoder.flush()
        if rest:
            self._output_text(rest)
        if self._leader_code is not None:
            code = self._leader_code
        self._finish(code)

    def _finish(self, code: int | None) -> None:
        """The session has ended with code: record it, tell everyone (a hook subclasses extend)."""
        for name in ("_kill_timer", "_hangup_timer"):
            timer = getattr(self, name)
            if timer is not None and timer.active():
                timer.cancel()
            setattr(self, name, None)
        self._process = None
        self.feed.rest()
        self._update(status=Status.EXITED, exit_code=code)
        self.exit_line = encode_exit(code, self.id)
        self._record(self.exit_line, final=True)
        self._tell_listeners(self.exit_line, Exit(code, self.id))
        if self._recording is not None:
            self._recording.close()
        ended, self._ended = self._ended, []
        for d in ended:
            d.callback(None)

    # -- lifecycle -------------------------------------------------------------

    def _start_step(self, launcher: ILauncher, plan: LaunchPlan, spawns: SpawnQueue) -> None:
        """One queued step of starting, each on a reactor turn of its own: the files, then the fork."""
        self._cancel_spawn = None
        if self.status is not Status.STARTING:
            return
        if not self._files_ready:
            self._prepare_files()
            self._cancel_spawn = spawns.add(lambda: self._start_step(launcher, plan, spawns))
            return
        cols, rows = self._pending_size or (self.info.initial_cols, self.info.initial_rows)
        try:
            self._process = launcher.launch(
                plan.executable, list(plan.argv), plan.env, plan.cwd, cols, rows, self
            )
        except OSError as e:
            self.log.error("cannot start {command}: {error}", command=plan.argv, error=e)
            self._output_text(f"vibetwist: cannot start {plan.executable}: {e.strerror}\r\n")
            self._finish(127)
            return
        self._update(status=Status.RUNNING, pid=self._process.pid)
        pending, self._pending_input = self._pending_input, []
        for data in pending:
            self._process.write(data)
        self._pending_size = None

    def write(self, data: bytes) -> None:
        """Type data into the program (kept until it runs if it is still starting)."""
        if self.status is Status.EXITED:
            raise BadRequest("Session is not running")
        if self._process is None:
            self._pending_input.append(data)
        else:
            self._process.write(data)

    def resize(self, cols: object, rows: object) -> None:
        """Change the terminal's size; recorded as an "r" event."""
        cols, rows = check_size(cols, rows)
        if self.status is Status.EXITED:
            raise BadRequest("Session is not running")
        if self._process is None:
            self._pending_size = (cols, rows)
        else:
            self._process.resize(cols, rows)
        self.size = (cols, rows)
        self._emit_event("r", encode_size(cols, rows))

    def rename(self, name: str) -> None:
        self._update(name=name)

    def kill(self, grace: float = KILL_GRACE) -> None:
        """End the program and every process of its session: SIGTERM, then SIGKILL."""
        if self.status is Status.EXITED:
            raise Conflict("Session has already exited")
        if self._process is None:
            # Still queued: it will never start.
            if self._cancel_spawn is not None:
                self._cancel_spawn()
                self._cancel_spawn = None
            self._prepare_files()
            self._finish(None)
            return
        self._process.signal_all(SIGTERM)
        if self._kill_timer is None:
            self._kill_timer = self._reactor.callLater(grace, self._force_kill)

    def _force_kill(self) -> None:
        self._kill_timer = None
        process = self._process
        if process is not None:
            process.signal_all(SIGKILL)
            process.hang_up()

    def when_ended(self) -> Deferred[None]:
        """A Deferred that fires once the session has exited."""
        d: Deferred[None] = Deferred()
        if self.status is Status.EXITED:
            d.callback(None)
        else:
            self._ended.append(d)
        return d

    def flush(self) -> None:
        """Write pending session.json changes now."""
        if self._save_timer is not None and self._save_timer.active():
            self._save()

    def close(self) -> None:
        """Let go of the files (before they are removed)."""
        self.feed.stop()
        if self._save_timer is not None and self._save_timer.active():
            self._save_timer.cancel()
        if self._recording is not None:
            self._recording.close()
