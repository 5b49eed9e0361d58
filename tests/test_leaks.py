"""Connections that come and go leave nothing behind in the daemon.

A real daemon is put through a few hundred connections of each kind, cut off at
the worst moment (half a request, a request whose answer is never read, a
WebSocket opened and dropped, a viewer dropped while it is being sent a screen),
and the objects it made since startup are counted by type through
``/api/stats?objects=1``. Once the connections are gone, no connection-related
type may have grown by anything near the number of connections: a leak of one
object per connection shows up as hundreds.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from tests.support import fuzz
from tests.support.daemon import Client, Daemon, poll
from tests.support.programs import SINK

#: Connections of each kind per test.
CYCLES = 200
#: Growth of one type still taken as noise (a cache entry, a timer of the sink session).
SLACK = 20
#: The modules whose objects belong to a connection or a request.
WATCHED = ("twisted.web.", "twisted.internet.", "twisted.protocols.", "autobahn.", "vibetwist.", "klein.")


def _raw(port: int, data: bytes, read: bool) -> None:
    """Send data, maybe read the answer, and drop the connection with a reset."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(data)
        if read:
            try:
                sock.recv(65536)
            except OSError:
                pass
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def _socket(port: int, path: str, message: bytes | None) -> None:
    """Open a WebSocket, maybe send one message, and drop it without a closing handshake."""
    ws = fuzz.WebSocket(port, path)
    if message is not None:
        ws.send(fuzz.ws_frame(1, message))
        ws.frames(timeout=0.5, until=lambda op, payload: True)
    ws.sock.close()


def _socket_raw(port: int, path: str, data: bytes) -> None:
    """Open a WebSocket, send data as it is, wait for the daemon to close, and go."""
    ws = fuzz.WebSocket(port, path)
    ws.send(data)
    ws.frames(timeout=2.0, until=lambda op, payload: op == 8)
    ws.sock.close()


class LeakTests(unittest.TestCase):
    """Object counts in the daemon come back after connections of each kind."""

    timeout = 240

    def setUp(self) -> defer.Deferred[None]:  # type: ignore[override]
        return defer.ensureDeferred(self._set_up())

    async def _set_up(self) -> None:
        base = Path(tempfile.mkdtemp(prefix="leaks-", dir=os.getcwd()))
        self.daemon = Daemon(reactor, base)
        await self.daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(self.daemon.stop()))
        self.client = Client(reactor, self.daemon)
        self.addCleanup(lambda: defer.ensureDeferred(self.client.close()))
        self.sink = await self.client.create(SINK)
        await self.client.wait_status(self.sink, "running")

    async def objects(self) -> dict[str, int]:
        stats = await self.client.get("/api/stats?objects=1")
        counts: dict[str, int] = stats["objects"]
        return {name: n for name, n in counts.items() if name.startswith(WATCHED)}

    async def assert_no_growth(self, cycle: Callable[[int], Any]) -> None:
        """Run cycle once to warm caches, take the baseline, run it CYCLES times, and wait
        for every watched type to come back within SLACK of the baseline."""
        port = self.daemon.port
        await threads.deferToThread(cycle, port)
        baseline = await self.objects()
        await threads.deferToThread(lambda: [cycle(port) for _ in range(CYCLES)])
        grown: dict[str, int] = {}

        async def settled() -> bool:
            nonlocal grown
            now = await self.objects()
            grown = {t: n - baseline.get(t, 0) for t, n in now.items() if n - baseline.get(t, 0) > SLACK}
            return not grown

        try:
            await poll(reactor, settled, timeout=30, interval=0.5, what="object counts")
        except AssertionError:
            self.fail(f"after {CYCLES} connections these types grew: {grown}")

    async def test_half_requests(self) -> None:
        """Connections reset in the middle of their headers or body."""
        await self.assert_no_growth(
            lambda port: _raw(
                port, b"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99\r\n\r\n{", False
            )
        )

    async def test_answers_never_read(self) -> None:
        """Requests whose answer the client resets the connection on."""
        request = f"GET /api/sessions/{self.sink}/text HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        await self.assert_no_growth(lambda port: _raw(port, request * 3, False))

    async def test_buffers_sockets_dropped(self) -> None:
        """/buffers sockets dropped right after they subscribe."""
        message = b'{"type": "subscribe", "sessionId": "%s"}' % self.sink.encode()
        await self.assert_no_growth(lambda port: _socket(port, "/buffers", message))

    async def test_viewers_dropped(self) -> None:
        """Session viewers dropped as they are sent the screen."""
        await self.assert_no_growth(lambda port: _socket(port, f"/ws/sessions/{self.sink}", None))

    async def test_input_sockets_dropped(self) -> None:
        """Input sockets dropped after one key."""
        await self.assert_no_growth(lambda port: _socket(port, f"/ws/input?sessionId={self.sink}", b"x"))

    async def test_event_streams_dropped(self) -> None:
        """Server-sent event streams reset once their first events are read."""
        request = f"GET /api/sessions/{self.sink}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        await self.assert_no_growth(lambda port: _raw(port, request, True))

    async def test_protocol_violations(self) -> None:
        """Sockets that send a control frame too long to be one, and are closed for it."""
        frame = fuzz.ws_frame(9, b"p" * 4000)
        await self.assert_no_growth(lambda port: _socket_raw(port, "/buffers", frame))
