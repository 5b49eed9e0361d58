"""Tests for vibetwist.server.sse: viewers as cursors into the recording."""

from __future__ import annotations

import json

from twisted.internet.task import Clock, Cooperator
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from tests.support.sessions import Harness
from vibetwist.server.sse import StreamViewer
from vibetwist.testing import pump


class StreamRequest(DummyRequest):
    """A DummyRequest that keeps a streaming producer instead of driving it in a loop."""

    def registerProducer(self, producer: object, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None


def messages(request: DummyRequest) -> list[object]:
    data = b"".join(request.written)
    out: list[object] = []
    for chunk in data.split(b"\n\n"):
        if chunk.startswith(b"data: "):
            out.append(json.loads(chunk[len(b"data: ") :]))
        elif chunk:
            out.append(chunk.decode())
    return out


class ViewerTests(SynchronousTestCase):
    """A viewer replays, goes live, and falls back to the file when its client is slow."""

    def setUp(self) -> None:
        self.h = Harness(self)
        self.session = self.h.create()
        pump(self.h.clock)
        self.process = self.h.launcher.last
        self.viewers: set[object] = set()
        self.coop = Cooperator(scheduler=lambda f: self.h.clock.callLater(0, f))

    def view(self) -> DummyRequest:
        request = StreamRequest([b""])
        StreamViewer(self.session, request, self.coop, self.viewers).start()
        pump(self.h.clock)
        return request

    def outputs(self, request: DummyRequest) -> str:
        return "".join(m[2] for m in messages(request) if isinstance(m, list) and m[1] == "o")

    def test_header_first_then_replay_at_time_zero(self) -> None:
        """A late joiner gets the header, then the history with times 0, then live events."""
        self.h.clock.advance(5)
        self.process.say(b"before\r\n")
        request = self.view()
        self.h.clock.advance(1)
        self.process.say(b"after\r\n")
        got = messages(request)
        self.assertEqual(got[0]["version"], 2)  # type: ignore[index]
        self.assertEqual(got[1], [0, "o", "before\r\n"])
        self.assertEqual(got[2], [6, "o", "after\r\n"])
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"), [b"text/event-stream"])
        self.assertEqual(request.responseHeaders.getRawHeaders(b"x-accel-buffering"), [b"no"])

    def test_replay_from_last_clear(self) -> None:
        """The replay starts at the event holding the last clear-scrollback."""
        self.process.say(b"old stuff\r\n")
        self.process.say(b"\x1b[3J\x1b[Hfresh")
        request = self.view()
        self.assertEqual(self.outputs(request), "\x1b[3J\x1b[Hfresh")

    def test_exit_ends_response(self) -> None:
        """After the exit event the response ends."""
        request = self.view()
        self.process.say(b"bye")
        self.process.exit(4)
        self.assertEqual(messages(request)[-1], ["exit", 4, self.session.id])
        self.assertEqual(request.finished, 1)
        self.assertEqual(self.session.listeners, frozenset())

    def test_paused_client_catches_up_exactly_once(self) -> None:
        """A client that pauses misses nothing and gets nothing twice once it resumes."""
        request = self.view()
        viewer = request.producer
        assert viewer is not None
        for i in range(5):
            self.process.say(f"a{i} ".encode())
        viewer.pauseProducing()
        for i in range(5):
            self.process.say(f"b{i} ".encode())
        self.assertNotIn("b0", self.outputs(request))
        viewer.resumeProducing()
        pump(self.h.clock)
        self.process.say(b"c0 ")
        self.process.exit(0)
        expected = "".join(f"a{i} " for i in range(5)) + "".join(f"b{i} " for i in range(5)) + "c0 "
        self.assertEqual(self.outputs(request), expected)
        self.assertEqual(messages(request)[-1], ["exit", 0, self.session.id])

    def test_exit_while_paused(self) -> None:
        """A client paused when the program exits still gets everything and the exit line."""
        request = self.view()
        viewer = request.producer
        assert viewer is not None
        viewer.pauseProducing()
        self.process.say(b"last words")
        self.process.exit(2)
        viewer.resumeProducing()
        pump(self.h.clock)
        self.assertEqual(self.outputs(request), "last words")
        self.assertEqual(messages(request)[-1], ["exit", 2, self.session.id])
        self.assertEqual(request.finished, 1)

    def test_disconnect_detaches(self) -> None:
        """A client that goes away is no longer a listener."""
        request = self.view()
        self.assertEqual(len(self.session.listeners), 1)
        request.processingFailed(Exception("gone"))
        self.assertEqual(self.session.listeners, frozenset())
        self.assertEqual(self.viewers, set())

    def test_heartbeat(self) -> None:
        """A heartbeat is an SSE comment line."""
        request = self.view()
        for viewer in self.viewers:
            viewer.heartbeat()  # type: ignore[attr-defined]
        self.assertTrue(b"".join(request.written).endswith(b":heartbeat\n\n"))


class ClockOnly(SynchronousTestCase):
    def test_clock(self) -> None:
        """The harness clock starts at zero (sanity check for timestamp tests)."""
        self.assertEqual(Clock().seconds(), 0)
