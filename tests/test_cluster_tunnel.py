"""Tunnels over a real nats-server: HTTP and WebSockets through them, flow control, and how
they end (a gap in the sequence, silence, a NATS restart)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import treq
from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from hypothesis import given
from hypothesis import strategies as st
from treq.client import HTTPClient
from twisted.internet import defer, error, reactor
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from tests.support.daemon import poll, within
from tests.support.nats import LinkCase, MemoryServers, NATSServer
from vibetwist.cluster.link import NATSLink
from vibetwist.cluster.tunnel import (
    ACK,
    CLOSE,
    DATA,
    KINDS,
    PING,
    ClusterAddress,
    Frame,
    RequestTimeout,
    TunnelEndpoint,
    TunnelListener,
    TunnelLost,
    TunnelRefused,
    Unreachable,
    close_tunnels_to,
    decode_frame,
    encode_frame,
)

GRANT = {"kind": "full", "user": None}
CLEAN = Failure(error.ConnectionDone())


def pattern(n: int) -> bytes:
    """n bytes that are not all alike, so a lost or reordered chunk shows."""
    block = bytes(range(251))
    return (block * (n // len(block) + 1))[:n]


class Bytes(Resource):
    """GET /bytes?n=N answers N pattern bytes; POST /echo answers its body and its digest."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        if request.path == b"/peer":
            request.setHeader(b"content-type", b"application/json")
            peer = request.transport.getPeer()
            grant = request.transport.grant
            return json.dumps({"peer": peer.name, "grant": grant}).encode()
        n = int(request.args[b"n"][0])
        return pattern(n)

    def render_POST(self, request: Any) -> bytes:
        body = request.content.read()
        request.setHeader(b"x-digest", hashlib.sha256(body).hexdigest().encode())
        return bytes(body)


class Endpoints:
    """An endpoint factory for Agent.usingEndpointFactory: every URI goes to one host."""

    def __init__(self, endpoint: TunnelEndpoint) -> None:
        self.endpoint = endpoint

    def endpointForURI(self, uri: Any) -> TunnelEndpoint:
        return self.endpoint


class Recorder(Protocol):
    """Keeps what it receives and how its connection ended."""

    def __init__(self) -> None:
        self.received = bytearray()
        #: Fires (with None) once the connection is lost; the reason is in .reason.
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = CLEAN) -> None:  # type: ignore[override]
        self.reason = reason
        self.ended.callback(None)


@implementer(IPushProducer)
class Flood:
    """Writes total pattern bytes in chunks to a transport as fast as it is let."""

    def __init__(self, transport: Any, total: int, chunk: int = 16 * 1024) -> None:
        self.transport = transport
        self.data = pattern(total)
        self.written = 0
        self.chunk = chunk
        self.paused = False
        self.pauses = 0

    def start(self) -> None:
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and self.written < len(self.data):
            piece = self.data[self.written : self.written + self.chunk]
            self.written += len(piece)
            self.transport.write(piece)
        if self.written >= len(self.data) and not self.paused:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def stopProducing(self) -> None:
        self.paused = True


class TunnelCase(LinkCase):
    """A host link with a TunnelListener and a gateway link with a TunnelEndpoint to it."""

    def setUp(self) -> None:
        self.listeners: list[TunnelListener] = []

    async def tunnel(
        self, factory: Any, server: NATSServer | None = None, **options: Any
    ) -> tuple[NATSServer, NATSLink, NATSLink, TunnelListener, TunnelEndpoint]:
        if server is None:
            server = await self.start_server()
        host = await self.connected_link(server, "host")
        gateway = await self.connected_link(server, "gateway")
        listener = TunnelListener(host, "vt.h.test", factory, **options)
        await listener.start()
        self.addCleanup(listener.stop)
        self.listeners.append(listener)
        self.host_link = host
        endpoint = TunnelEndpoint(gateway, "vt.h.test", GRANT, "gw-1", **options)
        return server, host, gateway, listener, endpoint

    async def connected_pair(self, **options: Any) -> tuple[Recorder, Recorder, Any, NATSLink]:
        hosts: list[Recorder] = []

        class HostSide(Recorder):
            def connectionMade(self) -> None:
                hosts.append(self)

        server, host, gateway, listener, endpoint = await self.tunnel(
            Factory.forProtocol(HostSide), **options
        )
        client = await endpoint.connect(Factory.forProtocol(Recorder))
        assert isinstance(client, Recorder)
        await poll(reactor, lambda: hosts, what="the host's protocol")
        client.transport.write(b"ping")
        await poll(reactor, lambda: hosts[0].received == b"ping", what="first bytes")
        return client, hosts[0], server, gateway

    def http(self, endpoint: TunnelEndpoint) -> HTTPClient:
        pool = HTTPConnectionPool(reactor, persistent=False)
        return HTTPClient(Agent.usingEndpointFactory(reactor, Endpoints(endpoint), pool=pool))


