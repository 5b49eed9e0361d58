"""Tests for vibetwist.server.websocket and vibetwist.server.buffers, over Autobahn's in-memory agent."""

from __future__ import annotations

import json
from typing import Any

from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateResponseAccept
from twisted.trial.unittest import SynchronousTestCase

from tests.support.daemon import WSClient as Client
from tests.support.sessions import Harness
from tests.support.sockets import SocketTestCase
from vibetwist.model.snapshot import decode, decode_buffers_frame
from vibetwist.screen.terminal import TerminalScreen
from vibetwist.server import viewer, websocket
from vibetwist.server.buffers import MAX_WAIT, QUIET, SnapshotHub
from vibetwist.server.websocket import (
    CLOSE_NORMAL,
    BuffersProtocol,
    InputProtocol,
    TerminalStreamProtocol,
)
from vibetwist.testing import pump


class DeflateClient(Client):
    """A client that offers permessage-deflate."""

    perMessageCompressionOffers = [PerMessageDeflateOffer()]

    @staticmethod
    def perMessageCompressionAccept(response: Any) -> Any:
        return PerMessageDeflateResponseAccept(response)


class BuffersTests(SocketTestCase):
    """/buffers as VibeTunnel's clients use it."""

    def test_connected_then_snapshot_then_subscribed(self) -> None:
        session, process = self.session()
        process.say(b"hello")
        client = self.connect(BuffersProtocol, "/buffers")
        self.assertEqual(client.texts(), [{"type": "connected", "version": "1.0"}])
        client.take()
        client.send_json({"type": "subscribe", "sessionId": session.id})
        self.settle()
        got = client.take()
        self.assertEqual(len(got), 2)
        self.assertTrue(got[0][0])
        sid, snap = decode_buffers_frame(got[0][1])
        self.assertEqual(sid, session.id)
        self.assertEqual("".join(c.char for c in decode(snap).rows[0]).rstrip(), "hello")
        self.assertEqual(json.loads(got[1][1]), {"type": "subscribed", "sessionId": session.id})

    def test_changes_coalesced_and_sent_after_quiet(self) -> None:
        """Several changes close together make one snapshot, sent once the screen is quiet."""
        session, process = self.session()
        client = self.connect(BuffersProtocol, "/buffers")
        client.send_json({"type": "subscribe", "sessionId": session.id})
        self.settle()
        client.take()
        for word in [b"one ", b"two ", b"three"]:
            process.say(word)
            self.settle()
            self.clock.advance(QUIET / 5)
            self.settle()
        self.assertEqual(client.take(), [])
        self.clock.advance(QUIET)
        self.settle()
        frames = client.binaries()
        self.assertEqual(len(frames), 1)
        rows = decode(decode_buffers_frame(frames[0])[1]).rows
        self.assertEqual("".join(c.char for c in rows[0]).rstrip(), "one two three")

    def test_unknown_session_and_bad_messages_get_errors_and_the_socket_stays(self) -> None:
        client = self.connect(BuffersProtocol, "/buffers")
        client.take()
        client.send_json({"type": "subscribe", "sessionId": "nope"})
        client.sendMessage(b"{not json")
        client.sendMessage(b"[1, 2]")
        client.send_json({"type": "dance"})
        client.sendMessage(b"\x00\x01", isBinary=True)
        client.send_json({"type": "ping"})
        self.settle()
        texts = client.texts()
        self.assertEqual([t["type"] for t in texts], ["error"] * 5 + ["pong"])
        self.assertEqual(texts[0]["message"], "Session not found")
        self.assertIsInstance(texts[-1]["timestamp"], int)
        self.assertIsNone(client.close_code)

    def test_many_sessions_on_one_socket_and_unsubscribe(self) -> None:
        first, p1 = self.session()
        second, p2 = self.session()
        client = self.connect(BuffersProtocol, "/buffers")
        client.send_json({"type": "subscribe", "sessionId": first.id})
        client.send_json({"type": "subscribe", "sessionId": second.id})
        self.settle()
        client.take()
        p1.say(b"a")
        p2.say(b"b")
        self.settle()
        self.clock.advance(QUIET)
        self.settle()
        ids = sorted(decode_buffers_frame(f)[0] for f in client.binaries())
        self.assertEqual(ids, sorted([first.id, second.id]))
        client.take()
        client.send_json({"type": "unsubscribe", "sessionId": first.id})
        self.settle()
        p1.say(b"c")
        p2.say(b"d")
        self.settle()
        self.clock.advance(QUIET)
        self.settle()
        self.assertEqual([decode_buffers_frame(f)[0] for f in client.binaries()], [second.id])

    def test_closing_drops_the_subscription(self) -> None:
        session, _ = self.session()
        client = self.connect(BuffersProtocol, "/buffers")
        client.send_json({"type": "subscribe", "sessionId": session.id})
        self.settle()
        self.assertEqual(len(session.feed.watchers), 1)
        client.sendClose()
        self.settle()
        self.assertEqual(session.feed.watchers, set())
        self.assertEqual(self.factory.connections, set())


