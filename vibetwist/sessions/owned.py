# -*- test-case-name: tests.test_session -*-
"""The parts of a session whose program the daemon runs in a PTY of its own.

:class:`OwnedSource` records the program's output: it decodes it as UTF-8
(a character split across reads is kept whole), appends each event as an
asciicast line, lets the screen read it back, and hands it to every listener.
:class:`OwnInfoStore` writes session.json whole. :class:`PTYStart` starts the
program a step per reactor turn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zope.interface import implementer

from vibetwist.interfaces import IInfoStore, ILauncher, ISessionSource
from vibetwist.model.asciicast import (
    ClearDetector,
    Event,
    OutputDecoder,
    encode_event,
    encode_exit,
    encode_size,
)
from vibetwist.model.controldir import ControlDir
from vibetwist.model.handover import HandedOutput
from vibetwist.model.info import LaunchPlan, SessionInfo
from vibetwist.sessions.pty import SpawnQueue
from vibetwist.sessions.recording import Recording, RecordingState


@implementer(IInfoStore)
class OwnInfoStore:
    """session.json written whole, replaced atomically."""

    def __init__(self, files: ControlDir) -> None:
        self._files = files

    def save(self, info: SessionInfo) -> None:
        self._files.save_info(info.id, info.to_json())


@implementer(ISessionSource)
class OwnedSource:
    """Output the daemon records itself, from a program it runs."""

    log: Any = None

    def __init__(
        self,
        files: ControlDir,
        session_id: str,
        header_line: bytes,
        *,
        max_recording: int | None = None,
        found_end: int | None = None,
        resumed: HandedOutput | None = None,
    ) -> None:
        """A new session's recording (made by :meth:`prepare`); with ``found_end``, the
        recording of a session found on disk, which ends there; with ``resumed``, the
        recording an earlier daemon of this process wrote, continued from where it stood."""
        self._files = files
        self._id = session_id
        self.header_line = header_line
        self._max_recording = max_recording
        self._recording: Recording | None = None
        self._found_end = found_end
        self._ready = found_end is not None or resumed is not None
        self._decoder = OutputDecoder(resumed.held if resumed else b"")
        self._clear = ClearDetector(resumed.clear_tail if resumed else "")
        self._session: Any = None
        self._tally: Any = None
        self._resumed = resumed

    @property
    def ready(self) -> bool:
        """Whether the session's folder and recording have been made (or were found)."""
        return self._ready

    def bind(self, session: Any) -> None:
        self._session = session
        self._tally = session.tally
        session.saving = self._ready
        resumed = self._resumed
        if resumed is not None and resumed.recording != "none":
            path = self._files.recording_path(self._id)
            try:
                self._recording = Recording(
                    path, self._max_recording, RecordingState(resumed.recording), tally=self._tally
                )
            except OSError as e:
                session.log.error("session {id} goes on unrecorded: {error}", id=self._id, error=e)
                return
            if self._recording.size != resumed.end:
                session.log.warn(
                    "the recording of {id} is {size} bytes, not the {end} it was handed over at",
                    id=self._id,
                    size=self._recording.size,
                    end=resumed.end,
                )

    @property
    def end(self) -> int:
        if self._recording is not None:
            return self._recording.size
        if self._found_end is not None:
            return self._found_end
        return len(self.header_line)

    def prepare(self) -> None:
        """Make the session's folder and its recording (header first)."""
        if self._ready:
            return
        self._ready = True
        self._session.saving = True
        try:
            self._files.make_session_dir(self._id)
            self._recording = Recording(
                self._files.recording_path(self._id), self._max_recording, tally=self._tally
            )
        except OSError as e:
            self._session.log.error("session {id} runs unrecorded: {error}", id=self._id, error=e)
            return
        self._recording.append(self.header_line, final=True)
        self._session.feed.recorded(self._recording.size)

    # -- output -------------------------------------------------------------------

    def output(self, data: bytes) -> None:
        self._tally.output_bytes += len(data)
        text = self._decoder.decode(data)
        if text:
            self.output_text(text)

    def output_text(self, text: str) -> None:
        """Text the terminal shows (output, or a message of the daemon's own)."""
        if self._clear.feed(text):
            self._session.cleared(self.end)
        self._emit("o", text)

    def flush(self) -> None:
        rest = self._decoder.flush()
        if rest:
            self.output_text(rest)

    def resized(self, cols: int, rows: int) -> None:
        self._emit("r", encode_size(cols, rows))

    def _emit(self, kind: str, data: str) -> None:
        session = self._session
        seconds = session.seconds()
        line = encode_event(seconds, kind, data)
        event = Event(seconds, kind, data)
        if self._recording is not None and self._recording.append(line):
            session.feed.recorded(self._recording.size)
        else:
            # Not in the recording: the screen gets it from (bounded) memory.
            session.feed.unrecorded(event)
        session.publish(line, event)

    def finish(self, code: int | None) -> bytes | None:
        if self._found_end is not None:
            return None  # found on disk: its recording ends as the daemon that wrote it left it
        self.prepare()  # a session killed before it started still leaves its files
        line = encode_exit(code, self._id)
        if self._recording is not None:
            self._recording.append(line, final=True)
            self._recording.close()
        return line

    def close(self) -> None:
        if self._recording is not None:
            self._recording.close()

    def hand_over(self) -> HandedOutput | None:
        if self._found_end is not None:
            return None
        recording = self._recording
        if recording is None:
            state = "none"
        else:
            state = "open" if recording.state is RecordingState.OPEN else recording.state.value
        return HandedOutput(self.end, state, self._decoder.held, self._clear.tail)

    # -- the daemon and the files ---------------------------------------------------------

    def daemon_stopping(self) -> Any:
        """The daemon ends the programs it started."""
        session = self._session
        if not session.live:
            return None
        session.kill()
        return session.when_ended()

    def files_changed(self, name: str) -> None:
        """Nobody else writes this session's files."""

    def check(self) -> None:
        """Nothing to catch up with: the daemon wrote everything."""

    def folder_removed(self) -> bool:
        """A running program goes on without its folder; an ended session is forgotten."""
        return not self._session.live


def file_size(path: Path) -> int:
    """The size of the file at path (0 if it is missing)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def read_header(path: Path) -> bytes:
    """The first line of a recording (empty if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.readline(1 << 20)
    except OSError:
        return b""


class PTYStart:
    """Starts a new session's program, a step per reactor turn: its files, then the fork."""

    def __init__(
        self, session: Any, source: OwnedSource, launcher: ILauncher, plan: LaunchPlan, spawns: SpawnQueue
    ) -> None:
        self._session = session
        self._source = source
        self._launcher = launcher
        self._plan = plan
        self._spawns = spawns

    def queue(self) -> None:
        self._session.cancel_start = self._spawns.add(self._step)

    def _step(self) -> None:
        session = self._session
        session.cancel_start = None
        if not session.live or session.process is not None:
            return
        if not self._source.ready:
            self._source.prepare()
            self.queue()
            return
        cols, rows = session.start_size
        plan = self._plan
        try:
            process = self._launcher.launch(
                plan.executable, list(plan.argv), plan.env, plan.cwd, cols, rows, session
            )
        except OSError as e:
            session.log.error("cannot start {command}: {error}", command=plan.argv, error=e)
            self._source.output_text(f"vibetwist: cannot start {plan.executable}: {e.strerror}\r\n")
            session.end(127)
            return
        session.spawned(process)
