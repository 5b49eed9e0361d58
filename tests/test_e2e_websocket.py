"""End-to-end tests of the WebSockets: the real daemon, real PTYs, a real Autobahn client."""

from __future__ import annotations

import json
import os
import re
import socket

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from tests.support.daemon import WSClient, open_ws, parse_raw, pids_of_session_id, poll, raw_request, sleep
from tests.support.e2e import DaemonTestCase
from tests.support.screens import all_rows, screen_of
from vibetwist.model.snapshot import decode, decode_buffers_frame

#: Six megabytes of x, in lines of 99.
FLOOD_6MB = "head -c 6000000 /dev/zero | tr '\\0' x | fold -w 99"


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class WebSocketTests(DaemonTestCase):
    """/buffers, /ws/input and the byte stream against the real daemon."""

    def drop(self, client: WSClient) -> None:
        if client.state != client.STATE_CLOSED:
            client.dropConnection(abort=True)

    async def ws(self, path: str) -> WSClient:
        client: WSClient = await open_ws(reactor, self.daemon, path)
        self.addCleanup(
            lambda: client.dropConnection(abort=True) if client.state != client.STATE_CLOSED else None
        )
        return client

    async def test_buffers_follow_what_ws_input_types(self) -> None:
        sid = await self.client.create(["bash", "--norc", "--noprofile"], cols=60, rows=10)
        await self.client.wait_status(sid, "running")
        buffers = await self.ws("/buffers")
        buffers.send_json({"type": "subscribe", "sessionId": sid})
        typing = await self.ws(f"/ws/input?sessionId={sid}")
        typing.sendMessage(b"echo $((6*7))")
        typing.sendMessage(b"\x00enter\x00")

        def shows_42() -> bool:
            for payload in buffers.binaries():
                session_id, snapshot = decode_buffers_frame(payload)
                rows = ["".join(c.char for c in row).strip() for row in decode(snapshot).rows]
                if session_id == sid and "42" in rows:
                    return True
            return False

        await buffers.wait_for(shows_42)
        self.assertEqual(buffers.texts()[0], {"type": "connected", "version": "1.0"})
        self.assertIn({"type": "subscribed", "sessionId": sid}, buffers.texts())

    async def test_stream_types_resizes_and_exits(self) -> None:
        sid = await self.client.create(["bash", "--norc", "--noprofile"], cols=80, rows=24)
        await self.client.wait_status(sid, "running")
        term = await self.ws(f"/ws/sessions/{sid}")
        term.send_json({"type": "resize", "cols": 91, "rows": 33})
        term.sendMessage(b"stty size\r", isBinary=True)
        await term.wait_for(lambda: term.texts() and "33 91" in screen_of(term).text())
        term.sendMessage(b"exit 7\r", isBinary=True)
        code = await term.closed
        self.assertEqual(code, 1000)
        self.assertEqual(term.texts()[-1], {"type": "exit", "code": 7})
        self.assertIn({"type": "resize", "cols": 91, "rows": 33}, term.texts())

    async def test_joining_mid_flood_loses_and_repeats_nothing(self) -> None:
        """A viewer that joins while seq prints gets a contiguous run of numbers to the end."""
        sid = await self.client.create(["sh", "-c", "sleep 0.3; seq 1 100000; sleep 0.5"], cols=40, rows=10)
        await sleep(reactor, 0.45)
        term = await self.ws(f"/ws/sessions/{sid}")
        await term.closed
        rows = [r for r in all_rows(screen_of(term, scrollback=200_000)) if r]
        numbers = [int(r) for r in rows]
        self.assertEqual(numbers[-1], 100000)
        self.assertEqual(numbers, list(range(numbers[0], 100001)))
        self.assertLessEqual(numbers[0], 100000 - 9000, "the replay brings the scrollback")

    async def test_read_only_viewer(self) -> None:
        sid = await self.client.create(["cat"])
        await self.client.wait_status(sid, "running")
        viewer = await self.ws(f"/ws/sessions/{sid}?readonly=1")
        viewer.sendMessage(b"typed\r", isBinary=True)
        await viewer.wait_for(lambda: [t for t in viewer.texts() if t["type"] == "error"])
        self.assertEqual(viewer.texts()[-1]["message"], "This view is read-only")
        self.assertEqual((await self.client.text(sid)).strip(), "")

    async def test_http_without_upgrade_and_foreign_origin(self) -> None:
        sid = await self.client.create(["cat"])
        answer = await raw_request(
            reactor,
            self.daemon.port,
            f"GET /ws/sessions/{sid} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
        )
        status, _, body = parse_raw(answer)
        self.assertEqual((status, json.loads(body)), (426, {"error": "This is a WebSocket endpoint"}))
        upgrade = (
            "GET /buffers HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Origin: http://evil.example\r\n\r\n"
        )
        status, _, _ = parse_raw(await raw_request(reactor, self.daemon.port, upgrade.encode()))
        self.assertEqual(status, 403)
        status, _, body = parse_raw(
            await raw_request(
                reactor, self.daemon.port, upgrade.replace("/buffers", "/ws/sessions/nope").encode()
            )
        )
        self.assertEqual(status, 403)

    async def test_stalled_viewer_does_not_hold_up_others(self) -> None:
        """One viewer stops reading during a flood: the other gets everything at once, the
        daemon's memory stays bounded, and the stalled one skips to a fresh screen."""
        sid = await self.client.create(
            [
                "sh",
                "-c",
                f"sleep 0.5; {FLOOD_6MB}; echo END; sleep 120",
            ],
            cols=100,
            rows=10,
        )
        stalled = await self.ws(f"/ws/sessions/{sid}")
        stalled.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        fast = await self.ws(f"/ws/sessions/{sid}")
        await stalled.wait_for(lambda: stalled.texts())
        stalled.pause()
        await fast.wait_for(lambda: b"END" in b"".join(fast.binaries()[-3:]), timeout=60)
        self.assertGreater(sum(len(b) for b in fast.binaries()), 6_000_000)
        rss = (await self.client.get("/api/stats"))["rssBytes"]
        self.assertLess(rss, 300 << 20)
        await self.client.wait_text(sid, "END", timeout=90)
        stalled.resume()
        await stalled.wait_for(lambda: [t for t in stalled.texts() if t["type"] == "skipped"])
        await poll(reactor, lambda: "END" in screen_of(stalled).text(), 30, 0.5, what="the fresh screen")
        self.assertEqual([t["type"] for t in stalled.texts()][:3], ["replay", "skipped", "replay"])

    test_stalled_viewer_does_not_hold_up_others.timeout = 180  # type: ignore[attr-defined]