class HubTests(SynchronousTestCase):
    """When a changing screen is sent."""

    def setUp(self) -> None:
        self.h = Harness(self)
        self.session = self.h.create()
        pump(self.h.clock)
        self.sent: list[float] = []
        self.hub = SnapshotHub(self.session, self.h.clock)

        class Subscriber:
            def snapshot(inner, session_id: str, frame: bytes) -> None:
                self.sent.append(self.h.clock.seconds())

        self.hub.add(Subscriber())

    def test_busy_screen_sent_at_least_every_max_wait(self) -> None:
        """A screen that changes every 10 ms is still sent every MAX_WAIT."""
        for _ in range(100):
            self.hub.changed()
            self.h.clock.advance(0.01)
        self.assertGreaterEqual(len(self.sent), int(1.0 / MAX_WAIT) - 1)
        gaps = [b - a for a, b in zip(self.sent, self.sent[1:], strict=False)]
        self.assertLessEqual(max(gaps), MAX_WAIT + 0.011)

    def test_quiet_screen_sent_once(self) -> None:
        self.hub.changed()
        self.h.clock.advance(QUIET - 0.001)
        self.assertEqual(self.sent, [])
        self.h.clock.advance(0.001)
        self.assertEqual(len(self.sent), 1)
        self.h.clock.advance(5)
        self.assertEqual(len(self.sent), 1)

    def test_frame_made_once_per_change(self) -> None:
        first = self.hub.frame()
        self.assertIs(self.hub.frame(), first)
        self.hub.changed()
        self.assertIsNot(self.hub.frame(), first)


class InputTests(SocketTestCase):
    """/ws/input: text as it is, named keys between NULs."""

    def test_text_and_keys(self) -> None:
        session, process = self.session()
        client = self.connect(InputProtocol, f"/ws/input?sessionId={session.id}")
        client.sendMessage("ls é".encode())
        client.sendMessage(b"\x00enter\x00")
        client.sendMessage(b"\x00arrow_up\x00")
        self.settle()
        self.assertEqual(b"".join(process.written), "ls é\r\x1b[A".encode())

    def test_unknown_key_and_exited_session(self) -> None:
        session, process = self.session()
        client = self.connect(InputProtocol, f"/ws/input?sessionId={session.id}")
        client.sendMessage(b"\x00nope\x00")
        self.settle()
        process.exit(0)
        self.settle()
        client.sendMessage(b"x")
        self.settle()
        self.assertEqual(
            [t["message"] for t in client.texts()], ["Unknown key: nope", "Session is not running"]
        )
        self.assertEqual(process.written, [])

    def test_unknown_session_closes(self) -> None:
        client = self.connect(InputProtocol, "/ws/input?sessionId=nope")
        self.settle()
        self.assertEqual(client.texts()[0]["message"], "Session not found")
        self.assertEqual(client.close_code, 4404)


def feed_stream(client: Client) -> TerminalScreen:
    """A terminal fed what a byte-stream client got (sized by the replay message)."""
    screen: TerminalScreen | None = None
    for binary, payload in client.messages:
        if not binary:
            message = json.loads(payload)
            if message["type"] == "replay":
                screen = TerminalScreen(message["cols"], message["rows"], scrollback=1000)
            elif message["type"] == "resize" and screen is not None:
                screen.resize(message["cols"], message["rows"])
        elif screen is not None:
            screen.feed(payload.decode())
    assert screen is not None
    return screen


