"""Tests for vibetwist.cluster.registry: host records, the beacon and the directory, on a clock.

The bucket here is an in-memory one with the KeyValue calls the registry makes;
tests.test_cluster_host runs the same code against a real nats-server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.cluster.registry import (
    BUCKET,
    RECORD_TTL,
    HostBeacon,
    HostDirectory,
    HostIdInUse,
    HostRecord,
    HostView,
    iso_now,
    new_boot,
)


class MemoryBucket:
    """A KV bucket in memory: puts are seen by every watcher at once."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.revision = 0
        self._watchers: list[Callable[[str, bytes | None], None]] = []

    def put(self, key: str, value: bytes) -> Deferred[int]:
        self.revision += 1
        self.values[key] = value
        for watcher in list(self._watchers):
            watcher(key, value)
        return succeed(self.revision)

    def get(self, key: str) -> Deferred[bytes | None]:
        return succeed(self.values.get(key))

    def delete(self, key: str) -> Deferred[None]:
        self.values.pop(key, None)
        for watcher in list(self._watchers):
            watcher(key, None)
        return succeed(None)

    def watch_all(self, callback: Callable[[str, bytes | None], None]) -> Callable[[], None]:
        for key, value in list(self.values.items()):
            callback(key, value)
        self._watchers.append(callback)
        return lambda: self._watchers.remove(callback)


class MemoryLink:
    """The key_value call of a NATSLink, over one MemoryBucket."""

    def __init__(self, bucket: MemoryBucket) -> None:
        self.bucket = bucket
        self.opened: list[tuple[str, float, int]] = []

    def key_value(self, bucket: str, ttl: float, history: int = 1) -> Deferred[Any]:
        self.opened.append((bucket, ttl, history))
        return succeed(self.bucket)


def record(**changes: Any) -> HostRecord:
    fields: dict[str, Any] = {
        "host": "box",
        "boot": "b1",
        "version": "0.1.0",
        "started_at": "2026-01-01T00:00:00.000Z",
        "heartbeat": "2026-01-01T00:00:02.000Z",
        "running": 2,
        "exited": 1,
        "status": "up",
    }
    fields.update(changes)
    return HostRecord(**fields)


class RecordTests(SynchronousTestCase):
    """The KV value of a host."""

    def test_json(self) -> None:
        """A record is the JSON object of the registry, and reads back equal."""
        value = record()
        self.assertEqual(
            json.loads(value.to_json()),
            {
                "host": "box",
                "boot": "b1",
                "version": "0.1.0",
                "startedAt": "2026-01-01T00:00:00.000Z",
                "heartbeat": "2026-01-01T00:00:02.000Z",
                "sessions": {"running": 2, "exited": 1},
                "status": "up",
            },
        )
        self.assertEqual(HostRecord.from_json(value.to_json()), value)

    @given(
        st.sampled_from(["host", "boot", "version", "startedAt", "heartbeat", "status", "sessions"]),
        st.sampled_from([None, 5, [], True, {}]),
    )
    def test_bad_values_refused(self, name: str, junk: object) -> None:
        """A record with a field missing or of the wrong kind is a ValueError."""
        value = json.loads(record().to_json())
        if junk is None:
            del value[name]
        else:
            value[name] = junk
        with self.assertRaises(ValueError):
            HostRecord.from_json(json.dumps(value).encode())

    def test_not_json(self) -> None:
        """Bytes that are no JSON object are a ValueError."""
        for raw in [b"", b"\xff", b"[]"]:
            self.assertRaises(ValueError, HostRecord.from_json, raw)
        for sessions in [{"running": -1, "exited": 0}, {"running": True, "exited": 0}, {"running": 1}]:
            value = dict(json.loads(record().to_json()), sessions=sessions)
            self.assertRaises(ValueError, HostRecord.from_json, json.dumps(value).encode())
        value = dict(json.loads(record().to_json()), status="busy")
        self.assertRaises(ValueError, HostRecord.from_json, json.dumps(value).encode())

    def test_view_json(self) -> None:
        """A host's view is the /api/hosts item."""
        self.assertEqual(
            HostView("box", "down", record()).to_json(),
            {
                "host": "box",
                "status": "down",
                "sessions": {"running": 2, "exited": 1},
                "lastHeartbeat": "2026-01-01T00:00:02.000Z",
                "version": "0.1.0",
                "startedAt": "2026-01-01T00:00:00.000Z",
            },
        )


class BootTests(SynchronousTestCase):
    """A boot id belongs to one process, exec or not."""

    def test_same_process_same_boot(self) -> None:
        """The boot id is the same each time a process asks, across an exec too, and another
        process's differs."""
        here = new_boot()
        self.assertEqual(new_boot(), here)
        code = "import os, sys; os.execv(sys.executable, [sys.executable, '-c', {!r}])"
        inner = "from vibetwist.cluster.registry import new_boot; print(new_boot())"
        before = "from vibetwist.cluster.registry import new_boot; print(new_boot(), flush=True); "
        out = subprocess.run(
            [sys.executable, "-c", before + code.format(inner)], capture_output=True, text=True, check=True
        )
        first, second = out.stdout.split()
        self.assertEqual(first, second)
        self.assertNotEqual(first, here)


