"""A gateway's WebSockets relayed to real host daemons (vibetwist.cluster.relay).

The hosts are real ``twistd -n vibetunnel`` processes; the gateway's relays run in
the test's reactor behind a plain twisted.web site. GatewayWebSocketTests reach a host
through a ``ConnectHost`` that hands out TCP endpoints to its port; TunnelRelayTests
through real tunnels over a real nats-server, forwarded to the host's port;
ClusterHostRelayTests through tunnels to a host started with ``--nats``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from autobahn.twisted.websocket import WebSocketClientFactory, create_client_agent
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateResponseAccept
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.portforward import ProxyClient, ProxyClientFactory, ProxyFactory, ProxyServer
from twisted.web.resource import NoResource, Resource
from twisted.web.server import Site
from zope.interface import implementer

from tests.support.daemon import Daemon, WSClient, open_ws, poll, within
from tests.support.e2e import DaemonTestCase
from tests.support.nats import NATSServer
from tests.support.screens import all_rows, screen_of
from vibetwist._reactor.internals import compressing
from vibetwist.cluster.errors import HostUnreachable
from vibetwist.cluster.link import NATSLink
from vibetwist.cluster.options import NATSConfig
from vibetwist.cluster.relay import WebSocketRelays
from vibetwist.cluster.tunnel import RequestTimeout, TunnelEndpoint, TunnelListener, Unreachable
from vibetwist.errors import NotFound
from vibetwist.model.snapshot import decode, decode_buffers_frame

FULL = {"kind": "full", "user": None}
#: Six megabytes of x, in lines of 99, after the viewers had time to join.
FLOOD = "sleep 0.5; head -c 6000000 /dev/zero | tr '\\0' x | fold -w 99; sleep 0.2"


class _Routes(Resource):
    """The gateway's three WebSocket routes, with the grant the test gives (full by default)."""

    def __init__(self, relays: WebSocketRelays, grant: Callable[[], dict[str, Any]] = lambda: FULL) -> None:
        super().__init__()
        self._relays = relays
        self._grant = grant

    def getChild(self, path: bytes, request: Any) -> Any:
        where = request.path.decode()
        grant = self._grant()
        if where == "/buffers":
            return self._relays.buffers_resource(request, grant)
        if where == "/ws/input":
            session_id = (request.args.get(b"sessionId") or [b""])[0].decode()
            return self._relays.input_resource(request, session_id, grant)
        if where.startswith("/ws/sessions/"):
            return self._relays.sessions_resource(request, unquote(where.rsplit("/", 1)[1]), grant)
        return NoResource()


@implementer(IStreamClientEndpoint)
class _Recorded:
    """A TCP endpoint that remembers the protocols it connected."""

    def __init__(self, port: int, made: list[Any]) -> None:
        self._endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=2)
        self._made = made

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = self._endpoint.connect(factory)
        return d.addCallback(self._made_one)

    def _made_one(self, protocol: Any) -> Any:
        self._made.append(protocol)
        return protocol


class _Opening(WSClient):
    """A client that tells its factory when its handshake is done."""

    def onOpen(self) -> None:
        super().onOpen()
        self.factory.opened.callback(self)


class _ToHost(ProxyClient):
    """The TCP side of a tunnel forwarded to a host daemon. When it ends it takes itself off
    the tunnel as the tunnel's producer first: a tunnel closes once nothing is registered."""

    def connectionLost(self, reason: Any = None) -> None:
        if self.peer is not None:
            self.peer.transport.unregisterProducer()
        super().connectionLost(reason)


class _ToHostFactory(ProxyClientFactory):
    protocol = _ToHost


