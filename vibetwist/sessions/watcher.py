# -*- test-case-name: tests.test_external_session -*-
"""Finds session folders appearing in and vanishing from the control directory, and file changes in them.

The control directory is watched with inotify where Twisted supports it
(a new session appears at once, a line of output reaches viewers at once),
and rescanned on a timer in any case, which also notices a program whose
process is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from os import fsdecode
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IReactorFDSet
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.filepath import FilePath

#: Seconds between rescans when inotify watches the control dir (pid checks, missed events).
SLOW_SCAN = 1.0
#: Seconds between rescans without inotify.
FAST_SCAN = 0.1


class ControlDirWatcher:
    """Finds sessions appearing in and vanishing from the control dir, and keeps them current."""

    log = Logger()

    def __init__(
        self,
        root: Path,
        reactor: Any,
        rescan: Callable[[], None],
        changed: Callable[[str, str], None],
        use_inotify: bool = True,
    ) -> None:
        self._use_inotify = use_inotify
        self._root = Path(root)
        self._reactor = reactor
        self._rescan = rescan
        self._changed = changed
        self._notifier: Any = None
        self._inotify: Any = None
        self._watched: set[str] = set()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self.inotify = False

    def start(self) -> None:
        self.inotify = self._start_inotify()
        self._loop.start(SLOW_SCAN if self.inotify else FAST_SCAN, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        if self._notifier is not None:
            self._notifier.connectionLost(None)
            self._notifier = None

    def _start_inotify(self) -> bool:
        if not self._use_inotify or not IReactorFDSet.providedBy(self._reactor):
            return False
        try:
            from twisted.internet import inotify

            notifier = inotify.INotify(self._reactor)
            notifier.startReading()
            mask = inotify.IN_CREATE | inotify.IN_MOVED_TO | inotify.IN_DELETE | inotify.IN_MOVED_FROM
            notifier.watch(FilePath(str(self._root)), mask, callbacks=[self._root_event])
        except Exception as e:  # no inotify here (not Linux, or out of watches): poll instead
            self.log.info("watching {path} by polling: {error}", path=str(self._root), error=e)
            return False
        self._notifier = notifier
        self._inotify = inotify
        return True

    def watch(self, session_id: str) -> None:
        """Follow the files of one session folder as they change."""
        if self._notifier is None or session_id in self._watched:
            return
        inotify = self._inotify
        mask = inotify.IN_MODIFY | inotify.IN_MOVED_TO | inotify.IN_CLOSE_WRITE | inotify.IN_CREATE
        try:
            self._notifier.watch(
                FilePath(str(self._root / session_id)),
                mask,
                # Twisted names the file in bytes (a child made from the event's raw name).
                callbacks=[lambda _, path, __: self._session_event(session_id, fsdecode(path.basename()))],
            )
        except Exception as e:
            self.log.warn("cannot watch {id}: {error}", id=session_id, error=e)
            return
        self._watched.add(session_id)

    def unwatch(self, session_id: str) -> None:
        if self._notifier is not None and session_id in self._watched:
            self._watched.discard(session_id)
            try:
                self._notifier.ignore(FilePath(str(self._root / session_id)))
            except KeyError:
                pass

    def _root_event(self, _: Any, path: Any, mask: int) -> None:
        self._guarded(self._rescan)

    def _session_event(self, session_id: str, name: str) -> None:
        self._guarded(lambda: self._changed(session_id, name))

    def _tick(self) -> None:
        self._guarded(self._rescan)

    def _guarded(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            self.log.failure("watching the control dir failed")
