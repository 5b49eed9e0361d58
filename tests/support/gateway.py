"""L{FakeGateway}: what the browser client sees of a cluster gateway, in front of one
real host daemon, for the browser tests of the client's gateway views.

It answers ``GET /api/config`` (the daemon's, with ``"gateway": true`` and the host
names), ``GET /api/hosts`` (the hosts the test says there are), ``GET`` and ``POST
/api/sessions`` and ``GET /api/sessions/ID`` (the daemon's sessions, each with the host
the test put it on) itself. Every other request (the page, the other per-session
routes, SSE, ``/ws/sessions/ID``, ``/buffers``) goes to the daemon byte for byte over
a connection of its own, Host and Origin unchanged, so the daemon sees the browser's
own request. A session whose host the test marks unreachable gets what a gateway
answers then: 503 on its REST routes, an error frame and a close on
``/ws/sessions/ID``.

L{FakeGateway.stop} drops every connection and stops listening, as a gateway that dies
would; L{FakeGateway.start} listens again on the same port.
"""

from __future__ import annotations

import json
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from klein import Klein
from twisted.internet import protocol
from twisted.internet.interfaces import ITransport
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.support.daemon import Client, Daemon

#: Request headers left out when a plain request is sent on to the daemon (a fresh
#: Content-Length and ``Connection: close`` take their place).
_HOP_HEADERS = {b"connection", b"keep-alive", b"content-length", b"transfer-encoding"}


class _DaemonSide(protocol.Protocol):
    """The connection to the daemon for one browser connection: what comes back goes to
    the browser, and either end closing closes the other."""

    def __init__(self, browser: ITransport, first: bytes) -> None:
        self.browser = browser
        self.first = first

    def connectionMade(self) -> None:
        self.transport.write(self.first)
        self.browser.resumeProducing()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        self.browser.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.browser.loseConnection()


class _BrowserSide(protocol.Protocol):
    """A browser connection taken over from the web server, relayed to the daemon."""

    def __init__(self, gateway: FakeGateway) -> None:
        self.gateway = gateway
        self.daemon: _DaemonSide | None = None
        self.path = b""

    def dataReceived(self, data: bytes) -> None:
        if self.daemon is not None and self.daemon.transport is not None:
            self.daemon.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.gateway.relayed.discard(self)
        if self.daemon is not None and self.daemon.transport is not None:
            self.daemon.transport.loseConnection()


class _Forward(Resource):
    """Sends the request on to the daemon and relays the connection from then on."""

    isLeaf = True

    def __init__(self, gateway: FakeGateway) -> None:
        super().__init__()
        self.gateway = gateway

    def render(self, request: Any) -> Any:
        upgrade = (request.getHeader(b"upgrade") or b"").lower() == b"websocket"
        lines = [request.method + b" " + request.uri + b" HTTP/1.1"]
        body = b"" if upgrade else request.content.read()
        for name, values in request.requestHeaders.getAllRawHeaders():
            if upgrade or name.lower() not in _HOP_HEADERS:
                lines.extend(name + b": " + value for value in values)
        if not upgrade:
            lines += [b"Content-Length: %d" % len(body), b"Connection: close"]
        first = b"\r\n".join(lines) + b"\r\n\r\n" + body

        channel = request.channel
        channel.setTimeout(None)
        transport, channel.transport = channel.transport, None
        browser = _BrowserSide(self.gateway)
        browser.path = request.path
        transport.protocol = browser
        browser.makeConnection(transport)
        transport.pauseProducing()  # until the daemon's side is connected
        self.gateway.relayed.add(browser)
        daemon = _DaemonSide(transport, first)
        browser.daemon = daemon
        endpoint = protocol.ClientCreator(self.gateway.reactor, lambda: daemon)
        endpoint.connectTCP("127.0.0.1", self.gateway.daemon.port).addErrback(
            lambda _: transport.loseConnection()
        )
        return NOT_DONE_YET


class _Unreachable(WebSocketServerProtocol):
    """What a gateway answers on /ws/sessions/ID when it cannot reach the session's host."""

    host = ""

    def onOpen(self) -> None:
        message = {"type": "error", "message": f"host {self.host} is unreachable"}
        self.sendMessage(json.dumps(message).encode(), isBinary=False)
        self.sendClose(1000, "host unreachable")


class _Site(Site):
    """A Site that remembers its connections, so that stopping can drop them."""

    def __init__(self, gateway: FakeGateway, resource: Any) -> None:
        super().__init__(resource)
        self.gateway = gateway

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        self.gateway.channels.append(channel)
        return channel


