# -*- test-case-name: tests.test_events -*-
"""``GET /api/events``: the daemon's session events as Server-Sent Events, as VibeTunnel's
browser client reads them.

A stream opens with ``event: connected`` (``data: {"type":"connected"}``); then each
event of :class:`vibetwist.sessions.events.SessionEvents` comes as ``id: N``,
``event: TYPE`` and ``data: JSON``, and a ``:heartbeat`` comment every 30 s (the API's
heartbeat) keeps proxies from closing it. A client that reconnects with
``Last-Event-ID: N`` (or ``?lastEventId=N``) first gets the kept events after ``N``.
Events are few and small, so they are written as they happen even to a client that
reads slowly; one that has let :data:`MAX_HELD` bytes pile up is cut off (it may
reconnect).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from vibetwist.server.sse import start_event_stream
from vibetwist.sessions.events import SessionEvent, SessionEvents

HEARTBEAT = b":heartbeat\n\n"
CONNECTED = b'event: connected\ndata: {"type":"connected"}\n\n'
#: Bytes written to a stream while its client does not read, past which it is cut off.
MAX_HELD = 1 << 20


def sse_event(event: SessionEvent) -> bytes:
    """One event as an SSE message: its id, its type as the event name, its JSON as data."""
    data = json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


@implementer(IPushProducer)
class EventStream:
    """One client of /api/events."""

    def __init__(self, events: SessionEvents, request: Any, streams: set[Any]) -> None:
        self._events = events
        self._request = request
        self._streams = streams
        self._paused = False
        self._held = 0
        self._done = False

    def start(self, last_id: int | None = None) -> None:
        """Open the stream: ``connected``, the kept events after last_id if it is given, then
        every event as it happens."""
        start_event_stream(self._request, self, self._gone)
        self._streams.add(self)
        self._events.subscribe(self.send)
        self._request.write(CONNECTED)
        if last_id is not None:
            for event in self._events.since(last_id):
                self.send(event)

    def send(self, event: SessionEvent) -> None:
        self._write(sse_event(event))

    def heartbeat(self) -> None:
        if not self._paused:
            self._write(HEARTBEAT)

    def _write(self, data: bytes) -> None:
        if self._done:
            return
        if self._paused:
            self._held += len(data)
            if self._held > MAX_HELD:
                self.close()
                return
        self._request.write(data)

    def close(self) -> None:
        """End the stream (the daemon is stopping, or the client stopped reading)."""
        if not self._done:
            self._gone(None)
            self._request.unregisterProducer()
            self._request.finish()

    # -- IPushProducer ---------------------------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._held = 0

    def stopProducing(self) -> None:
        self._gone(None)

    def _gone(self, _: object) -> None:
        self._done = True
        self._events.unsubscribe(self.send)
        self._streams.discard(self)


class EventStreamResource(Resource):
    """GET /api/events."""

    isLeaf = True

    def __init__(self, events: SessionEvents, streams: set[Any]) -> None:
        super().__init__()
        self._events = events
        self._streams = streams

    def render_GET(self, request: Any) -> Any:
        EventStream(self._events, request, self._streams).start(last_event_id(request))
        return NOT_DONE_YET


def last_event_id(request: Any) -> int | None:
    """The id a reconnecting client saw last: its ``Last-Event-ID`` header, else its
    ``?lastEventId=``; None when it gives none, or none that is a whole number."""
    header = request.getHeader(b"last-event-id")
    values = [header] if header is not None else request.args.get(b"lastEventId", [])
    if not values:
        return None
    raw = values[0]
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)
