# -*- test-case-name: tests.test_sse -*-
"""The Server-Sent Events stream of a session's recording.

Each viewer follows the recording (see vibetwist.sessions.follow) from the last
clear-scrollback, the replayed part with timestamps set to 0, then live.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from vibetwist.interfaces import ILineSink, ISession
from vibetwist.model.asciicast import zero_time
from vibetwist.sessions.follow import Follower

HEARTBEAT = b":heartbeat\n\n"


def start_event_stream(request: Any, producer: Any, gone: Any) -> None:
    """Make request an open text/event-stream response, producer its push producer, with
    gone called when it finishes (the client left, or it was ended)."""
    request.setHeader(b"content-type", b"text/event-stream")
    request.setHeader(b"cache-control", b"no-cache")
    request.setHeader(b"x-accel-buffering", b"no")
    request.registerProducer(producer, True)
    request.notifyFinish().addBoth(gone)


def sse_message(line: bytes) -> bytes:
    """One asciicast line as an SSE message (the line is one JSON value, no newlines inside)."""
    return b"data: " + line.rstrip(b"\n") + b"\n\n"


@implementer(ILineSink, IPushProducer)
class StreamViewer:
    """One SSE client of one session."""

    def __init__(self, session: ISession, request: Any, cooperator: Any, viewers: set[Any]) -> None:
        self._session = session
        self._request = request
        self._viewers = viewers
        start = session.info.last_clear_offset or len(session.header_line)
        if start < len(session.header_line) or start > session.recorded_end:
            start = len(session.header_line)
        self._replay_end = session.recorded_end
        self._follower = Follower(session, start, cooperator, self)
        self._done = False

    def start(self) -> None:
        request = self._request
        start_event_stream(request, self, self._gone)
        self._viewers.add(self)
        request.write(sse_message(self._session.header_line or b"{}"))
        self._follower.start()

    # -- ILineSink -------------------------------------------------------------------

    def recorded(self, lines: list[tuple[int, bytes]]) -> None:
        replay_end = self._replay_end
        self._request.write(
            b"".join(sse_message(zero_time(line) if offset < replay_end else line) for offset, line in lines)
        )

    def live(self, line: bytes, record: object) -> None:
        self._request.write(sse_message(line))

    def finished(self) -> None:
        if not self._done:
            self._done = True
            self._viewers.discard(self)
            self._request.unregisterProducer()
            self._request.finish()

    def interrupt(self) -> None:
        """The daemon restarts: end the response here, without an exit line (the client reconnects)."""
        if not self._done:
            self._follower.stop()
            self.finished()

    def behind(self, backlog: int) -> bool:
        """An SSE viewer reads every line, however far behind."""
        return False

    # -- IPushProducer ---------------------------------------------------------------

    def pauseProducing(self) -> None:
        self._follower.pause()

    def resumeProducing(self) -> None:
        self._follower.resume()

    def stopProducing(self) -> None:
        self._gone(None)

    def heartbeat(self) -> None:
        if not self._done and not self._follower.paused:
            self._request.write(HEARTBEAT)

    def _gone(self, _: object) -> None:
        self._done = True
        self._follower.stop()
        self._viewers.discard(self)


class StreamResource(Resource):
    """GET /api/sessions/:id/stream."""

    isLeaf = True

    def __init__(self, session: ISession, cooperator: Any, viewers: set[Any]) -> None:
        super().__init__()
        self._session = session
        self._cooperator = cooperator
        self._viewers = viewers

    def render_GET(self, request: Any) -> Any:
        StreamViewer(self._session, request, self._cooperator, self._viewers).start()
        return NOT_DONE_YET
