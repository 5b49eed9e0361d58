# -*- test-case-name: tests.test_lifecycle -*-
"""The life of a session, in one table.

::

    starting --spawned--> running --ended--> exited --removed--> removed
        \\----------------ended---------------/

``ended`` from ``starting`` is a program that failed to start or was killed
while it waited to. Every status a session ever has is set here: other code
asks the lifecycle to move, and learns the new status from its callback.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from twisted.internet.defer import Deferred

from vibetwist.model.info import Status


class Stage(Enum):
    """Where a session is in its life; ``REMOVED`` is never written to disk."""

    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"
    REMOVED = "removed"


#: (stage, event) -> the stage it leads to. Anything else leaves the stage as it is.
TRANSITIONS: dict[tuple[Stage, str], Stage] = {
    (Stage.STARTING, "spawned"): Stage.RUNNING,
    (Stage.STARTING, "ended"): Stage.EXITED,
    (Stage.RUNNING, "ended"): Stage.EXITED,
    (Stage.EXITED, "removed"): Stage.REMOVED,
}

#: The status session.json shows for each stage.
STATUS = {
    Stage.STARTING: Status.STARTING,
    Stage.RUNNING: Status.RUNNING,
    Stage.EXITED: Status.EXITED,
    Stage.REMOVED: Status.EXITED,
}


class Lifecycle:
    """One session's stage, moved only along :data:`TRANSITIONS`."""

    def __init__(self, status: Status, changed: Callable[[Status], None] = lambda status: None) -> None:
        self.stage = Stage(status.value)
        self._changed = changed
        self._ended: list[Deferred[None]] = []

    @property
    def status(self) -> Status:
        return STATUS[self.stage]

    @property
    def live(self) -> bool:
        """True while the program is starting or running."""
        return self.stage in (Stage.STARTING, Stage.RUNNING)

    def move(self, event: str) -> bool:
        """Take event (``spawned``, ``ended``, ``removed``); False if it does not apply now."""
        after = TRANSITIONS.get((self.stage, event))
        if after is None:
            return False
        before = self.status
        self.stage = after
        if self.status is not before:
            self._changed(self.status)
        if after is Stage.EXITED:
            ended, self._ended = self._ended, []
            for d in ended:
                d.callback(None)
        return True

    def when_ended(self) -> Deferred[None]:
        """A Deferred that fires once the session has exited (at once if it has)."""
        d: Deferred[None] = Deferred()
        if self.live:
            self._ended.append(d)
        else:
            d.callback(None)
        return d