class HTTPTests(TunnelCase):
    async def test_get_and_post_bodies_are_byte_exact(self) -> None:
        """A twisted.web Site behind a TunnelListener answers treq over a TunnelEndpoint:
        small and multi-megabyte GET and POST bodies arrive byte for byte."""
        _, _, _, _, endpoint = await self.tunnel(Site(Bytes()))
        client = self.http(endpoint)
        for n in (0, 1, 1000, 5 * 1024 * 1024 + 17):
            response = await within(reactor, client.get(f"http://host/bytes?n={n}"), 30, f"GET {n}")
            self.assertEqual(response.code, 200)
            body = await within(reactor, treq.content(response), 30, f"body {n}")
            self.assertEqual(len(body), n)
            self.assertEqual(body, pattern(n))
        upload = pattern(3 * 1024 * 1024 + 5)[::-1]
        response = await within(reactor, client.post("http://host/echo", data=upload), 30, "POST")
        echoed = await within(reactor, treq.content(response), 30, "POST body")
        self.assertEqual(echoed, upload)
        self.assertEqual(response.headers.getRawHeaders("x-digest"), [hashlib.sha256(upload).hexdigest()])

    async def test_persistent_connection_is_reused(self) -> None:
        """treq with a persistent pool sends several requests over one tunnel."""
        _, _, _, listener, endpoint = await self.tunnel(Site(Bytes()))
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        client = HTTPClient(Agent.usingEndpointFactory(reactor, Endpoints(endpoint), pool=pool))
        for n in (10, 20000, 30):
            response = await client.get(f"http://host/bytes?n={n}")
            self.assertEqual(await treq.content(response), pattern(n))
        self.assertEqual(len(listener.connections), 1)

    async def test_host_sees_gateway_and_grant(self) -> None:
        """On the host, a tunnel request's transport is a TunnelTransport whose peer is the
        gateway's ClusterAddress and whose grant is the one the gateway put in OPEN."""
        _, _, _, listener, endpoint = await self.tunnel(Site(Bytes()))
        response = await self.http(endpoint).get("http://host/peer")
        self.assertEqual(await response.json(), {"peer": "gw-1", "grant": GRANT})

    async def test_no_host_is_unreachable_fast(self) -> None:
        """Connecting to a subject no host listens on errbacks with Unreachable in well
        under 100 ms."""
        server = await self.start_server()
        gateway = await self.connected_link(server, "gateway")
        endpoint = TunnelEndpoint(gateway, "vt.h.nobody", GRANT, "gw-1")
        started = reactor.seconds()
        with self.assertRaises(Unreachable):
            await endpoint.connect(Factory.forProtocol(Recorder))
        self.assertLess(reactor.seconds() - started, 0.1)

    async def test_silent_host_is_a_timeout(self) -> None:
        """A host subject whose subscriber never answers OPEN errbacks with RequestTimeout."""
        server = await self.start_server()
        gateway = await self.connected_link(server, "gateway")
        await gateway.subscribe("vt.h.mute", lambda message: None)
        endpoint = TunnelEndpoint(gateway, "vt.h.mute", GRANT, "gw-1", timeout=0.3)
        with self.assertRaises(RequestTimeout):
            await endpoint.connect(Factory.forProtocol(Recorder))

    async def test_bad_open_is_refused(self) -> None:
        """An OPEN that is not the protocol's gets an error answer, not a connection."""
        _, host, gateway, listener, _ = await self.tunnel(Factory.forProtocol(Recorder))
        answer = json.loads(await gateway.request("vt.h.test", b'{"v": 2}', timeout=5))
        self.assertIn("error", answer)
        self.assertEqual(listener.connections, frozenset())

    async def test_refusing_factory_is_tunnel_refused(self) -> None:
        """A host factory that builds no protocol makes connect errback with TunnelRefused."""

        class Refusing(Factory):
            def buildProtocol(self, addr: Any) -> None:
                return None

        _, _, _, _, endpoint = await self.tunnel(Refusing())
        with self.assertRaises(TunnelRefused):
            await endpoint.connect(Factory.forProtocol(Recorder))


