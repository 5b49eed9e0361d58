# -*- test-case-name: tests.test_websocket -*-
"""Screen snapshots of a session, made once per change and shared by every subscriber.

A screen changes many times a second while a program writes. Subscribers of
``/buffers`` get a new snapshot once the screen has been quiet for
``QUIET`` seconds, and at least every ``MAX_WAIT`` seconds while it keeps
changing, so a busy screen never looks frozen. Each snapshot is encoded once,
however many subscribers there are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import Interface

from vibetwist.interfaces import ISession
from vibetwist.model.snapshot import encode, encode_buffers_frame

#: Seconds of quiet before a changed screen is sent.
QUIET = 0.05
#: Longest time a changed screen waits while it keeps changing.
MAX_WAIT = 0.25


class ISnapshotSubscriber(Interface):
    """Gets a session's snapshot frames."""

    def snapshot(session_id: str, frame: Any) -> None:
        """A new snapshot frame (as made by the hub's ``prepare``) of the session's screen."""


class SnapshotHub:
    """The /buffers snapshots of one session."""

    def __init__(
        self,
        session: ISession,
        reactor: Any,
        prepare: Callable[[bytes], Any] = lambda frame: frame,
        on_empty: Callable[[SnapshotHub], None] = lambda hub: None,
    ) -> None:
        self.session = session
        self._reactor = reactor
        self._prepare = prepare
        self._on_empty = on_empty
        self.subscribers: set[Any] = set()
        self._timer: Any = None
        self._first_change: float | None = None
        self._frame: Any = None

    def add(self, subscriber: Any) -> None:
        if not self.subscribers:
            self.session.feed.watch(self.changed)
        self.subscribers.add(subscriber)

    def remove(self, subscriber: Any) -> None:
        self.subscribers.discard(subscriber)
        if not self.subscribers:
            self.session.feed.unwatch(self.changed)
            self._cancel()
            self._on_empty(self)

    def frame(self) -> Any:
        """The snapshot frame of the screen as it is now (made at most once per change)."""
        if self._frame is None:
            snapshot = encode(self.session.screen.snapshot())
            self._frame = self._prepare(encode_buffers_frame(self.session.id, snapshot))
        return self._frame

    def changed(self) -> None:
        """The screen changed: send it after a quiet spell, or at the latest after MAX_WAIT."""
        self._frame = None
        now = self._reactor.seconds()
        if self._first_change is None:
            self._first_change = now
        due = min(now + QUIET, self._first_change + MAX_WAIT)
        if self._timer is None:
            self._timer = self._reactor.callLater(due - now, self._send)
        else:
            self._timer.reset(max(0.0, due - now))

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._first_change = None

    def _send(self) -> None:
        self._timer = None
        self._first_change = None
        frame = self.frame()
        for subscriber in list(self.subscribers):
            subscriber.snapshot(self.session.id, frame)