class StreamTests(SocketTestCase):
    """/ws/sessions/ID: the screen, then every byte after it."""

    def test_replay_then_live_output_once(self) -> None:
        session, process = self.session()
        for i in range(10):
            process.say(f"line {i}\r\n".encode())
        client = self.connect(TerminalStreamProtocol, f"/ws/sessions/{session.id}")
        process.say(b"after")
        self.settle()
        first = client.texts()[0]
        self.assertEqual(first["type"], "replay")
        self.assertEqual((first["cols"], first["rows"]), (20, 4))
        self.assertFalse(first["readOnly"])
        screen = feed_stream(client)
        self.assertEqual(screen.lines(), ["line 7", "line 8", "line 9", "after"])
        history = ["".join(c.char for c in row).rstrip() for row in screen.history_rows()]
        self.assertEqual(history, [f"line {i}" for i in range(7)])

    def test_joining_mid_flood_loses_and_repeats_nothing(self) -> None:
        """Output goes on while the viewer joins: the bytes after the replay start exactly at K."""
        session, process = self.session()
        for i in range(50):
            process.say(f"{i},".encode())
        client = self.connect(TerminalStreamProtocol, f"/ws/sessions/{session.id}")
        for i in range(50, 100):
            process.say(f"{i},".encode())
            self.pumper.flush()
            self.clock.advance(0)
        self.settle()
        screen = feed_stream(client)
        history = ["".join(c.char for c in row) for row in screen.history_rows()]
        numbers = "".join(history + screen.lines()).replace(" ", "")
        self.assertEqual(numbers, "".join(f"{i}," for i in range(100)))

    def test_input_resize_and_exit(self) -> None:
        session, process = self.session()
        client = self.connect(TerminalStreamProtocol, f"/ws/sessions/{session.id}")
        client.sendMessage(b"raw\r", isBinary=True)
        client.send_json({"type": "input", "data": "typed"})
        client.send_json({"type": "key", "key": "tab"})
        client.send_json({"type": "resize", "cols": 30, "rows": 5})
        self.settle()
        self.assertEqual(b"".join(process.written), b"raw\rtyped\t")
        self.assertEqual(process.sizes, [(30, 5)])
        self.assertIn({"type": "resize", "cols": 30, "rows": 5}, client.texts())
        process.exit(3)
        self.settle()
        self.assertEqual(client.texts()[-1], {"type": "exit", "code": 3})
        self.assertEqual(client.close_code, CLOSE_NORMAL)

    def test_last_viewer_to_type_sets_the_size(self) -> None:
        session, process = self.session()
        wide = self.connect(TerminalStreamProtocol, f"/ws/sessions/{session.id}")
        narrow = self.connect(TerminalStreamProtocol, f"/ws/sessions/{session.id}")
        wide.send_json({"type": "resize", "cols": 100, "rows": 30})
        self.settle()
        narrow.send_json({"type": "resize", "cols": 40, "rows": 10})
        self.settle()
        wide.sendMessage(b"x", isBinary=True)
        self.settle()
        self.assertEqual(session.size, (100, 30))
        narrow.sendMessage(b"y", isBinary=True)
        self.settle()
        self.assertEqual(session.size, (40, 10))
        self.assertEqual(process.sizes, [(100, 30), (40, 10), (100, 30), (40, 10)])

    def test_compression_only_when_enabled(self) -> None:
        """permessage-deflate is accepted when the daemon is told to, and output is the same."""
        session, process = self.session()
        process.say(b"squeeze " * 50)
        path = f"/ws/sessions/{session.id}"
        plain = self.connect(TerminalStreamProtocol, path, client=DeflateClient)
        squeezed = self.connect(TerminalStreamProtocol, path, compress=True, client=DeflateClient)
        process.say(b"done")
        self.settle()
        self.assertIsNone(plain._perMessageCompress)
        self.assertIsNotNone(squeezed._perMessageCompress)
        self.assertEqual(feed_stream(squeezed).text(), feed_stream(plain).text())
        self.assertIn("done", feed_stream(squeezed).text())

    def test_read_only_refuses_input_and_resize(self) -> None:
        session, process = self.session()
        client = self.connect(TerminalStreamProtocol, f"/ws/sessions/{session.id}?readonly=1")
        client.sendMessage(b"rm -rf /\r", isBinary=True)
        client.send_json({"type": "resize", "cols": 30, "rows": 5})
        self.settle()
        self.assertTrue(client.texts()[0]["readOnly"])
        self.assertEqual([t["message"] for t in client.texts()[1:]], ["This view is read-only"] * 2)
        self.assertEqual((process.written, process.sizes), ([], []))
        process.say(b"still watching")
        self.settle()
        self.assertIn("still watching", feed_stream(client).text())

    def test_bad_messages_get_error_frames(self) -> None:
        session, _ = self.session()
        client = self.connect(TerminalStreamProtocol, f"/ws/sessions/{session.id}")
        client.sendMessage(b"{oops")
        client.send_json({"type": "resize", "cols": 0, "rows": 5})
        client.send_json({"type": "input", "data": 5})
        client.send_json({"type": "what"})
        self.settle()
        self.assertEqual([t["type"] for t in client.texts()[1:]], ["error"] * 4)
        self.assertIsNone(client.close_code)

    def test_exited_session_replays_and_closes(self) -> None:
        session, process = self.session()
        process.say(b"bye")
        process.exit(0)
        self.settle()
        client = self.connect(TerminalStreamProtocol, f"/ws/sessions/{session.id}")
        self.settle()
        self.assertEqual(feed_stream(client).lines()[0], "bye")
        self.assertEqual(client.texts()[-1], {"type": "exit", "code": 0})
        self.assertEqual(client.close_code, CLOSE_NORMAL)

    def test_paused_viewer_reads_the_file_later(self) -> None:
        """While its transport is paused a viewer takes nothing live; on resume it reads the rest."""
        session, process = self.session()
        client = self.connect(TerminalStreamProtocol, f"/ws/sessions/{session.id}")
        server = next(iter(self.factory.connections))
        server.paused()
        for i in range(20):
            process.say(f"{i} ".encode())
        self.settle()
        self.assertEqual(client.binaries()[1:], [])
        server.resumed()
        self.settle()
        self.assertEqual(feed_stream(client).text().split(), [str(i) for i in range(20)])

    def test_far_behind_viewer_skips_to_a_fresh_screen(self) -> None:
        """A viewer more than MAX_BACKLOG behind is told how much it skips (and the bytes are
        counted for the metrics), then gets a fresh replay and goes on live."""
        self.patch(viewer, "MAX_BACKLOG", 2000)
        session, process = self.session()
        client = self.connect(TerminalStreamProtocol, f"/ws/sessions/{session.id}")
        server = next(iter(self.factory.connections))
        server.paused()
        self.clock.advance(10)
        for i in range(200):
            process.say(f"line {i}\r\n".encode())
        self.settle()
        client.take()
        server.resumed()
        self.settle()
        texts = client.texts()
        self.assertEqual(texts[0]["type"], "skipped")
        self.assertGreater(texts[0]["bytes"], 2000)
        self.assertEqual(session.tally.viewer_skipped_bytes, texts[0]["bytes"])
        self.assertEqual(texts[1]["type"], "replay")
        self.assertEqual(feed_stream(client).lines()[:3], ["line 197", "line 198", "line 199"])


