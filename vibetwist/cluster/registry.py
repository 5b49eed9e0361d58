# -*- test-case-name: tests.test_cluster_registry,tests.test_cluster_host -*-
"""The registry of hosts: one record per host in the JetStream KV bucket ``vibetwist_hosts``.

A host (:class:`HostBeacon`) puts its record when it starts and again every
:data:`HEARTBEAT` seconds, with its session counts read at that moment, and
puts it with ``"status": "stopped"`` when it stops cleanly. The bucket keeps a
record for :data:`RECORD_TTL` at most, so a host that is gone for good drops out.

A host's boot id stays the same across a restart in place (the same process
execs a new daemon), so it takes its own record back at once. A host refuses a
name another live host holds: when a record of the name with
another boot id exists, the host reads it again a heartbeat later; a record
that changed meanwhile belongs to a live host (:class:`HostIdInUse`). This
compares two readings of the record, not its time stamp with this machine's
clock, so machines whose clocks differ do not matter, and a host killed with
``kill -9`` may start again at once under its name.

A gateway (:class:`HostDirectory`) watches the bucket. A host is ``up`` while
a new revision of its record arrived less than ``down_after`` seconds ago by
the gateway's own monotonic clock, ``down`` after that, and ``stopped`` once it
said so. A record seen for the first time (the watch's first replay of the
bucket) counts as fresh only if its heartbeat time stamp is recent by this
machine's clock; from then on only the arrival of new revisions counts.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

from vibetwist.errors import VibetwistError

#: The KV bucket of host records.
BUCKET = "vibetwist_hosts"
#: Seconds a record stays in the bucket without being put again.
RECORD_TTL = 3600.0
#: Seconds between two puts of a host's record.
HEARTBEAT = 2.0
#: Seconds without a new revision after which a host is down.
DOWN_AFTER = 6.0

_log = Logger()


class HostIdInUse(VibetwistError):
    """Another live host holds this host id."""

    def __init__(self, host: str) -> None:
        super().__init__(f"host id {host} is in use")
        self.host = host


def iso_now(wall: Callable[[], float]) -> str:
    """The time wall() gives, as an ISO 8601 UTC time stamp with milliseconds."""
    moment = datetime.datetime.fromtimestamp(wall(), datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float | None:
    """The Unix time of an ISO 8601 time stamp, None if it is not one."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def new_boot() -> str:
    """An id of one run of a daemon, different for every process.

    Made from the machine's boot id, the process id and the process's start time,
    which an exec keeps: a daemon restarted in place (same process) keeps its boot
    id and takes its record back at once. Random where /proc cannot tell them.
    """
    try:
        machine = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path("/proc/self/stat").read_text()
        started = stat[stat.rfind(")") + 2 :].split()[19]
    except (OSError, IndexError):
        return secrets.token_hex(8)
    return hashlib.sha256(f"{machine}:{os.getpid()}:{started}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class HostRecord:
    """A host's record in the registry (the KV value)."""

    host: str
    boot: str
    version: str
    started_at: str
    heartbeat: str
    running: int
    exited: int
    status: str  # "up" | "stopped"

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "host": self.host,
                "boot": self.boot,
                "version": self.version,
                "startedAt": self.started_at,
                "heartbeat": self.heartbeat,
                "sessions": {"running": self.running, "exited": self.exited},
                "status": self.status,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> HostRecord:
        """The record raw holds; ValueError if it is not one."""
        try:
            value = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"not a host record: {e}") from None
        if not isinstance(value, dict):
            raise ValueError("not a host record: not an object")
        sessions = value.get("sessions")
        if not isinstance(sessions, dict):
            raise ValueError("not a host record: no sessions")
        texts = {}
        for name in ("host", "boot", "version", "startedAt", "heartbeat", "status"):
            if not isinstance(value.get(name), str):
                raise ValueError(f"not a host record: {name} is not a string")
            texts[name] = value[name]
        counts = {}
        for name in ("running", "exited"):
            count = sessions.get(name)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ValueError(f"not a host record: sessions.{name} is not a count")
            counts[name] = count
        if texts["status"] not in ("up", "stopped"):
            raise ValueError("not a host record: status is neither up nor stopped")
        return cls(
            host=texts["host"],
            boot=texts["boot"],
            version=texts["version"],
            started_at=texts["startedAt"],
            heartbeat=texts["heartbeat"],
            running=counts["running"],
            exited=counts["exited"],
            status=texts["status"],
        )