class _Forward(ProxyServer):
    clientProtocolFactory = _ToHostFactory


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayWebSocketTests(DaemonTestCase):
    """/ws/sessions, /ws/input and /buffers through a gateway, compared with the host's own."""

    timeout = 90

    async def _set_up(self) -> None:
        await super()._set_up()
        # Autobahn's factories keep their timers in batches on the reactor (through txaio);
        # once every connection is closed, what is left of them times out nothing.
        before = set(reactor.getDelayedCalls())

        def cancel_left_timers() -> None:
            for call in reactor.getDelayedCalls():
                batch = getattr(call.func, "__qualname__", "") == "_BatchedTimer._notify_bucket"
                if batch and call not in before and call.active():
                    call.cancel()

        self.addCleanup(cancel_left_timers)
        #: host name -> port of its daemon.
        self.hosts: dict[str, int] = {"alpha": self.daemon.port, "gone": _closed_port()}
        #: session id -> host name (what the gateway's listings would have told it).
        self.owners: dict[str, str] = {}
        self.legs: list[Any] = []
        self.grants: list[dict[str, Any]] = []
        self.relays = WebSocketRelays(reactor, self.connect_host, self.locate, compress=True)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(_Routes(self.relays)))
        self.gateway_port = port.getHost().port
        self.addCleanup(port.stopListening)
        self.addCleanup(self.relays.stop)

    def connect_host(self, host: str, grant: dict[str, Any]) -> IStreamClientEndpoint:
        self.grants.append(grant)
        return _Recorded(self.hosts[host], self.legs)

    def locate(self, session_id: str) -> defer.Deferred[str]:
        host = self.owners.get(session_id)
        if host is None:
            return defer.fail(NotFound("Session not found"))
        if host == "down":
            return defer.fail(HostUnreachable("down"))
        return defer.succeed(host)

    async def session_on(self, daemon: Daemon, host: str, command: list[str], **fields: Any) -> str:
        client = self.client if daemon is self.daemon else self.client_for(daemon)
        sid = await client.create(command, **fields)
        if daemon is self.daemon:
            self.sessions.append(sid)
        self.owners[sid] = host
        return sid

    async def gateway_ws(self, path: str, deflate: bool = False) -> Any:
        """A client of the gateway's path, its handshake done; with deflate it offers
        permessage-deflate, as browsers do."""
        url = f"ws://127.0.0.1:{self.gateway_port}{path}"
        if not deflate:
            client = await create_client_agent(reactor).open(url, {}, WSClient)
        else:
            factory = WebSocketClientFactory(url)
            factory.protocol = _Opening
            factory.opened = defer.Deferred()
            factory.setProtocolOptions(
                perMessageCompressionOffers=[PerMessageDeflateOffer()],
                perMessageCompressionAccept=lambda r: PerMessageDeflateResponseAccept(r),
            )
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.gateway_port)
            await endpoint.connect(factory)
            client = await within(reactor, factory.opened, 5, "the handshake")
        self.addCleanup(self.drop, client)
        return client

    async def host_ws(self, daemon: Daemon, path: str) -> Any:
        client = await open_ws(reactor, daemon, path)
        self.addCleanup(self.drop, client)
        return client

    def drop(self, client: WSClient) -> None:
        if client.state != client.STATE_CLOSED:
            client.dropConnection(abort=True)

    def relay_of(self, kind: str) -> Any:
        found = [r for r in self.relays.connections if type(r).__name__ == kind]
        self.assertEqual(len(found), 1, f"one {kind} open")
        return found[0]

    # -- /ws/sessions/ID ----------------------------------------------------------------

    async def test_stream_through_the_gateway_is_the_hosts_stream_byte_for_byte(self) -> None:
        """A viewer through the gateway (compressed) gets the very messages, text and binary,
        that a viewer of the host gets: the replay, and then what input through the
        gateway's /ws/input makes the program print."""
        sid = await self.session_on(
            self.daemon,
            "alpha",
            ["sh", "-c", "printf '\\033[1;31mred\\033[0m and plain\\r\\n'; seq 1 50; exec cat"],
            cols=60,
            rows=12,
        )
        await self.client.wait_text(sid, "50")
        direct = await self.host_ws(self.daemon, f"/ws/sessions/{sid}")
        relayed = await self.gateway_ws(f"/ws/sessions/{sid}", deflate=True)
        self.assertTrue(compressing(relayed), "the gateway took permessage-deflate")
        typing = await self.gateway_ws(f"/ws/input?sessionId={sid}")
        typing.sendMessage("h\u00e9llo\r".encode())
        for viewer in (direct, relayed):
            await viewer.wait_for(lambda v=viewer: v.texts() and "h\u00e9llo" in screen_of(v).text())
        await poll(reactor, lambda: len(relayed.messages) >= len(direct.messages), what="all relayed")
        self.assertEqual(relayed.texts()[0]["type"], "replay")
        self.assertEqual(relayed.messages, direct.messages)
        self.assertEqual(self.grants, [FULL, FULL])

    async def test_input_and_resize_through_the_gateway(self) -> None:
        """Resize and keystrokes sent to the gateway reach the program; its exit closes the
        gateway's socket with the host's code after the host's exit message."""
        sid = await self.session_on(self.daemon, "alpha", ["bash", "--norc", "--noprofile"], cols=80, rows=24)
        await self.client.wait_status(sid, "running")
        term = await self.gateway_ws(f"/ws/sessions/{sid}")
        term.send_json({"type": "resize", "cols": 91, "rows": 33})
        typing = await self.gateway_ws(f"/ws/input?sessionId={sid}")
        typing.sendMessage(b"stty size")
        typing.sendMessage(b"\x00enter\x00")
        await term.wait_for(lambda: term.texts() and "33 91" in screen_of(term).text())
        term.sendMessage(b"exit 7\r", isBinary=True)
        code = await within(reactor, term.closed, 10, "the close")
        self.assertEqual(code, 1000)
        self.assertEqual(term.texts()[-1], {"type": "exit", "code": 7})
        self.assertIn({"type": "resize", "cols": 91, "rows": 33}, term.texts())
        await poll(reactor, lambda: not self.relays.connections or len(self.relays.connections) == 1)

    async def test_read_only_view_through_the_gateway(self) -> None:
        """The host's own answer to a read-only viewer comes through: typing gets its error frame."""
        sid = await self.session_on(self.daemon, "alpha", ["cat"])
        await self.client.wait_status(sid, "running")
        viewer = await self.gateway_ws(f"/ws/sessions/{sid}?readonly=1&token=dropped")
        viewer.sendMessage(b"typed\r", isBinary=True)
        await viewer.wait_for(lambda: [t for t in viewer.texts() if t["type"] == "error"])
        self.assertEqual(viewer.texts()[-1]["message"], "This view is read-only")
        self.assertTrue(viewer.texts()[0]["readOnly"])
        self.assertEqual(self.legs[0].factory.resource, f"/ws/sessions/{sid}?readonly=1")

    async def test_unknown_session_closes_4404(self) -> None:
        """A session no host owns closes the socket with 4404, as a host does."""
        viewer = await self.gateway_ws("/ws/sessions/no-such-session")
        code = await within(reactor, viewer.closed, 5, "the close")
        self.assertEqual(code, 4404)
        self.assertEqual(self.legs, [])

    async def test_session_the_host_does_not_know_closes_4404(self) -> None:
        """A session the gateway placed on a host that answers 404 for it (deleted meanwhile)
        closes with 4404, as on the host, and is not taken for an unreachable host."""
        self.owners["gone-from-alpha"] = "alpha"
        for path in ("/ws/sessions/gone-from-alpha", "/ws/input?sessionId=gone-from-alpha"):
            viewer = await self.gateway_ws(path)
            self.assertEqual(await within(reactor, viewer.closed, 5, "the close"), 4404, path)
            self.assertEqual(viewer.texts(), [], path)

    async def test_unreachable_host_gets_an_error_frame_and_1011(self) -> None:
        """An owner nobody answers for: an error frame naming the host, then close 1011;
        the same when locating the session already found its host unreachable."""
        self.owners["s-gone"] = "gone"
        self.owners["s-down"] = "down"
        for sid, host in (("s-gone", "gone"), ("s-down", "down")):
            for path in (f"/ws/sessions/{sid}", f"/ws/input?sessionId={sid}"):
                viewer = await self.gateway_ws(path)
                code = await within(reactor, viewer.closed, 5, "the close")
                self.assertEqual(code, 1011, path)
                self.assertEqual(
                    viewer.texts(), [{"type": "error", "message": f"host {host} is unreachable"}], path
                )

    async def test_lost_leg_is_reopened_and_a_fresh_replay_arrives(self) -> None:
        """When the host leg drops without a close (a lost tunnel), the gateway opens another and
        the viewer gets a fresh replay and then live output, on the same socket."""
        sid = await self.session_on(self.daemon, "alpha", ["cat"], cols=50, rows=10)
        await self.client.wait_status(sid, "running")
        viewer = await self.gateway_ws(f"/ws/sessions/{sid}")
        await viewer.wait_for(lambda: viewer.texts())
        typing = await self.gateway_ws(f"/ws/input?sessionId={sid}")
        typing.sendMessage(b"before\r")
        await viewer.wait_for(lambda: "before" in screen_of(viewer).text())
        stream_leg = self.relay_of("_StreamRelay").legs["alpha"]
        stream_leg.protocol.transport.abortConnection()
        replays = lambda: [t for t in viewer.texts() if t["type"] == "replay"]  # noqa: E731
        await viewer.wait_for(lambda: len(replays()) == 2)
        self.assertEqual(stream_leg.opens, 2)
        self.assertEqual(viewer.state, viewer.STATE_OPEN)
        input_leg = self.relay_of("_InputRelay").legs["alpha"]
        input_leg.protocol.transport.abortConnection()
        await poll(reactor, lambda: input_leg.opens == 2, what="the input leg reopened")
        typing.sendMessage(b"after\r")
        await viewer.wait_for(lambda: "after" in screen_of(viewer).text())
        # The screen after the second replay holds what was typed before it, drawn again.
        self.assertIn("before", screen_of(viewer).text())

    async def test_host_gone_for_good_gets_an_error_frame_after_the_retries(self) -> None:
        """When the leg is lost and the host does not come back, the reopening gives up after a
        few tries: the viewer gets the error frame and close 1011."""
        gamma = await self.start_daemon()
        self.hosts["gamma"] = gamma.port
        sid = await self.session_on(gamma, "gamma", ["cat"])
        viewer = await self.gateway_ws(f"/ws/sessions/{sid}")
        await viewer.wait_for(lambda: viewer.texts())
        await gamma.crash()
        code = await within(reactor, viewer.closed, 15, "the close")
        self.assertEqual(code, 1011)
        self.assertEqual(viewer.texts()[-1], {"type": "error", "message": "host gamma is unreachable"})
        self.assertEqual(self.relays.live_legs, set())

    async def test_browser_closing_closes_its_host_leg(self) -> None:
        """When the browser goes, the gateway closes its leg to the host."""
        sid = await self.session_on(self.daemon, "alpha", ["cat"])
        viewer = await self.gateway_ws(f"/ws/sessions/{sid}")
        await viewer.wait_for(lambda: viewer.texts())
        leg = self.legs[0]
        viewer.sendClose(1000)
        await poll(reactor, lambda: leg.state == leg.STATE_CLOSED, what="the leg closed")
        self.assertEqual(self.relays.connections, set())

    async def test_stop_closes_every_socket_with_1001(self) -> None:
        """stop() closes every relayed socket with 1001 (going away) and fires once they are closed."""
        sid = await self.session_on(self.daemon, "alpha", ["cat"])
        viewer = await self.gateway_ws(f"/ws/sessions/{sid}")
        buffers = await self.gateway_ws("/buffers")
        await viewer.wait_for(lambda: viewer.texts())
        await within(reactor, self.relays.stop(), 5, "stop")
        self.assertEqual(self.relays.connections, set())
        self.assertEqual(await within(reactor, viewer.closed, 5, "close"), 1001)
        self.assertEqual(await within(reactor, buffers.closed, 5, "close"), 1001)

    # -- the slow viewer ------------------------------------------------------------

    async def test_slow_viewer_holds_bounded_memory_while_others_go_on(self) -> None:
        """A viewer that never reads costs the gateway a bounded number of bytes (its leg stops
        reading), while another viewer of the same flood gets it to the end."""
        sid = await self.session_on(self.daemon, "alpha", ["sh", "-c", FLOOD], cols=100, rows=20)
        slow = await self.gateway_ws(f"/ws/sessions/{sid}")
        slow.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        slow.pause()
        fast = await self.gateway_ws(f"/ws/sessions/{sid}")
        slow_relay = await poll(
            reactor,
            lambda: [
                r
                for r in self.relays.connections
                if r.transport.getPeer().port == slow.transport.getHost().port
            ],
            what="the slow relay",
        )
        slow_relay = slow_relay[0]
        held: list[int] = []
        backed_up: list[bool] = []

        def sample() -> bool:
            held.append(slow_relay.held())
            backed_up.append(slow_relay._backed_up)
            return fast.state == fast.STATE_CLOSED

        await poll(reactor, sample, timeout=60, interval=0.01, what="the fast viewer's end")
        self.assertEqual(fast.close_code, 1000)
        rows = [r for r in all_rows(screen_of(fast, scrollback=70_000)) if r]
        self.assertEqual(rows[-1], "x" * (6_000_000 % 99))
        self.assertEqual(sum(len(r) for r in rows), 6_000_000, "every byte of the flood, in order")
        self.assertTrue(any(backed_up), "the slow viewer's connection backed up")
        self.assertLess(max(held), 256 * 1024, "bytes the gateway held for the slow viewer")
        self.assertGreater(sum(len(p) for _, p in fast.messages), 6_000_000)
        slow.resume()
        self.assertEqual(await within(reactor, slow.closed, 30, "the slow viewer's end"), 1000)
        self.assertEqual(slow.texts()[-1]["type"], "exit")

    # -- /buffers -------------------------------------------------------------------

    async def test_buffers_of_two_hosts_over_one_socket(self) -> None:
        """One /buffers socket to the gateway gets snapshots of sessions on two hosts, each in the
        host's own frame; an unknown session gets the host's error frame."""
        beta = await self.start_daemon()
        self.hosts["beta"] = beta.port
        on_alpha = await self.session_on(self.daemon, "alpha", ["sh", "-c", "echo on-alpha; exec cat"])
        on_beta = await self.session_on(beta, "beta", ["sh", "-c", "echo on-beta; exec cat"])
        await self.client.wait_text(on_alpha, "on-alpha")
        await self.client_for(beta).wait_text(on_beta, "on-beta")
        buffers = await self.gateway_ws("/buffers")
        for sid in (on_alpha, on_beta, "no-such-session"):
            buffers.send_json({"type": "subscribe", "sessionId": sid})

        def shown() -> dict[str, str]:
            seen = {}
            for payload in buffers.binaries():
                session_id, snapshot = decode_buffers_frame(payload)
                rows = ["".join(c.char for c in row).strip() for row in decode(snapshot).rows]
                seen[session_id] = " ".join(r for r in rows if r)
            return seen if len(seen) == 2 else {}

        seen = await buffers.wait_for(shown)
        self.assertEqual(seen, {on_alpha: "on-alpha", on_beta: "on-beta"})
        await buffers.wait_for(lambda: len([t for t in buffers.texts() if t["type"] != "connected"]) >= 3)
        texts = buffers.texts()
        self.assertEqual(texts[0], {"type": "connected", "version": "1.0"})
        self.assertEqual([t for t in texts if t["type"] == "connected"], [texts[0]])
        self.assertIn({"type": "subscribed", "sessionId": on_alpha}, texts)
        self.assertIn({"type": "subscribed", "sessionId": on_beta}, texts)
        host = await self.host_ws(self.daemon, "/buffers")
        host.send_json({"type": "subscribe", "sessionId": "no-such-session"})
        await host.wait_for(lambda: len(host.texts()) == 2)
        self.assertIn(host.texts()[1], texts)
        self.assertEqual(sorted(self.relay_of("_BuffersRelay").legs), ["alpha", "beta"])
        buffers.send_json({"type": "ping"})
        await buffers.wait_for(lambda: [t for t in buffers.texts() if t["type"] == "pong"])

    async def test_buffers_leg_lost_is_reopened_and_subscribed_again(self) -> None:
        """A /buffers leg that drops is opened again and sent its subscriptions again: snapshots
        of that host's session go on arriving after it."""
        sid = await self.session_on(self.daemon, "alpha", ["cat"], cols=40, rows=5)
        await self.client.wait_status(sid, "running")
        buffers = await self.gateway_ws("/buffers")
        buffers.send_json({"type": "subscribe", "sessionId": sid})
        await buffers.wait_for(lambda: buffers.binaries())
        leg = self.relay_of("_BuffersRelay").legs["alpha"]
        leg.protocol.transport.abortConnection()
        await poll(reactor, lambda: leg.opens == 2, what="the leg reopened")
        await buffers.wait_for(lambda: len([t for t in buffers.texts() if t["type"] == "subscribed"]) == 2)
        typing = await self.gateway_ws(f"/ws/input?sessionId={sid}")
        typing.sendMessage(b"later\r")

        def shows_later() -> bool:
            for payload in buffers.binaries():
                rows = ["".join(c.char for c in row) for row in decode(decode_buffers_frame(payload)[1]).rows]
                if any("later" in r for r in rows):
                    return True
            return False

        await buffers.wait_for(shows_later)

    async def test_buffers_bad_messages_get_the_hosts_error_frames(self) -> None:
        """What the gateway answers itself reads as the host's answers do."""
        buffers = await self.gateway_ws("/buffers")
        host = await self.host_ws(self.daemon, "/buffers")
        for client in (buffers, host):
            client.sendMessage(b"{not json")
            client.sendMessage(b"[1]")
            client.sendMessage(b"\x00", isBinary=True)
            client.send_json({"type": "dance"})
            await client.wait_for(lambda c=client: len(c.texts()) == 5)
        self.assertEqual(buffers.texts(), host.texts())
        self.assertEqual(json.loads(buffers.messages[0][1])["type"], "connected")