class SubscriptionCapTests(SocketTestCase):
    """A /buffers socket holds at most MAX_SUBSCRIPTIONS subscriptions."""

    def test_cap(self) -> None:
        """Past the cap a subscribe gets an error frame; renewing one held, or subscribing
        after an unsubscribe, still works, and the socket stays open."""
        self.patch(websocket, "MAX_SUBSCRIPTIONS", 2)
        sessions = [self.session()[0] for _ in range(3)]
        client = self.connect(BuffersProtocol, "/buffers")
        for session in sessions:
            client.send_json({"type": "subscribe", "sessionId": session.id})
        self.settle()
        texts = client.texts()
        self.assertEqual(
            [t["sessionId"] for t in texts if t["type"] == "subscribed"], [s.id for s in sessions[:2]]
        )
        self.assertIn({"type": "error", "message": "At most 2 subscriptions per socket"}, texts)
        client.take()
        client.send_json({"type": "subscribe", "sessionId": sessions[0].id})
        client.send_json({"type": "unsubscribe", "sessionId": sessions[1].id})
        client.send_json({"type": "subscribe", "sessionId": sessions[2].id})
        self.settle()
        subscribed = [t["sessionId"] for t in client.texts() if t["type"] == "subscribed"]
        self.assertEqual(subscribed, [sessions[0].id, sessions[2].id])
