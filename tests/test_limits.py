"""The daemon's limits: the token bucket and gate alone, the options, and each limit
checked for real against a daemon over real sockets."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, endpoints, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.support.daemon import (
    Client,
    Daemon,
    _Collect,
    open_ws,
    parse_raw,
    poll,
    raw_request,
    sleep,
    within,
)
from vibetwist.model.peercred import REMOTE, Peer
from vibetwist.server.hostcheck import MAX_BODY
from vibetwist.server.limits import (
    ConnectionLimiter,
    Limits,
    ServerFull,
    SessionCreateLimit,
    TokenBucket,
    TooManyRequests,
)
from vibetwist.server.websocket import MAX_MESSAGE
from vibetwist.tap import Options


class TokenBucketTests(SynchronousTestCase):
    """The bucket never admits more than burst + rate x elapsed, and its waits are honest."""

    @given(
        rate=st.floats(0.5, 500),
        burst=st.integers(1, 50),
        steps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
    )
    def test_never_more_than_allowed(self, rate: float, burst: int, steps: list[float]) -> None:
        """Over any run of takes, the ones admitted are at most burst + rate x elapsed time."""
        bucket = TokenBucket(rate, burst, 0.0)
        now = 0.0
        admitted = 0
        for step in steps:
            now += step
            if bucket.take(now) == 0.0:
                admitted += 1
        self.assertLessEqual(admitted, burst + rate * now + 1e-6)

    @given(rate=st.floats(0.5, 500), burst=st.integers(1, 50), start=st.floats(0, 1e6))
    def test_wait_is_enough(self, rate: float, burst: int, start: float) -> None:
        """A full bucket admits exactly burst takes at once; after the wait it names, one more."""
        bucket = TokenBucket(rate, burst, start)
        self.assertEqual([bucket.take(start) for _ in range(burst)], [0.0] * burst)
        wait = bucket.take(start)
        self.assertGreater(wait, 0.0)
        self.assertEqual(bucket.take(start + wait * 1.000001), 0.0)


class SessionGateTests(SynchronousTestCase):
    """The gate answers 503 past the live-session cap and 429 past the rate."""

    def test_rate_then_recovers(self) -> None:
        """After the burst a create is refused with 429 and a Retry-After; a second later it passes."""
        clock = Clock()
        gate = SessionCreateLimit(Limits(create_rate=1, create_burst=3), clock)
        for _ in range(3):
            gate.admit(0)
        error = self.assertRaises(TooManyRequests, gate.admit, 0)
        self.assertEqual((error.status, error.retry_after), (429, 1))
        clock.advance(1.0)
        gate.admit(0)

    def test_cap(self) -> None:
        """At the cap a create is refused with 503 and spends no token."""
        gate = SessionCreateLimit(Limits(max_sessions=2, create_rate=1, create_burst=1), Clock())
        error = self.assertRaises(ServerFull, gate.admit, 2)
        self.assertEqual(error.status, 503)
        gate.admit(1)


class ConnectionShareTests(SynchronousTestCase):
    """Connections of other clients than the daemon's user are capped per client and together,
    so the daemon's user always has room (the caps, in memory, with the peer given)."""

    def setUp(self) -> None:
        self.peers: dict[int, Peer] = {}
        self.limiter = ConnectionLimiter(
            Site(Resource()),
            Limits(max_connections=40),
            Clock(),
            identify=lambda transport: self.peers[transport.getPeer().port],
            uid=1000,
        )
        self.port = 0

    def connect(self, peer: Peer, host: str = "127.0.0.1") -> StringTransport:
        self.port += 1
        self.peers[self.port] = peer
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, self.port))
        protocol = self.limiter.buildProtocol(transport.getPeer())
        protocol.makeConnection(transport)
        self.addCleanup(protocol.connectionLost, Failure(ConnectionDone()))
        return transport

    def refused(self, transport: StringTransport) -> bool:
        return transport.value().startswith(b"HTTP/1.1 503")

    def test_per_client(self) -> None:
        """One other user, or one address, holds at most an eighth of the connections."""
        for peer, host in [(Peer(1001, True), "127.0.0.1"), (REMOTE, "192.0.2.1"), (REMOTE, "2001:db8::1")]:
            kept = [t for t in (self.connect(peer, host) for _ in range(10)) if not self.refused(t)]
            self.assertEqual(len(kept), 40 // 8, (peer, host))
        self.assertFalse(self.refused(self.connect(REMOTE, "2001:db8:0:1::1")))
        self.assertTrue(self.refused(self.connect(REMOTE, "2001:db8::ffff")))

    def test_headroom_for_the_daemons_user(self) -> None:
        """Other clients together hold at most nine tenths; the daemon's user gets the rest."""
        strangers = [self.connect(Peer(2000 + n, True)) for n in range(40)]
        self.assertEqual(sum(not self.refused(t) for t in strangers), 40 - 40 // 10)
        mine = [self.connect(Peer(1000, True)) for _ in range(4)]
        self.assertFalse(any(self.refused(t) for t in mine))
        self.assertTrue(self.refused(self.connect(Peer(1001, True))))

    def test_refused_connections_hold_nothing(self) -> None:
        """A refused connection is not counted, before or after it closes."""
        for _ in range(10):
            self.connect(Peer(1001, True))
        self.assertEqual(len(self.limiter.protocols), 40 // 8)


class OptionTests(SynchronousTestCase):
    """The limits are options with generous defaults, and bad values are refused."""

    def test_defaults(self) -> None:
        """By default: 1000 sessions, 200 creates/s with a burst of 200, 2000 connections, 30 s."""
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["limits"], Limits())
        self.assertEqual(
            Limits(),
            Limits(
                max_sessions=1000,
                create_rate=200.0,
                create_burst=200,
                max_connections=2000,
                request_timeout=30.0,
            ),
        )

    def test_set(self) -> None:
        """Each option sets its limit."""
        options = Options()
        options.parseOptions(
            [
                "--max-sessions=5",
                "--max-create-rate=0.5",
                "--create-burst=2",
                "--max-connections=9",
                "--request-timeout=1.5",
            ]
        )
        self.assertEqual(options["limits"], Limits(5, 0.5, 2, 9, 1.5))

    def test_bad_values(self) -> None:
        """A limit that is not a positive number is a usage error."""
        for argv in (["--max-sessions=0"], ["--max-create-rate=x"], ["--request-timeout=-1"]):
            self.assertRaises(usage.UsageError, Options().parseOptions, argv)

    def test_help_lists_them(self) -> None:
        """--help names every limit."""
        text = str(Options())
        for name in ("--max-sessions", "--max-create-rate", "--create-burst", "--max-connections"):
            self.assertIn(name, text)
        self.assertIn("--request-timeout", text)


# -- against a real daemon ------------------------------------------------------------------


class DaemonLimitsTests(unittest.TestCase):
    """Each limit, over real sockets, on a daemon started with small limits."""

    timeout = 60

    async def daemon(self, *args: str) -> tuple[Daemon, Client]:
        base = Path(tempfile.mkdtemp(prefix="limits-", dir=os.getcwd()))
        daemon = Daemon(reactor, base, args=args)
        await daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        client = Client(reactor, daemon)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        return daemon, client

    def assertRefused(self, answer: tuple[int, Any, Any], code: int, retry: bytes | None) -> None:
        status, body, response = answer
        self.assertEqual(status, code, body)
        self.assertIsInstance(body["error"], str)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after", [None])[0], retry)

    async def test_session_cap(self) -> None:
        """Past --max-sessions live sessions a create answers 503 with Retry-After; once one
        has exited, creating works again."""
        daemon, client = await self.daemon("--max-sessions", "2")
        first = await client.create(["sleep", "30"])
        await client.create(["sleep", "30"])
        self.assertRefused(await client.request("POST", "/api/sessions", {"command": ["true"]}), 503, b"5")
        code, _, _ = await client.request("DELETE", f"/api/sessions/{first}")
        self.assertEqual(code, 200)
        await client.wait_status(first, "exited")
        await client.create(["true"])

    async def test_create_rate(self) -> None:
        """Past the burst, creates answer 429 with Retry-After; a second later one passes;
        other requests are never refused."""
        daemon, client = await self.daemon("--max-create-rate", "1", "--create-burst", "3")
        for _ in range(3):
            await client.create(["true"])
        answer = await client.request("POST", "/api/sessions", {"command": ["true"]})
        self.assertRefused(answer, 429, b"1")
        self.assertEqual(answer[2].phrase, b"Too Many Requests")
        await client.get("/api/health")
        await sleep(reactor, 1.1)
        await client.create(["true"])

    async def test_connection_cap(self) -> None:
        """Past --max-connections a connection gets a 503 JSON answer and is closed; once
        connections close, requests are served again."""
        daemon, client = await self.daemon("--max-connections", "20")
        held = [socket.create_connection(("127.0.0.1", daemon.port)) for _ in range(20)]
        try:
            await sleep(reactor, 0.2)
            status, headers, body = parse_raw(
                await raw_request(
                    reactor, daemon.port, b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                )
            )
            self.assertEqual(status, 503)
            self.assertEqual(headers[b"retry-after"], b"1")
            self.assertIn("error", json.loads(body))
        finally:
            for sock in held:
                sock.close()
        await poll(reactor, lambda: _fd_count(daemon) < 40, what="connections closed")
        await client.get("/api/health")

    async def test_slow_request(self) -> None:
        """A client trickling its request a byte at a time gets a 408 after --request-timeout,
        a connection that sends nothing is closed without a word, while another client is
        served and a WebSocket stays open past the timeout."""
        daemon, client = await self.daemon("--request-timeout", "1")
        sid = await client.create(["sleep", "30"])
        ws = await open_ws(reactor, daemon, f"/ws/sessions/{sid}")
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", daemon.port)
        silent = cast(_Collect, await endpoint.connect(Factory.forProtocol(_Collect)))
        slow = cast(_Collect, await endpoint.connect(Factory.forProtocol(_Collect)))
        request = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 100
        started = reactor.seconds()
        for byte in request:
            if slow.done.called:
                break
            slow.transport.write(bytes([byte]))  # type: ignore[union-attr]
            await client.get("/api/health")
            await sleep(reactor, 0.05)
        answer = await within(reactor, slow.done, 5, "the 408")
        self.assertEqual(await within(reactor, silent.done, 5, "the silent close"), b"")
        self.assertLess(reactor.seconds() - started, 3)
        status, _, body = parse_raw(answer)
        self.assertEqual(status, 408)
        self.assertIn("error", json.loads(body))
        await sleep(reactor, 0.5)
        self.assertIsNone(ws.close_code)
        ws.send_json({"type": "resize", "cols": 90, "rows": 20})
        info = await poll(reactor, lambda: client.session(sid), what="session")
        self.assertEqual(info["status"], "running")
        ws.sendClose()
        await client.request("DELETE", f"/api/sessions/{sid}")

    async def test_bodies(self) -> None:
        """A declared body over 1 MiB and a chunked one passing 1 MiB get a 413 without being
        read; a body sent slowly in chunks within the timeout is served."""
        daemon, client = await self.daemon()
        head = b"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        big = await raw_request(reactor, daemon.port, head + b"Content-Length: %d\r\n\r\n{" % (MAX_BODY + 1))
        self.assertEqual(parse_raw(big)[0], 413)
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        chunked = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * (MAX_BODY // 65536 + 2)
        self.assertEqual(parse_raw(await raw_request(reactor, daemon.port, chunked))[0], 413)
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", daemon.port)
        proto = cast(_Collect, await endpoint.connect(Factory.forProtocol(_Collect)))
        transport: Any = proto.transport
        transport.write(head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for part in (b'{"comm', b'and": ["tr', b'ue"]}'):
            transport.write(b"%x\r\n%s\r\n" % (len(part), part))
            await sleep(reactor, 0.1)
        transport.write(b"0\r\n\r\n")
        status, _, body = parse_raw(await within(reactor, proto.done, 5, "answer"))
        self.assertEqual(status, 200, body)
        self.assertIn("sessionId", json.loads(body))
        await client.get("/api/health")

    async def test_websocket_message_size(self) -> None:
        """A WebSocket message over 1 MiB gets close code 1009; another socket is unaffected."""
        daemon, client = await self.daemon()
        victim = await open_ws(reactor, daemon, "/buffers")
        other = await open_ws(reactor, daemon, "/buffers")
        victim.sendMessage(b" " * (MAX_MESSAGE + 1))
        code = await within(reactor, victim.closed, 10, "close")
        self.assertEqual(code, 1009)
        other.send_json({"type": "ping"})
        pong = await other.wait_for(lambda: [m for m in other.texts() if m.get("type") == "pong"])
        self.assertTrue(pong)
        other.sendClose()


def _fd_count(daemon: Daemon) -> int:
    return len(os.listdir(f"/proc/{daemon.pid}/fd"))