class TunnelRelayTests(DaemonTestCase):
    """The relays over real tunnels: a gateway's link and a host's link to a real nats-server,
    a TunnelListener on ``vt.h.alpha`` forwarding each tunnel to the host daemon's port."""

    timeout = 90

    async def _set_up(self) -> None:
        await super()._set_up()
        before = set(reactor.getDelayedCalls())

        def cancel_left_timers() -> None:
            for call in reactor.getDelayedCalls():
                batch = getattr(call.func, "__qualname__", "") == "_BatchedTimer._notify_bucket"
                if batch and call not in before and call.active():
                    call.cancel()

        self.addCleanup(cancel_left_timers)
        self.nats = NATSServer(reactor)
        self.addCleanup(lambda: defer.ensureDeferred(self.nats.cleanup()))
        await self.nats.start()
        host_link = await self.link("host-alpha")
        self.gateway_link = await self.link("gateway")
        forward = ProxyFactory("127.0.0.1", self.daemon.port)
        forward.protocol = _Forward
        forward.noisy = False
        self.listener = TunnelListener(host_link, "vt.h.alpha", forward)
        await self.listener.start()
        self.addCleanup(self.listener.stop)
        self.owners: dict[str, str] = {}
        self.relays = WebSocketRelays(reactor, self.connect_host, self.locate)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(_Routes(self.relays)))
        self.gateway_port = port.getHost().port
        self.addCleanup(port.stopListening)
        self.addCleanup(self.relays.stop)

    async def link(self, name: str) -> NATSLink:
        link = NATSLink(reactor, NATSConfig(servers=(self.nats.url,)), name)
        self.addCleanup(link.stop)
        await link.start().addTimeout(10, reactor)
        return link

    def connect_host(self, host: str, grant: dict[str, Any]) -> IStreamClientEndpoint:
        return TunnelEndpoint(self.gateway_link, f"vt.h.{host}", grant, "gateway")

    def locate(self, session_id: str) -> defer.Deferred[str]:
        host = self.owners.get(session_id)
        return defer.succeed(host) if host else defer.fail(NotFound("Session not found"))

    async def gateway_ws(self, path: str) -> Any:
        client = await create_client_agent(reactor).open(
            f"ws://127.0.0.1:{self.gateway_port}{path}", {}, WSClient
        )
        self.addCleanup(
            lambda: client.dropConnection(abort=True) if client.state != client.STATE_CLOSED else None
        )
        return client

    async def test_stream_over_a_tunnel_is_the_hosts_stream(self) -> None:
        """Through a tunnel too, the relayed viewer gets the host's own messages, and input
        through the gateway reaches the program."""
        sid = await self.create(["sh", "-c", "seq 1 30; exec cat"], cols=50, rows=8)
        self.owners[sid] = "alpha"
        await self.client.wait_text(sid, "30")
        direct = await open_ws(reactor, self.daemon, f"/ws/sessions/{sid}")
        self.addCleanup(
            lambda: direct.dropConnection(abort=True) if direct.state != direct.STATE_CLOSED else None
        )
        relayed = await self.gateway_ws(f"/ws/sessions/{sid}")
        typing = await self.gateway_ws(f"/ws/input?sessionId={sid}")
        typing.sendMessage(b"over the tunnel\r")
        for viewer in (direct, relayed):
            await viewer.wait_for(lambda v=viewer: v.texts() and "over the tunnel" in screen_of(v).text())
        await poll(reactor, lambda: len(relayed.messages) >= len(direct.messages), what="all relayed")
        self.assertEqual(relayed.messages, direct.messages)
        self.assertEqual(len(self.listener.connections), 2)

    async def test_host_nobody_serves_gets_the_error_frame_at_once(self) -> None:
        """A host no daemon serves on NATS (no responders): the error frame and 1011 come
        within a second, not after a timeout."""
        self.owners["s-nobody"] = "nobody"
        viewer = await self.gateway_ws("/ws/sessions/s-nobody")
        code = await within(reactor, viewer.closed, 1.0, "the close")
        self.assertEqual(code, 1011)
        self.assertEqual(viewer.texts(), [{"type": "error", "message": "host nobody is unreachable"}])

    async def test_nats_restart_reopens_the_leg_with_a_fresh_replay(self) -> None:
        """When nats-server restarts, the tunnel ends; the gateway opens a new one once NATS is
        back, and the same browser socket gets a fresh replay and then live output."""
        sid = await self.create(["cat"], cols=40, rows=6)
        self.owners[sid] = "alpha"
        await self.client.wait_status(sid, "running")
        viewer = await self.gateway_ws(f"/ws/sessions/{sid}")
        await viewer.wait_for(lambda: viewer.texts())
        await self.nats.restart()
        replays = lambda: [t for t in viewer.texts() if t["type"] == "replay"]  # noqa: E731
        await viewer.wait_for(lambda: len(replays()) == 2, timeout=15)
        self.assertEqual(viewer.state, viewer.STATE_OPEN)
        typing = await self.gateway_ws(f"/ws/input?sessionId={sid}")
        typing.sendMessage(b"after the restart\r")
        await viewer.wait_for(lambda: "after the restart" in screen_of(viewer).text())

    async def test_slow_viewer_over_a_tunnel_is_bounded(self) -> None:
        """Over a tunnel a viewer that never reads makes the gateway stop reading its tunnel:
        what the gateway holds for it (its socket's unsent bytes and what the tunnel holds
        undelivered) stays bounded by the window, while another viewer gets the whole flood."""
        sid = await self.create(["sh", "-c", FLOOD], cols=100, rows=20)
        self.owners[sid] = "alpha"
        slow = await self.gateway_ws(f"/ws/sessions/{sid}")
        slow.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        slow.pause()
        fast = await self.gateway_ws(f"/ws/sessions/{sid}")
        port = slow.transport.getHost().port
        found = await poll(
            reactor,
            lambda: [r for r in self.relays.connections if r.transport.getPeer().port == port],
            what="the slow relay",
        )
        relay = found[0]
        held: list[int] = []

        def sample() -> bool:
            leg = relay.legs.get("alpha")
            tunnel = leg.protocol.transport if leg is not None and leg.protocol is not None else None
            undelivered = sum(len(b) for b in tunnel._held) if tunnel is not None else 0
            held.append(relay.held() + undelivered)
            return fast.state == fast.STATE_CLOSED

        await poll(reactor, sample, timeout=60, interval=0.01, what="the fast viewer's end")
        self.assertEqual(fast.close_code, 1000)
        rows = [r for r in all_rows(screen_of(fast, scrollback=70_000)) if r]
        self.assertEqual(sum(len(r) for r in rows), 6_000_000, "every byte of the flood, in order")
        self.assertLess(max(held), 256 * 1024 + 256 * 1024, "the socket's bytes plus one window")
        slow.resume()
        self.assertEqual(await within(reactor, slow.closed, 30, "the slow viewer's end"), 1000)