class EchoServer(WebSocketServerProtocol):
    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)


class EchoClient(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.messages.append((payload, isBinary))


class WebSocketTests(TunnelCase):
    async def test_autobahn_echo_over_a_tunnel(self) -> None:
        """An autobahn WebSocket server behind a TunnelListener echoes what an autobahn
        client over a TunnelEndpoint sends, text and binary, small and large."""
        server_factory = WebSocketServerFactory("ws://host/")
        server_factory.protocol = EchoServer
        _, _, _, _, endpoint = await self.tunnel(server_factory)
        client_factory = WebSocketClientFactory("ws://host/")
        client_factory.protocol = EchoClient
        client_factory.opened = defer.Deferred()
        client_factory.messages = []
        await endpoint.connect(client_factory)
        client = await within(reactor, client_factory.opened, 10, "WebSocket open")
        big = pattern(2 * 1024 * 1024)
        client.sendMessage("héllo".encode(), False)
        client.sendMessage(big, True)
        await poll(reactor, lambda: len(client_factory.messages) == 2, timeout=20, what="echoes")
        self.assertEqual(client_factory.messages, [("héllo".encode(), False), (big, True)])
        client.sendClose(1000)
        await poll(reactor, lambda: client.transport.disconnected, timeout=10, what="close")


class FlowTests(TunnelCase):
    async def test_paused_receiver_holds_sender_to_the_window(self) -> None:
        """While the gateway's protocol has paused its transport, the host's producer is
        paused with no more than one window in flight and at most one chunk buffered; once
        resumed, every byte arrives in order."""
        window = 64 * 1024
        total = 2 * 1024 * 1024
        floods: list[Flood] = []

        class Sender(Protocol):
            def connectionMade(self) -> None:
                flood = Flood(self.transport, total)
                floods.append(flood)
                flood.start()

        _, _, _, listener, endpoint = await self.tunnel(Factory.forProtocol(Sender), window=window)

        class Paused(Recorder):
            def connectionMade(self) -> None:
                self.transport.pauseProducing()

        receiver = await endpoint.connect(Factory.forProtocol(Paused))
        assert isinstance(receiver, Recorder)
        await poll(reactor, lambda: floods, what="the host's protocol")
        flood = floods[0]
        (sending,) = listener.connections
        # The window's worth arrives at the gateway and is held there, unacknowledged.
        await poll(reactor, lambda: sum(map(len, receiver.transport._held)) >= window, what="a window held")
        self.assertTrue(flood.paused)
        self.assertEqual(sending._sent - sending._acked, window)
        self.assertLessEqual(flood.written - sending._sent, flood.chunk)
        self.assertEqual(bytes(receiver.received), b"")
        written = flood.written
        # Nothing moves while paused: after a round trip through the host (a refused
        # OPEN), the counts are the same.
        await receiver.transport._link.request("vt.h.test", b"not json", timeout=5)
        self.assertEqual(flood.written, written)
        receiver.transport.resumeProducing()
        await within(reactor, receiver.ended, 30, "the whole flood")
        reason = receiver.reason
        assert reason is not None
        self.assertTrue(reason.check(error.ConnectionDone))
        self.assertEqual(len(receiver.received), total)
        self.assertEqual(bytes(receiver.received), pattern(total))
        self.assertGreater(flood.pauses, 1)

    async def test_small_writes_of_one_turn_share_frames(self) -> None:
        """A thousand small writes in one reactor turn travel in a few frames, not a
        thousand, and arrive whole and in order."""
        client, host, _, _ = await self.connected_pair()
        (receiving,) = self.listeners[0].connections
        frames_before = receiving._seq_in
        pieces = [b"%05d;" % n for n in range(1000)]
        for piece in pieces:
            client.transport.write(piece)
        await poll(reactor, lambda: len(host.received) >= 4 + 6000, what="every piece")
        self.assertEqual(bytes(host.received), b"ping" + b"".join(pieces))
        self.assertLess(receiving._seq_in - frames_before, 5)

    async def test_pull_producer_is_asked_again(self) -> None:
        """A non-streaming producer registered with a tunnel transport is asked for more
        each time the transport has sent what it wrote, until it is done."""
        chunks = [pattern(40_000 + n) for n in range(20)]

        class Pull:
            def __init__(self, transport: Any) -> None:
                self.transport = transport
                self.left = list(chunks)

            def resumeProducing(self) -> None:
                if self.left:
                    self.transport.write(self.left.pop(0))
                else:
                    self.transport.unregisterProducer()
                    self.transport.loseConnection()

            def stopProducing(self) -> None:
                self.left = []

        class Sender(Protocol):
            def connectionMade(self) -> None:
                self.transport.registerProducer(Pull(self.transport), False)

        _, _, _, _, endpoint = await self.tunnel(Factory.forProtocol(Sender), window=100_000)
        receiver = await endpoint.connect(Factory.forProtocol(Recorder))
        await within(reactor, receiver.ended, 20, "everything")
        self.assertEqual(bytes(receiver.received), b"".join(chunks))


class EndingTests(TunnelCase):
    async def test_gap_in_sequence_closes_both_sides(self) -> None:
        """A frame whose sequence number is not the next one closes the host's side with a
        reason naming the gap, and the gateway's side with the host's close."""
        client, host, _, gateway = await self.connected_pair()
        gateway.publish(client.transport._send_to, encode_frame(DATA, 999, b"out of order"))
        await within(reactor, host.ended, 10, "host side closes")
        host_reason = host.reason
        assert host_reason is not None
        await within(reactor, client.ended, 10, "gateway side closes")
        client_reason = client.reason
        assert client_reason is not None
        self.assertTrue(host_reason.check(TunnelLost))
        self.assertIn("gap in sequence", str(host_reason.value))
        self.assertIn("gap in sequence", str(client_reason.value))
        self.assertNotIn(b"out of order", host.received)

    async def test_lost_gateway_closes_host_side_after_silence(self) -> None:
        """When the gateway's link stops, the host's protocol is closed once no frame came
        for the silence timeout, with a reason saying so."""
        client, host, _, gateway = await self.connected_pair(keepalive=0.2, silence=1.0)
        # Keepalives keep an idle tunnel open past the silence timeout.
        idle = reactor.seconds()
        await poll(reactor, lambda: reactor.seconds() - idle > 1.5, timeout=5, what="idle time")
        self.assertIsNone(host.reason)
        await gateway.stop()
        await within(reactor, client.ended, 5, "gateway side closes")
        self.assertTrue(client.reason is not None and client.reason.check(TunnelLost))
        stopped = reactor.seconds()
        await within(reactor, host.ended, 10, "host side closes")
        reason = host.reason
        assert reason is not None
        self.assertTrue(reason.check(TunnelLost))
        self.assertIn("no frame", str(reason.value))
        self.assertGreaterEqual(reactor.seconds() - stopped, 0.5)

    async def test_nats_restart_closes_tunnels_and_new_ones_work(self) -> None:
        """A nats-server restart closes an open tunnel on both sides; once the links
        reconnect, a new tunnel carries bytes again."""
        client, host, server, gateway = await self.connected_pair()
        await server.restart()
        await within(reactor, client.ended, 15, "gateway side closes")
        client_reason = client.reason
        assert client_reason is not None
        await within(reactor, host.ended, 15, "host side closes")
        host_reason = host.reason
        assert host_reason is not None
        self.assertTrue(client_reason.check(TunnelLost))
        self.assertTrue(host_reason.check(TunnelLost))
        self.assertIn("NATS", str(client_reason.value))
        endpoint = TunnelEndpoint(gateway, "vt.h.test", GRANT, "gw-1")

        async def reconnected() -> Any:
            try:
                return await endpoint.connect(Factory.forProtocol(Recorder))
            except (Unreachable, RequestTimeout, error.ConnectError):
                return None

        again = await poll(reactor, reconnected, timeout=20, interval=0.2, what="a new tunnel")
        again.transport.write(b"after")
        again.transport.loseConnection()
        await within(reactor, again.ended, 10, "the new tunnel closes")

    async def test_stopping_host_tells_gateways(self) -> None:
        """A host that stops its listener and then its link at once still tells the
        gateway: the gateway's side ends cleanly with the host's reason."""
        client, host, _, _ = await self.connected_pair()
        (listener,) = self.listeners
        listener.stop()
        await self.host_link.stop()
        await within(reactor, client.ended, 10, "gateway side closes")
        self.assertTrue(client.reason is not None and client.reason.check(error.ConnectionDone))
        self.assertIn("stopped listening", str(client.reason.value))

    async def test_sending_past_the_window_closes(self) -> None:
        """A peer that sends more than the window while the receiver holds its data (a
        sender ignoring acks) gets the tunnel closed, so held data stays bounded."""
        client, host, _, gateway = await self.connected_pair(window=1000)
        host.transport.pauseProducing()
        transport = client.transport
        # Past the transport's own accounting, as a peer that ignores the window would.
        for _ in range(3):
            gateway.publish(transport._send_to, encode_frame(DATA, transport._seq_out, b"x" * 600))
            transport._seq_out += 1
        await within(reactor, host.ended, 10, "host side closes")
        assert host.reason is not None
        self.assertTrue(host.reason.check(TunnelLost))
        self.assertIn("past the window", str(host.reason.value))
        await within(reactor, client.ended, 10, "gateway side closes")

    async def test_close_is_clean_on_both_sides(self) -> None:
        """loseConnection on one side ends both with ConnectionDone after every written byte
        arrived."""
        client, host, _, _ = await self.connected_pair()
        client.transport.write(pattern(300_000))
        client.transport.loseConnection()
        await within(reactor, host.ended, 10, "host side closes")
        reason = host.reason
        assert reason is not None
        self.assertTrue(reason.check(error.ConnectionDone))
        self.assertEqual(bytes(host.received), b"ping" + pattern(300_000))
        await client.ended
        self.assertTrue(client.reason is not None and client.reason.check(error.ConnectionDone))

    async def test_tunnels_to_a_host_closed_at_once(self) -> None:
        """close_tunnels_to ends the tunnels to one subject on both sides, with the reason
        given, and leaves the others open."""
        client, host, _, gateway = await self.connected_pair()
        self.assertEqual(close_tunnels_to(gateway, "vt.h.elsewhere", "not this one"), 0)
        await deferLater(reactor, 0.2, lambda: None)
        self.assertIsNone(client.reason)
        self.assertEqual(close_tunnels_to(gateway, "vt.h.test", "host test is down"), 1)
        await within(reactor, client.ended, 5, "gateway side closes")
        reason = client.reason
        assert reason is not None
        self.assertTrue(reason.check(TunnelLost))
        self.assertIn("host test is down", str(reason.value))
        await within(reactor, host.ended, 5, "host side closes")
        self.assertEqual(close_tunnels_to(gateway, "vt.h.test", "again"), 0)


class FrameTests(SynchronousTestCase):
    @given(st.sampled_from(KINDS), st.integers(0, 2**64 - 1), st.binary(max_size=2000))
    def test_round_trip(self, kind: bytes, seq: int, body: bytes) -> None:
        """A frame decodes to the kind, sequence number and body it was encoded from."""
        if kind == ACK:
            body = body[:8].ljust(8, b"\0")
        elif kind == PING:
            body = b""
        self.assertEqual(decode_frame(encode_frame(kind, seq, body)), Frame(kind, seq, body))

    @given(st.binary(max_size=40))
    def test_any_bytes_decode_or_raise_value_error(self, raw: bytes) -> None:
        """Any bytes either decode to a frame that encodes back to them, or raise ValueError."""
        try:
            frame = decode_frame(raw)
        except ValueError:
            return
        self.assertEqual(encode_frame(frame.kind, frame.seq, frame.body), raw)

    def test_short_and_unknown_frames_are_refused(self) -> None:
        """A frame shorter than its header, of an unknown type, or an ack without 8 bytes
        is a ValueError."""
        for raw in (b"", b"D1234567", b"X" + bytes(8), ACK + bytes(8) + b"\1", PING + bytes(8) + b"x"):
            with self.assertRaises(ValueError):
                decode_frame(raw)
        self.assertEqual(decode_frame(CLOSE + bytes(8) + b"bye").body, b"bye")

    def test_cluster_address_is_a_value(self) -> None:
        """ClusterAddress compares by name and is an IAddress for Twisted."""
        from twisted.internet.interfaces import IAddress

        self.assertEqual(ClusterAddress("gw"), ClusterAddress("gw"))
        self.assertTrue(IAddress.providedBy(ClusterAddress("gw")))


class MemoryHTTPTests(MemoryServers, HTTPTests):
    """HTTPTests over vibetwist.testing.MemoryNATS."""


class MemoryWebSocketTests(MemoryServers, WebSocketTests):
    """WebSocketTests over vibetwist.testing.MemoryNATS."""


class MemoryFlowTests(MemoryServers, FlowTests):
    """FlowTests over vibetwist.testing.MemoryNATS."""