class FakeGateway:
    """A gateway's answers in front of one real daemon (see the module's docstring).

    hosts is what ``GET /api/hosts`` answers (change it at will); a session is on the
    host ``owners`` says, else on default_host; ``created`` holds the bodies of the
    ``POST /api/sessions`` received, ``unreachable`` the hosts to answer for as a gateway
    that cannot reach them does.
    """

    app = Klein()

    def __init__(self, reactor: Any, daemon: Daemon, hosts: list[dict[str, Any]], default_host: str) -> None:
        self.reactor = reactor
        self.daemon = daemon
        self.client = Client(reactor, daemon)
        self.hosts = hosts
        self.default_host = default_host
        self.owners: dict[str, str] = {}
        self.created: list[dict[str, Any]] = []
        self.unreachable: set[str] = set()
        #: While true, /api/events answers 503 (counted in refused_events), as a gateway
        #: behind a load balancer may while it starts.
        self.refuse_events = False
        self.refused_events = 0
        self.channels: list[Any] = []
        self.relayed: set[_BrowserSide] = set()
        self.port = 0
        self._listening: Any = None
        self._site = _Site(self, self.app.resource())

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        """Listen (again) on the gateway's port (a free one the first time)."""
        self._listening = self.reactor.listenTCP(self.port, self._site, interface="127.0.0.1")
        self.port = self._listening.getHost().port

    async def stop(self) -> None:
        """Stop listening and drop every connection, as a gateway that dies does."""
        if self._listening is not None:
            await self._listening.stopListening()
            self._listening = None
        for browser in list(self.relayed):
            if browser.transport is not None:
                browser.transport.abortConnection()
        for channel in self.channels:
            transport = getattr(getattr(channel, "_channel", channel), "transport", None)
            if transport is not None:
                transport.abortConnection()
        self.channels.clear()

    async def close(self) -> None:
        await self.stop()
        await self.client.close()

    def relaying(self, path: str) -> int:
        """How many connections are relayed to the daemon for requests of this path."""
        return sum(1 for browser in self.relayed if browser.path == path.encode())

    def owner(self, session_id: str) -> str:
        return self.owners.get(session_id, self.default_host)

    def _json(self, request: Any, value: Any, code: int = 200) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(value).encode()

    def _session_id(self, request: Any) -> str | None:
        """The session a request is about, for the routes a gateway sends to its host."""
        path = request.path.decode()
        for prefix in ("/api/sessions/", "/ws/sessions/"):
            if path.startswith(prefix):
                return path[len(prefix) :].split("/")[0]
        return None

    @app.route("/api/config", methods=["GET"])
    async def config(self, request: Any) -> bytes:
        answer = dict(await self.client.get("/api/config"))
        answer.update(gateway=True, hosts=sorted(view["host"] for view in self.hosts))
        return self._json(request, answer)

    @app.route("/api/hosts", methods=["GET"])
    def list_hosts(self, request: Any) -> bytes:
        return self._json(request, sorted(self.hosts, key=lambda view: view["host"]))

    @app.route("/api/sessions", methods=["GET"])
    async def list_sessions(self, request: Any) -> bytes:
        sessions = await self.client.get("/api/sessions")
        return self._json(request, [dict(s, host=self.owner(s["id"])) for s in sessions])

    @app.route("/api/sessions", methods=["POST"])
    async def create_session(self, request: Any) -> bytes:
        body = json.loads(request.content.read())
        self.created.append(dict(body))
        host = body.pop("host", None) or self.default_host
        code, answer, _ = await self.client.request("POST", "/api/sessions", body)
        if code == 200:
            self.owners[answer["sessionId"]] = host
        return self._json(request, answer, code)

    @app.route("/api/sessions/<string:session_id>", methods=["GET"])
    async def one_session(self, request: Any, session_id: str) -> bytes:
        host = self.owner(session_id)
        if host in self.unreachable:
            return self._unreachable(request, host)
        code, answer, _ = await self.client.request("GET", request.uri.decode())
        if code == 200:
            answer = dict(answer, host=host)
        return self._json(request, answer, code)

    def _unreachable(self, request: Any, host: str) -> bytes:
        request.setHeader(b"retry-after", b"2")
        return self._json(request, {"error": f"host {host} is unreachable"}, 503)

    @app.route("/", branch=True)
    def elsewhere(self, request: Any) -> Any:
        if request.path == b"/api/events" and self.refuse_events:
            self.refused_events += 1
            return self._json(request, {"error": "starting"}, 503)
        session_id = self._session_id(request)
        host = self.owner(session_id) if session_id else None
        if host in self.unreachable:
            if request.path.startswith(b"/ws/"):
                factory = WebSocketServerFactory()
                factory.protocol = type("Unreachable", (_Unreachable,), {"host": host})
                return WebSocketResource(factory)
            return self._unreachable(request, host)
        return _Forward(self)


def host_view(name: str, status: str = "up", running: int = 0, exited: int = 0) -> dict[str, Any]:
    """One item of GET /api/hosts."""
    stamp = "2026-01-01T00:00:00Z"
    return {
        "host": name,
        "status": status,
        "sessions": {"running": running, "exited": exited},
        "lastHeartbeat": stamp,
        "version": "0.1.0",
        "startedAt": stamp,
    }