class ClusterHostRelayTests(DaemonTestCase):
    """The relays to a real cluster host: ``twistd vibetunnel --nats URL --host-id alpha``,
    reached only through tunnels, which trusts the grant the gateway puts in each."""

    timeout = 90
    shared = False

    async def _set_up(self) -> None:
        await super()._set_up()
        before = set(reactor.getDelayedCalls())

        def cancel_left_timers() -> None:
            for call in reactor.getDelayedCalls():
                batch = getattr(call.func, "__qualname__", "") == "_BatchedTimer._notify_bucket"
                if batch and call not in before and call.active():
                    call.cancel()

        self.addCleanup(cancel_left_timers)
        self.nats = NATSServer(reactor)
        self.addCleanup(lambda: defer.ensureDeferred(self.nats.cleanup()))
        await self.nats.start()
        self.daemon_args = ("--nats", self.nats.url, "--host-id", "alpha")
        self.daemon = await self.start_daemon()
        self.client = self.client_for(self.daemon)
        self.addCleanup(self._end_sessions)
        self.gateway_link = NATSLink(reactor, NATSConfig(servers=(self.nats.url,)), "gateway")
        self.addCleanup(self.gateway_link.stop)
        await self.gateway_link.start().addTimeout(10, reactor)
        self.grant: dict[str, Any] = FULL
        self.owners: dict[str, str] = {}
        self.relays = WebSocketRelays(reactor, self.connect_host, self.locate)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Site(_Routes(self.relays, lambda: self.grant))
        )
        self.gateway_port = port.getHost().port
        self.addCleanup(port.stopListening)
        self.addCleanup(self.relays.stop)
        # The host serves tunnels once it has joined: its subject answers.
        await poll(reactor, self._joined, timeout=15, what="the host joined")

    async def _joined(self) -> bool:
        endpoint = TunnelEndpoint(self.gateway_link, "vt.h.alpha", FULL, "gateway", timeout=1)
        try:
            protocol = await endpoint.connect(Factory.forProtocol(Protocol))
        except (Unreachable, RequestTimeout):
            return False
        protocol.transport.loseConnection()
        return True

    def connect_host(self, host: str, grant: dict[str, Any]) -> IStreamClientEndpoint:
        return TunnelEndpoint(self.gateway_link, f"vt.h.{host}", grant, "gateway")

    def locate(self, session_id: str) -> defer.Deferred[str]:
        host = self.owners.get(session_id)
        return defer.succeed(host) if host else defer.fail(NotFound("Session not found"))

    async def gateway_ws(self, path: str) -> Any:
        client = await create_client_agent(reactor).open(
            f"ws://127.0.0.1:{self.gateway_port}{path}", {}, WSClient
        )
        self.addCleanup(
            lambda: client.dropConnection(abort=True) if client.state != client.STATE_CLOSED else None
        )
        return client

    async def test_a_cluster_hosts_stream_through_the_gateway(self) -> None:
        """The relayed viewer of a real cluster host gets the messages a direct viewer gets, its
        typing reaches the program, and the program's exit closes the browser with 1000."""
        sid = await self.create(["sh", "-c", "seq 1 20; read line; echo got $line; exit 3"], cols=40, rows=6)
        self.owners[sid] = "alpha"
        await self.client.wait_text(sid, "20")
        direct = await open_ws(reactor, self.daemon, f"/ws/sessions/{sid}")
        self.addCleanup(
            lambda: direct.dropConnection(abort=True) if direct.state != direct.STATE_CLOSED else None
        )
        relayed = await self.gateway_ws(f"/ws/sessions/{sid}")
        typing = await self.gateway_ws(f"/ws/input?sessionId={sid}")
        typing.sendMessage(b"word\r")
        self.assertEqual(await within(reactor, relayed.closed, 10, "the relayed close"), 1000)
        self.assertEqual(await within(reactor, direct.closed, 10, "the direct close"), 1000)
        self.assertEqual(relayed.messages, direct.messages)
        self.assertEqual(relayed.texts()[-1], {"type": "exit", "code": 3})
        self.assertIn("got word", screen_of(relayed).text())

    async def test_a_read_grant_is_what_the_host_enforces(self) -> None:
        """With a read grant for the session, the host's own read-only rules apply through the
        gateway: the view is read-only, typing gets the host's error, /ws/input is refused."""
        sid = await self.create(["cat"])
        self.owners[sid] = "alpha"
        await self.client.wait_status(sid, "running")
        self.grant = {"kind": "read", "session": sid}
        viewer = await self.gateway_ws(f"/ws/sessions/{sid}")
        await viewer.wait_for(lambda: viewer.texts())
        self.assertTrue(viewer.texts()[0]["readOnly"])
        viewer.sendMessage(b"typed\r", isBinary=True)
        await viewer.wait_for(lambda: [t for t in viewer.texts() if t["type"] == "error"])
        typing = await self.gateway_ws(f"/ws/input?sessionId={sid}")
        self.assertEqual(await within(reactor, typing.closed, 10, "the input's close"), 4403)
        self.assertEqual((await self.client.text(sid)).strip(), "")

    async def test_buffers_of_a_cluster_host(self) -> None:
        """/buffers through the gateway gets a cluster host's snapshots."""
        sid = await self.create(["sh", "-c", "echo snapshot-me; exec cat"])
        self.owners[sid] = "alpha"
        await self.client.wait_text(sid, "snapshot-me")
        buffers = await self.gateway_ws("/buffers")
        buffers.send_json({"type": "subscribe", "sessionId": sid})

        def shows() -> bool:
            for payload in buffers.binaries():
                session_id, snapshot = decode_buffers_frame(payload)
                rows = ["".join(c.char for c in row) for row in decode(snapshot).rows]
                if session_id == sid and any("snapshot-me" in r for r in rows):
                    return True
            return False

        await buffers.wait_for(shows)
        await buffers.wait_for(lambda: {"type": "subscribed", "sessionId": sid} in buffers.texts())
