# -*- test-case-name: tests.test_sse -*-
"""The Server-Sent Events stream of a session's recording.

Each viewer is a cursor into the recording. It replays the file from the
last clear-scrollback (timestamps set to 0), reads on at its own pace, and
only once it has caught up does it take lines live. When its connection
cannot keep up, it stops taking lines live and goes back to reading the
file: a slow viewer costs disk reads, never memory, and gets every byte
exactly once.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from vibetwist.asciicast import is_exit_line, zero_time
from vibetwist.recording import RecordingReader
from vibetwist.session import IStreamListener, Session, Status

HEARTBEAT = b":heartbeat\n\n"
READ_SIZE = 65536


def sse_message(line: bytes) -> bytes:
    """One asciicast line as an SSE message (the line is one JSON value, no newlines inside)."""
    return b"data: " + line.rstrip(b"\n") + b"\n\n"


@implementer(IStreamListener, IPushProducer)
class StreamViewer:
    """One SSE client of one session."""

    def __init__(self, session: Session, request: Any, cooperator: Any, viewers: set[Any]) -> None:
        self._session = session
        self._request = request
        self._cooperator = cooperator
        self._viewers = viewers
        start = session.info.last_clear_offset or len(session.header_line)
        if start < len(session.header_line) or start > session.recorded_end:
            start = len(session.header_line)
        self._reader = RecordingReader(session.recording_path, start)
        self._replay_end = session.recorded_end
        self._live = False
        self._paused = False
        self._reading = False
        self._done = False

    def start(self) -> None:
        request = self._request
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(self._gone)
        self._session.listeners.add(self)
        self._viewers.add(self)
        request.write(sse_message(self._session.header_line or b"{}"))
        self._catch_up()

    # -- IStreamListener -------------------------------------------------------

    def event(self, line: bytes) -> None:
        if self._live and not self._paused and not self._done:
            self._request.write(sse_message(line))
            if is_exit_line(line):
                self._end()

    # -- IPushProducer ---------------------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True
        if self._live:
            # From here on, read what is missed back from the recording.
            self._live = False
            self._reader.offset = self._session.recorded_end

    def resumeProducing(self) -> None:
        self._paused = False
        self._catch_up()

    def stopProducing(self) -> None:
        self._gone(None)

    # -- reading the recording ---------------------------------------------------

    def _catch_up(self) -> None:
        if not self._reading and not self._live and not self._done and not self._paused:
            self._reading = True
            self._cooperator.cooperate(self._read())

    def _read(self) -> Any:
        try:
            while not self._paused and not self._done:
                end = self._session.recorded_end
                if self._reader.offset >= end:
                    self._caught_up()
                    return
                lines = self._reader.read_lines(end, READ_SIZE)
                for offset, line in lines:
                    if offset < self._replay_end:
                        line = zero_time(line)
                    self._request.write(sse_message(line))
                    if is_exit_line(line):
                        self._end()
                        return
                yield None
        finally:
            self._reading = False

    def _caught_up(self) -> None:
        session = self._session
        if session.status is Status.EXITED:
            # The exit line was not in the recording (the disk failed): send it now.
            if session.exit_line is not None:
                self._request.write(sse_message(session.exit_line))
            self._end()
            return
        self._reader.close()
        self._live = True

    def heartbeat(self) -> None:
        if not self._done and not self._paused:
            self._request.write(HEARTBEAT)

    def _end(self) -> None:
        if not self._done:
            self._done = True
            self._detach()
            self._request.unregisterProducer()
            self._request.finish()

    def _gone(self, _: object) -> None:
        self._done = True
        self._detach()

    def _detach(self) -> None:
        self._session.listeners.discard(self)
        self._viewers.discard(self)
        self._reader.close()


class StreamResource(Resource):
    """GET /api/sessions/:id/stream."""

    isLeaf = True

    def __init__(self, session: Session, cooperator: Any, viewers: set[Any]) -> None:
        super().__init__()
        self._session = session
        self._cooperator = cooperator
        self._viewers = viewers

    def render_GET(self, request: Any) -> Any:
        StreamViewer(self._session, request, self._cooperator, self._viewers).start()
        return NOT_DONE_YET