@dataclass(frozen=True)
class HostView:
    """What a gateway knows of one host."""

    name: str
    status: str  # "up" | "down" | "stopped"
    record: HostRecord

    def to_json(self) -> dict[str, Any]:
        """The host as GET /api/hosts lists it."""
        return {
            "host": self.name,
            "status": self.status,
            "sessions": {"running": self.record.running, "exited": self.record.exited},
            "lastHeartbeat": self.record.heartbeat,
            "version": self.record.version,
            "startedAt": self.record.started_at,
        }


class KeyValue(Protocol):
    """The part of a NATSLink's KeyValue the registry uses."""

    def put(self, key: str, value: bytes) -> Deferred[int]: ...
    def get(self, key: str) -> Deferred[bytes | None]: ...
    def watch_all(self, callback: Callable[[str, bytes | None], None]) -> Callable[[], None]: ...


class Link(Protocol):
    """The part of a NATSLink the registry uses."""

    def key_value(self, bucket: str, ttl: float, history: int = 1) -> Deferred[Any]: ...


class HostBeacon:
    """A host's record in the registry: put at start, every heartbeat, and "stopped" at a clean stop.

    counts() gives the host's sessions by status (``{"running": N, "exited": M, ...}``);
    wall() the time of day (the record's time stamps).
    """

    def __init__(
        self,
        reactor: Any,
        link: Link,
        host: str,
        counts: Callable[[], dict[str, int]],
        version: str,
        *,
        wall: Callable[[], float] | None = None,
        interval: float = HEARTBEAT,
        boot: str | None = None,
    ) -> None:
        self._reactor = reactor
        self._link = link
        self.host = host
        self._counts = counts
        self._version = version
        self._wall = wall if wall is not None else time.time
        self._interval = interval
        self.boot = boot if boot is not None else new_boot()
        self._started_at = iso_now(self._wall)
        self._kv: KeyValue | None = None
        self._loop: LoopingCall | None = None
        self._stopped = False
        self._claimed = False
        self._failing = False

    def record(self, status: str = "up") -> HostRecord:
        """The host's record now."""
        counts = self._counts()
        return HostRecord(
            host=self.host,
            boot=self.boot,
            version=self._version,
            started_at=self._started_at,
            heartbeat=iso_now(self._wall),
            running=counts.get("running", 0) + counts.get("starting", 0),
            exited=counts.get("exited", 0),
            status=status,
        )

    def claim(self) -> Deferred[None]:
        """Fire once the host id is this daemon's; HostIdInUse if a live host holds it."""
        return ensureDeferred(self._claim())

    def start(self) -> Deferred[None]:
        """Claim the host id (unless claimed already), put the record, and put it again every
        heartbeat."""
        return ensureDeferred(self._start())

    def stop(self) -> Deferred[None]:
        """Stop the heartbeat and put the record with status "stopped"."""
        return ensureDeferred(self._stop())

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._link.key_value(BUCKET, RECORD_TTL, 1)
        return self._kv

    async def _claim(self) -> None:
        if self._claimed:
            return
        kv = await self._bucket()
        first = _read(await kv.get(self.host))
        if first is not None and first.boot != self.boot and first.status != "stopped":
            # Another boot's record: its host is alive if the record changes within a heartbeat.
            await deferLater(self._reactor, self._interval * 1.5, lambda: None)
            second = _read(await kv.get(self.host))
            if second is not None and second.boot != self.boot and second.status == "up" and second != first:
                raise HostIdInUse(self.host)
        self._claimed = True

    async def _start(self) -> None:
        await self._claim()
        if self._stopped:
            return
        kv = await self._bucket()
        await kv.put(self.host, self.record().to_json())
        self._loop = LoopingCall(self._beat)
        self._loop.clock = self._reactor
        self._loop.start(self._interval, now=False)

    def _beat(self) -> None:
        if self._kv is None or self._stopped:
            return
        d = self._kv.put(self.host, self.record().to_json())
        d.addErrback(
            lambda f: _log.warn("registry: heartbeat of {host} not put: {f.value}", host=self.host, f=f)
        )

    async def _stop(self) -> None:
        self._stopped = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._kv is not None and self._claimed:
            await self._kv.put(self.host, self.record("stopped").to_json())


