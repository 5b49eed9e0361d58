"""Tests for the daemon's session events: L{vibetwist.sessions.events} fed by the sessions'
lifecycles, and ``GET /api/events`` (L{vibetwist.server.eventstream}), in memory and over
real sockets. See docs/protocol.md, section 2, "VibeTunnel's other routes"."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from tests.support.daemon import poll
from tests.support.e2e import DaemonTestCase
from tests.support.login import LoginDaemonTestCase
from tests.support.sessions import Harness
from vibetwist.model.info import SessionInfo, Status
from vibetwist.server.eventstream import CONNECTED, HEARTBEAT, MAX_HELD, EventStream, last_event_id, sse_event
from vibetwist.sessions.events import SESSION_EXIT, SESSION_START, SessionEvent, SessionEvents
from vibetwist.testing import FakeLauncher, pump


def info(**fields: Any) -> SessionInfo:
    values: dict[str, Any] = dict(
        id="s1",
        name="build",
        command=("make", "-j2"),
        working_dir="/",
        status=Status.RUNNING,
        started_at="1970-01-01T00:00:10.000Z",
    )
    values.update(fields)
    return SessionInfo(**values)


class SessionEventsTests(SynchronousTestCase):
    """The stream of events: numbering, subscribers, and what each kind carries."""

    def test_ids_count_up(self) -> None:
        """Each event has the next id, from 1; last_id is the latest."""
        events = SessionEvents(clock=lambda: 0.0)
        self.assertEqual(events.last_id, 0)
        ids = [events.publish("test").id for _ in range(3)]
        self.assertEqual((ids, events.last_id), ([1, 2, 3], 3))

    def test_subscribers(self) -> None:
        """Every subscriber gets every event from when it subscribes until it unsubscribes."""
        events = SessionEvents(clock=lambda: 0.0)
        first: list[SessionEvent] = []
        second: list[SessionEvent] = []
        events.publish("before")
        events.subscribe(first.append)
        events.subscribe(second.append)
        events.publish("both")
        events.unsubscribe(first.append)
        events.publish("second only")
        self.assertEqual([e.type for e in first], ["both"])
        self.assertEqual([e.type for e in second], ["both", "second only"])

    def test_kept_for_reconnecting_clients(self) -> None:
        """since(N) is the kept events after id N, oldest first; when some of them are no
        longer kept, those still kept; for an id this stream never gave (an earlier
        daemon's), every kept one."""
        events = SessionEvents(clock=lambda: 0.0, keep=5)
        for _ in range(8):
            events.publish("test")
        self.assertEqual([e.id for e in events.since(6)], [7, 8])
        self.assertEqual(events.since(8), [])
        self.assertEqual([e.id for e in events.since(1)], [4, 5, 6, 7, 8])
        self.assertEqual([e.id for e in events.since(0)], [4, 5, 6, 7, 8])
        self.assertEqual([e.id for e in events.since(99)], [4, 5, 6, 7, 8])
        self.assertEqual(SessionEvents().since(0), [])

    def test_broken_subscriber_dropped(self) -> None:
        """A subscriber that raises is dropped and logged; the others still get the event."""
        events = SessionEvents(clock=lambda: 0.0)
        got: list[SessionEvent] = []

        def broken(event: SessionEvent) -> None:
            raise RuntimeError("boom")

        events.subscribe(broken)
        events.subscribe(got.append)
        events.publish("one")
        events.publish("two")
        self.assertEqual([e.type for e in got], ["one", "two"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_json(self) -> None:
        """An event's JSON has its type, an ISO 8601 UTC timestamp with milliseconds, the
        session's id and the event's own fields."""
        event = SessionEvent(7, SESSION_START, 1.5, "s1", {"sessionName": "x"})
        self.assertEqual(
            event.to_json(),
            {
                "type": "session-start",
                "timestamp": "1970-01-01T00:00:01.500Z",
                "sessionId": "s1",
                "sessionName": "x",
            },
        )
        self.assertNotIn("sessionId", SessionEvent(1, "test", 0.0).to_json())

    def test_started_and_exited(self) -> None:
        """session-start carries the name and the command line; session-exit also the exit
        code and how long the session lasted, in milliseconds, from its startedAt."""
        now = [12.25]
        events = SessionEvents(clock=lambda: now[0])
        start = events.started(info())
        end = events.exited(info(status=Status.EXITED, exit_code=2))
        self.assertEqual(
            start.to_json(),
            {
                "type": "session-start",
                "timestamp": "1970-01-01T00:00:12.250Z",
                "sessionId": "s1",
                "sessionName": "build",
                "command": "make -j2",
            },
        )
        body = end.to_json()
        self.assertEqual((body["type"], body["exitCode"], body["duration"]), ("session-exit", 2, 2250))
        self.assertIsNone(events.exited(info(exit_code=None)).fields["exitCode"])


class LifecycleEventsTests(SynchronousTestCase):
    """Sessions tell the stream when their lifecycle moves."""

    def test_start_then_exit(self) -> None:
        """A new session's program running publishes session-start; its end, session-exit with
        its exit code."""
        h = Harness(self)
        session = h.create()
        self.assertEqual(h.published, [])
        pump(h.clock)
        self.assertEqual([(e.type, e.session_id) for e in h.published], [(SESSION_START, session.id)])
        h.launcher.last.exit(3)
        pump(h.clock)
        self.assertEqual([e.type for e in h.published], [SESSION_START, SESSION_EXIT])
        self.assertEqual(h.published[1].fields["exitCode"], 3)

    def test_never_started(self) -> None:
        """A program that cannot start publishes only session-exit, with code 127."""
        h = Harness(self)
        h.launcher = FakeLauncher(fail=OSError(2, "No such file or directory"))
        h.create()
        pump(h.clock)
        self.assertEqual([(e.type, e.fields["exitCode"]) for e in h.published], [(SESSION_EXIT, 127)])

    def test_killed_while_starting(self) -> None:
        """A session deleted before its program started publishes session-exit without a code."""
        h = Harness(self)
        session = h.create()
        session.kill()
        pump(h.clock)
        self.assertEqual([(e.type, e.fields["exitCode"]) for e in h.published], [(SESSION_EXIT, None)])


class StreamRequest(DummyRequest):
    """A request in memory that keeps a push producer (DummyRequest only drives pull ones)."""

    producer: Any = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None


def written(request: DummyRequest) -> bytes:
    return b"".join(request.written)


class EventStreamTests(SynchronousTestCase):
    """One client of /api/events, on a request in memory."""

    def setUp(self) -> None:
        self.events = SessionEvents(clock=lambda: 0.0)
        self.streams: set[Any] = set()
        self.request = StreamRequest([b"api", b"events"])
        self.stream = EventStream(self.events, self.request, self.streams)
        self.stream.start()

    def test_connected_then_events(self) -> None:
        """The stream opens with the connected event, then sends each event with its id,
        its type as the event name and its JSON as data."""
        self.assertEqual(self.request.responseHeaders.getRawHeaders(b"content-type"), [b"text/event-stream"])
        self.assertEqual(self.request.responseHeaders.getRawHeaders(b"x-accel-buffering"), [b"no"])
        event = self.events.publish(SESSION_START, "s1", sessionName="é")
        self.assertEqual(written(self.request), CONNECTED + sse_event(event))
        self.assertEqual(
            sse_event(event),
            'id: 1\nevent: session-start\ndata: {"type":"session-start","timestamp":'
            '"1970-01-01T00:00:00.000Z","sessionId":"s1","sessionName":"é"}\n\n'.encode(),
        )
        self.assertEqual(self.streams, {self.stream})

    def test_heartbeat(self) -> None:
        """A heartbeat is an SSE comment; none is sent while the client does not read."""
        self.stream.heartbeat()
        self.stream.pauseProducing()
        self.stream.heartbeat()
        self.assertEqual(written(self.request), CONNECTED + HEARTBEAT)

    def test_client_gone(self) -> None:
        """When the client goes, the stream stops listening and leaves the set of streams."""
        self.assertIs(self.request.producer, self.stream)
        self.request.processingFailed(Exception("gone"))  # fires notifyFinish with an error
        self.events.publish("after")
        self.assertEqual(self.streams, set())
        self.assertEqual(written(self.request), CONNECTED)

    def test_slow_client_cut_off(self) -> None:
        """Events still go to a client that stopped reading, until MAX_HELD bytes have piled
        up: then its stream ends."""
        self.stream.pauseProducing()
        big = "x" * 4096
        while not self.request.finished:
            self.events.publish("test", text=big)
            self.assertLess(len(written(self.request)), MAX_HELD + 2 * len(big) + 200)
        self.assertGreater(len(written(self.request)), MAX_HELD - 2 * len(big) - 200)
        self.assertEqual(self.streams, set())

    def test_replay_after_last_event_id(self) -> None:
        """A stream started with the id a client saw last sends connected, the kept events
        after it, then live ones."""
        events = SessionEvents(clock=lambda: 0.0)
        old = [events.publish(SESSION_START, f"s{n}") for n in range(3)]
        request = StreamRequest([b"api", b"events"])
        EventStream(events, request, set()).start(last_id=1)
        live = events.publish(SESSION_EXIT, "s0")
        self.assertEqual(
            written(request), CONNECTED + sse_event(old[1]) + sse_event(old[2]) + sse_event(live)
        )

    def test_last_event_id(self) -> None:
        """The id comes from the Last-Event-ID header, else ?lastEventId=; one that is not a
        whole number is no id."""
        cases = [
            ({b"last-event-id": b"42"}, {}, 42),
            ({b"last-event-id": b" 7 "}, {b"lastEventId": [b"9"]}, 7),
            ({}, {b"lastEventId": [b"9"]}, 9),
            ({}, {}, None),
            ({b"last-event-id": b"-1"}, {}, None),
            ({b"last-event-id": b"x"}, {}, None),
            ({b"last-event-id": "٣".encode()}, {}, None),
            ({}, {b"lastEventId": [b"1" * 40]}, None),
        ]
        for headers, args, expected in cases:
            request = DummyRequest([b"api", b"events"])
            for name, value in headers.items():
                request.requestHeaders.setRawHeaders(name, [value])
            request.args = args
            self.assertEqual(last_event_id(request), expected, (headers, args))

    def test_close(self) -> None:
        """close() ends the response (the daemon is stopping)."""
        self.stream.close()
        self.assertEqual(self.request.finished, 1)
        self.events.publish("after")
        self.assertEqual(written(self.request), CONNECTED)


class EventsOverHTTPTests(DaemonTestCase):
    """/api/events of a real daemon, over a real socket."""

    async def test_session_start_and_exit(self) -> None:
        """A client of /api/events gets connected, then session-start and session-exit (with the
        exit code) of a session that runs and ends, numbered in order."""
        stream = await self.client.events()
        self.assertEqual(
            stream.headers.getRawHeaders(b"content-type") if stream.headers else None, [b"text/event-stream"]
        )
        await poll(reactor, lambda: stream.named, what="the connected event")
        self.assertEqual(stream.named[0], {"event": "connected", "data": {"type": "connected"}})
        sid = await self.create(["sh", "-c", "sleep 0.2; exit 3"])

        def mine() -> list[dict[str, Any]]:
            return [m for m in stream.named if m["data"].get("sessionId") == sid]

        await poll(reactor, lambda: len(mine()) >= 2, timeout=10, what="start and exit events")
        start, end = mine()[:2]
        self.assertEqual((start["event"], end["event"]), ("session-start", "session-exit"))
        self.assertEqual(start["data"]["type"], "session-start")
        self.assertEqual(start["data"]["command"], "sh -c sleep 0.2; exit 3")
        self.assertEqual(end["data"]["exitCode"], 3)
        self.assertGreaterEqual(end["data"]["duration"], 150)
        self.assertLess(int(start["id"]), int(end["id"]))
        self.assertRegex(end["data"]["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    async def create(self, command: list[str]) -> str:
        sid = await self.client.create(command)
        self.sessions.append(sid)
        return sid


class EventsLoginTests(LoginDaemonTestCase):
    """/api/events with login on sits behind the gate like every route."""

    async def test_needs_a_token(self) -> None:
        """Without a token /api/events is a 401; with a login token it streams."""
        code, body, _ = await self.anonymous().request("GET", "/api/events")
        self.assertEqual((code, body), (401, {"error": "Authentication required"}))
        stream = await self.client.events()
        await poll(reactor, lambda: stream.named, what="the connected event")
        self.assertEqual(stream.named[0]["event"], "connected")