class BeaconTests(SynchronousTestCase):
    """A host's record: put at start, at every heartbeat, and "stopped" at a clean stop."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.bucket = MemoryBucket()
        self.link = MemoryLink(self.bucket)
        self.counts = {"starting": 1, "running": 2, "exited": 3}

    def beacon(self, boot: str = "mine") -> HostBeacon:
        return HostBeacon(
            self.clock,
            self.link,
            "box",
            lambda: dict(self.counts),
            "0.1.0",
            wall=self.clock.seconds,
            boot=boot,
        )

    def current(self) -> HostRecord:
        return HostRecord.from_json(self.bucket.values["box"])

    def test_heartbeat_and_stop(self) -> None:
        """The record is put at once with the counts, every 2 s anew, and stopped at the end."""
        beacon = self.beacon()
        self.successResultOf(beacon.start())
        self.assertEqual(self.link.opened, [(BUCKET, RECORD_TTL, 1)])
        first = self.current()
        self.assertEqual((first.running, first.exited, first.status, first.boot), (3, 3, "up", "mine"))
        self.counts["exited"] = 4
        self.clock.advance(2)
        second = self.current()
        self.assertEqual(second.exited, 4)
        self.assertNotEqual(second.heartbeat, first.heartbeat)
        self.assertEqual(second.started_at, first.started_at)
        self.successResultOf(beacon.stop())
        self.assertEqual(self.current().status, "stopped")
        revision = self.bucket.revision
        self.clock.advance(10)
        self.assertEqual(self.bucket.revision, revision)

    def test_live_duplicate_refused(self) -> None:
        """A record of another boot that changes within a heartbeat and a half is a live host."""
        other = self.beacon("theirs")
        self.successResultOf(other.start())
        d = self.beacon().claim()
        self.assertNoResult(d)
        self.clock.advance(3)
        failure = self.failureResultOf(d, HostIdInUse)
        self.assertEqual(str(failure.value), "host id box is in use")

    def test_dead_or_stopped_record_claimed(self) -> None:
        """A record of another boot that does not change (its host died) is taken over after a
        heartbeat and a half; a stopped one at once."""
        self.bucket.put("box", record(boot="dead").to_json())
        beacon = self.beacon()
        d = beacon.start()
        self.assertNoResult(d)
        self.clock.advance(3)
        self.successResultOf(d)
        self.assertEqual(self.current().boot, "mine")
        self.bucket.put("box", record(boot="gone", status="stopped").to_json())
        self.successResultOf(self.beacon("new").start())
        self.assertEqual(self.current().boot, "new")


class DirectoryTests(SynchronousTestCase):
    """A gateway's view of the registry, by its own clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.bucket = MemoryBucket()
        self.directory = HostDirectory(self.clock, MemoryLink(self.bucket), wall=self.clock.seconds)
        self.changes: list[tuple[str, str]] = []
        self.directory.when_changed(lambda view: self.changes.append((view.name, view.status)))

    def put(self, name: str, **changes: Any) -> None:
        changes.setdefault("heartbeat", iso_now(self.clock.seconds))
        self.bucket.put(name, record(host=name, **changes).to_json())

    def status(self, name: str) -> str | None:
        view = self.directory.get(name)
        return view.status if view is not None else None

    def test_up_down_up(self) -> None:
        """Up while revisions arrive, down 6 s after the last one, up again with a new one."""
        self.successResultOf(self.directory.start())
        self.put("box")
        self.assertEqual(self.status("box"), "up")
        self.clock.advance(4)
        self.put("box", running=5)
        self.clock.advance(4)
        self.assertEqual(self.status("box"), "up")
        self.clock.advance(2.5)
        self.assertEqual(self.status("box"), "down")
        self.put("box", boot="b2")
        self.assertEqual(self.status("box"), "up")
        self.assertEqual(self.changes, [("box", "up"), ("box", "up"), ("box", "down"), ("box", "up")])
        self.assertEqual(self.directory.get("box").record.boot, "b2")  # type: ignore[union-attr]

    def test_stopped(self) -> None:
        """A host that said it stopped is stopped, and stays so."""
        self.successResultOf(self.directory.start())
        self.put("box")
        self.put("box", status="stopped")
        self.clock.advance(10)
        self.assertEqual(self.status("box"), "stopped")
        self.assertEqual(self.directory.up(), [])

    def test_first_sight_of_an_old_record(self) -> None:
        """A record the watch replays at start is up only if its heartbeat is recent."""
        self.put("old", heartbeat=iso_now(lambda: self.clock.seconds() - 60))
        self.put("new")
        self.successResultOf(self.directory.start())
        self.assertEqual(
            [(v.name, v.status) for v in self.directory.hosts()], [("new", "up"), ("old", "down")]
        )
        self.assertEqual([v.name for v in self.directory.up()], ["new"])

    def test_same_revision_again_is_no_heartbeat(self) -> None:
        """The same record delivered again (a watch set up anew) does not keep a host up."""
        self.successResultOf(self.directory.start())
        self.put("box")
        raw = self.bucket.values["box"]
        self.clock.advance(5)
        self.bucket.put("box", raw)
        self.clock.advance(1.5)
        self.assertEqual(self.status("box"), "down")

    def test_deleted_and_junk(self) -> None:
        """A deleted record drops its host; a value that is no record is ignored."""
        self.successResultOf(self.directory.start())
        self.put("box")
        self.bucket.put("junk", b"not json")
        self.assertIsNone(self.directory.get("junk"))
        self.bucket.delete("box")
        self.assertEqual(self.directory.hosts(), [])
        self.assertEqual(self.changes[-1], ("box", "down"))

    def test_stop(self) -> None:
        """After stop, records are no longer followed and no timer is left."""
        self.successResultOf(self.directory.start())
        self.put("box")
        self.directory.stop()
        self.put("other")
        self.assertIsNone(self.directory.get("other"))
        self.assertEqual(self.clock.getDelayedCalls(), [])