class LeakTests(DaemonTestCase):
    """Clients that vanish at any moment leave nothing behind."""

    async def test_rapid_connect_and_vanish(self) -> None:
        pid = self.daemon.pid
        assert pid is not None
        sid = await self.client.create(["sh", "-c", "while :; do echo tick; sleep 0.01; done"])
        await self.client.wait_status(sid, "running")
        await sleep(reactor, 0.3)
        before = fd_count(pid)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.daemon.port)
        handshake = (
            f"GET /ws/sessions/{sid} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        for i in range(150):
            kind = i % 3
            if kind == 0:
                # Vanish mid-handshake.
                p = await connectProtocol(endpoint, Protocol())
                p.transport.write(handshake[: len(handshake) // 2])
                p.transport.abortConnection()
            elif kind == 1:
                # Vanish right after the handshake, mid-replay.
                p = await connectProtocol(endpoint, Protocol())
                p.transport.write(handshake)
                await sleep(reactor, 0.001)
                p.transport.abortConnection()
            else:
                # A session created and a viewer gone while it spawns.
                new = await self.client.create(["sleep", "30"])
                viewer = await open_ws(reactor, self.daemon, f"/ws/sessions/{new}")
                viewer.dropConnection(abort=True)
                await self.client.request("DELETE", f"/api/sessions/{new}")
        sessions = await self.client.get("/api/sessions")

        await poll(reactor, lambda: fd_count(pid) <= before + 2, 10, what="descriptors released")
        alive = pids_of_session_id({s["id"] for s in sessions if s["id"] != sid})
        await poll(
            reactor,
            lambda: not pids_of_session_id({s["id"] for s in sessions if s["id"] != sid}),
            10,
            what=f"killed sessions' processes gone ({alive})",
        )
        stats = await self.client.get("/api/stats")
        self.assertEqual(stats["statuses"].get("running", 0), 1)
        log = self.daemon.log()
        self.assertNotIn("Traceback", log)
        self.assertIsNone(re.search(r"Unhandled", log))
