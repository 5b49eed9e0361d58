# -*- test-case-name: tests.test_sse -*-
"""A cursor into a session's recording that follows it as it grows.

Every live channel (SSE, the terminal byte stream) is a Follower: it reads
the recording from an offset, at its own pace, and only once it has caught up
does it take lines live as they are recorded. When its client cannot keep up
it is paused, stops taking lines live and later goes back to reading the
file. A slow client therefore costs disk reads, never memory, and gets every
line exactly once.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from vibetwist.interfaces import ILineSink, ISession, IStreamListener
from vibetwist.model.asciicast import Event, Exit, is_exit_line
from vibetwist.model.info import Status
from vibetwist.sessions.recording import RecordingReader

#: Bytes of the recording read per step.
READ_SIZE = 65536


@implementer(IStreamListener)
class Follower:
    """Delivers a session's recording lines from an offset on, each exactly once."""

    def __init__(
        self,
        session: ISession,
        offset: int,
        cooperator: Any,
        sink: ILineSink,
        *,
        max_backlog: int | None = None,
    ) -> None:
        self._session = session
        self._reader = RecordingReader(session.recording_path, offset)
        self._cooperator = cooperator
        self._sink = sink
        self._max_backlog = max_backlog
        self._live = False
        self._paused = False
        self._reading = False
        self.done = False

    @property
    def offset(self) -> int:
        """The offset of the next line this follower delivers."""
        return self._session.recorded_end if self._live else self._reader.offset

    @property
    def paused(self) -> bool:
        """Whether delivery is paused (the client is not reading)."""
        return self._paused

    def start(self) -> None:
        self._session.listen(self)
        self._catch_up()

    # -- IStreamListener -----------------------------------------------------------

    def event(self, line: bytes, record: Event | Exit) -> None:
        if self._live and not self._paused and not self.done:
            self._sink.live(line, record)
            if isinstance(record, Exit):
                self._finish()

    # -- flow control ----------------------------------------------------------------

    def pause(self) -> None:
        """Stop delivering; what is recorded meanwhile is read back from the file."""
        self._paused = True
        if self._live:
            self._live = False
            self._reader.offset = self._session.recorded_end

    def resume(self) -> None:
        self._paused = False
        self._catch_up()

    def stop(self) -> None:
        """Deliver nothing more and let go of the file."""
        self.done = True
        self._session.unlisten(self)
        self._reader.close()

    # -- reading the recording -----------------------------------------------------

    def _catch_up(self) -> None:
        if not self._reading and not self._live and not self.done and not self._paused:
            self._reading = True
            self._cooperator.cooperate(self._read())

    def _read(self) -> Any:
        try:
            while not self._paused and not self.done:
                end = self._session.recorded_end
                backlog = end - self._reader.offset
                if backlog <= 0:
                    self._caught_up()
                    return
                if (
                    self._max_backlog is not None
                    and backlog > self._max_backlog
                    and self._sink.behind(backlog)
                ):
                    self.stop()
                    return
                lines = self._reader.read_lines(end, READ_SIZE)
                exit_at = next((i for i, (_, line) in enumerate(lines) if is_exit_line(line)), None)
                if exit_at is not None:
                    self._sink.recorded(lines[: exit_at + 1])
                    self._finish()
                    return
                if lines:
                    self._sink.recorded(lines)
                yield None
        finally:
            self._reading = False

    def _caught_up(self) -> None:
        session = self._session
        if session.status is Status.EXITED:
            # The exit line is not in the recording (the disk failed): deliver it now.
            if session.exit_line is not None:
                self._sink.live(session.exit_line, Exit(session.info.exit_code, session.id))
            self._finish()
            return
        self._reader.close()
        self._live = True

    def _finish(self) -> None:
        if not self.done:
            self.stop()
            self._sink.finished()
