# -*- test-case-name: tests.test_events -*-
"""What happens to the daemon's sessions, as one stream of events (``GET /api/events``).

Sessions tell :class:`SessionEvents` when their lifecycle moves (a program runs, a
session exits); the service tells it of a session another process runs that turns up
already running; each session's :class:`vibetwist.sessions.activity.ActivityWatch`
tells it of bells, titles, commands and programs waiting for input. Each event gets the
next number of the stream, its ``id``, and goes to every subscriber at once: the SSE
streams of /api/events, the metrics, Web Push.

The last :data:`KEEP` events are kept, so that a client that reconnects with
``Last-Event-ID`` gets what it missed (:meth:`SessionEvents.since`).
"""

from __future__ import annotations

import datetime
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.logger import Logger

from vibetwist.model.info import SessionInfo

#: The kinds of event.
SESSION_START = "session-start"
SESSION_EXIT = "session-exit"
BELL = "bell"
TITLE = "title"
COMMAND_FINISHED = "command-finished"
COMMAND_ERROR = "command-error"
NEEDS_INPUT = "needs-input"
#: What POST /api/push/test publishes.
TEST_NOTIFICATION = "test-notification"
KINDS = (
    SESSION_START,
    SESSION_EXIT,
    BELL,
    TITLE,
    COMMAND_FINISHED,
    COMMAND_ERROR,
    NEEDS_INPUT,
    TEST_NOTIFICATION,
)
#: How many of the last events are kept for clients that reconnect.
KEEP = 1000


def _iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _seconds(iso: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 time, or None if it is not one."""
    try:
        return datetime.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


@attrs.frozen
class SessionEvent:
    """One event of the stream."""

    #: Its number in the stream, from 1.
    id: int
    #: Its kind, one of KINDS.
    type: str
    #: When it happened, in seconds since the epoch.
    timestamp: float
    session_id: str | None = None
    #: More fields of its JSON (``sessionName``, ``exitCode``, ...).
    fields: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The event as /api/events sends it: ``{type, timestamp, sessionId?, ...}``."""
        body: dict[str, Any] = {"type": self.type, "timestamp": _iso(self.timestamp)}
        if self.session_id is not None:
            body["sessionId"] = self.session_id
        body.update(self.fields)
        return body


class SessionEvents:
    """The daemon's stream of session events, handed to subscribers as it happens."""

    log = Logger()

    def __init__(self, clock: Callable[[], float] = time.time, keep: int = KEEP) -> None:
        self._clock = clock
        self._next = 1
        self._subscribers: list[Callable[[SessionEvent], None]] = []
        self._kept: deque[SessionEvent] = deque(maxlen=keep)

    @property
    def last_id(self) -> int:
        """The id of the last event published (0 before the first)."""
        return self._next - 1

    def subscribe(self, subscriber: Callable[[SessionEvent], None]) -> None:
        """Call subscriber with every event from now on."""
        self._subscribers.append(subscriber)

    def since(self, last_id: int) -> list[SessionEvent]:
        """The kept events after last_id, oldest first: every kept one for an id this stream
        never gave (one of an earlier daemon, whose ids started at 1 too)."""
        if last_id > self.last_id:
            return list(self._kept)
        # Ids are consecutive: the events after last_id are the last (last_id - newest) kept.
        count = self.last_id - last_id
        if count <= 0:
            return []
        kept = list(self._kept)
        return kept[-count:] if count < len(kept) else kept

    def unsubscribe(self, subscriber: Callable[[SessionEvent], None]) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def publish(self, kind: str, session_id: str | None = None, **fields: Any) -> SessionEvent:
        """Make the next event and hand it to every subscriber."""
        event = SessionEvent(self._next, kind, self._clock(), session_id, fields)
        self._next += 1
        self._kept.append(event)
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                # One broken subscriber must not keep the event from the others.
                self.log.failure("a subscriber of session events failed; dropping it")
                self.unsubscribe(subscriber)
        return event

    # -- what sessions report ----------------------------------------------------------

    def started(self, info: SessionInfo) -> SessionEvent:
        """A session's program runs."""
        return self.publish(SESSION_START, info.id, sessionName=info.name, command=" ".join(info.command))

    def exited(self, info: SessionInfo) -> SessionEvent:
        """A session has ended (exitCode is null when nobody knows it)."""
        fields: dict[str, Any] = {
            "sessionName": info.name,
            "command": " ".join(info.command),
            "exitCode": info.exit_code,
        }
        began = _seconds(info.started_at)
        if began is not None:
            fields["duration"] = max(0, round((self._clock() - began) * 1000))
        return self.publish(SESSION_EXIT, info.id, **fields)
