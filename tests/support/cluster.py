"""A directory of hosts made by hand, for testing a gateway without a registry.

L{FakeDirectory} holds L{FakeView} values (what a gateway knows of a host) that a test
sets and changes; the gateway reads them the way it reads a
L{vibetwist.cluster.registry.HostDirectory}.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class FakeRecord:
    host: str
    boot: str = "boot"
    version: str = "test"
    started_at: str = ""
    heartbeat: str = ""
    running: int = 0
    exited: int = 0
    status: str = "up"


@dataclass(frozen=True)
class FakeView:
    name: str
    status: str
    record: FakeRecord

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "status": self.status,
            "sessions": {"running": self.record.running, "exited": self.record.exited},
            "lastHeartbeat": self.record.heartbeat,
            "version": self.record.version,
            "startedAt": self.record.started_at,
        }


class FakeDirectory:
    """Hosts a test declares up, down or stopped, with their session counts."""

    def __init__(self) -> None:
        self._views: dict[str, FakeView] = {}
        self._callbacks: list[Callable[[Any], None]] = []

    def set(self, name: str, status: str = "up", running: int = 0, heartbeat: str | None = None) -> FakeView:
        """Make (or change) a host; its callbacks hear of it."""
        old = self._views.get(name)
        record = old.record if old is not None else FakeRecord(name, started_at=_now())
        record = replace(record, running=running, heartbeat=heartbeat or _now())
        view = FakeView(name, status, record)
        self._views[name] = view
        for callback in list(self._callbacks):
            callback(view)
        return view

    def hosts(self) -> list[FakeView]:
        return sorted(self._views.values(), key=lambda v: v.name)

    def get(self, name: str) -> FakeView | None:
        return self._views.get(name)

    def up(self) -> list[FakeView]:
        return [v for v in self.hosts() if v.status == "up"]

    def when_changed(self, callback: Callable[[Any], None]) -> None:
        self._callbacks.append(callback)