def _read(raw: bytes | None) -> HostRecord | None:
    if raw is None:
        return None
    try:
        return HostRecord.from_json(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class _Seen:
    record: HostRecord
    status: str


class HostDirectory:
    """A gateway's view of the registry (see the module's text)."""

    def __init__(
        self,
        reactor: Any,
        link: Link,
        down_after: float = DOWN_AFTER,
        clock: Any = None,
        wall: Callable[[], float] | None = None,
    ) -> None:
        self._reactor = reactor
        self._link = link
        self._down_after = down_after
        self._clock = clock if clock is not None else reactor
        self._wall = wall if wall is not None else time.time
        self._hosts: dict[str, _Seen] = {}
        self._timers: dict[str, IDelayedCall] = {}
        self._listeners: list[Callable[[HostView], None]] = []
        self._stop_watch: Callable[[], None] | None = None

    def start(self) -> Deferred[None]:
        """Start watching the bucket; fires once the watch is set up."""

        def watch(kv: KeyValue) -> None:
            self._stop_watch = kv.watch_all(self._changed)

        d: Deferred[Any] = self._link.key_value(BUCKET, RECORD_TTL, 1)
        return d.addCallback(watch)

    def stop(self) -> None:
        if self._stop_watch is not None:
            self._stop_watch()
            self._stop_watch = None
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()

    def when_changed(self, callback: Callable[[HostView], None]) -> None:
        """Call callback with a host's view whenever its status or its record changes."""
        self._listeners.append(callback)

    def hosts(self) -> list[HostView]:
        """Every host known, sorted by name."""
        return [self._view(name) for name in sorted(self._hosts)]

    def get(self, name: str) -> HostView | None:
        return self._view(name) if name in self._hosts else None

    def up(self) -> list[HostView]:
        """The hosts that are up, sorted by name."""
        return [view for view in self.hosts() if view.status == "up"]

    def _view(self, name: str) -> HostView:
        seen = self._hosts[name]
        return HostView(name, seen.status, seen.record)

    def _changed(self, key: str, value: bytes | None) -> None:
        if value is None:
            seen = self._hosts.pop(key, None)
            self._cancel(key)
            if seen is not None and seen.status == "up":
                self._tell(HostView(key, "down", seen.record))
            return
        record = _read(value)
        if record is None:
            _log.warn("registry: the record of {key} is not one; ignored", key=key)
            return
        before = self._hosts.get(key)
        if before is not None and before.record == record:
            return  # the same revision again (a watch set up anew): nothing new
        if record.status == "stopped":
            status = "stopped"
            self._cancel(key)
        elif before is None and not self._recent(record):
            status = "down"
        else:
            status = "up"
            self._cancel(key)
            self._timers[key] = self._clock.callLater(self._down_after, self._expire, key)
        self._hosts[key] = _Seen(record, status)
        self._tell(HostView(key, status, record))

    def _recent(self, record: HostRecord) -> bool:
        beat = parse_iso(record.heartbeat)
        return beat is not None and self._wall() - beat < self._down_after

    def _expire(self, key: str) -> None:
        self._timers.pop(key, None)
        seen = self._hosts.get(key)
        if seen is not None and seen.status == "up":
            self._hosts[key] = replace(seen, status="down")
            self._tell(self._view(key))

    def _cancel(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _tell(self, view: HostView) -> None:
        for callback in list(self._listeners):
            try:
                callback(view)
            except Exception:
                _log.failure("registry: a listener failed on {host}", host=view.name)
