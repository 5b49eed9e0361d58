# -*- test-case-name: tests.test_gateway -*-
"""The gateway: one site in front of every host of a cluster.

A gateway runs no programs. It serves the routes a host serves (the browser
client, the REST API, SSE, the WebSockets) behind the same Host/Origin check
and login gate, and answers each request from the hosts it reaches through
:data:`ConnectHost` (in production a tunnel over NATS to ``vt.h.<host>``):

- ``GET /api/sessions`` asks every host that is up at once (2 s each; a host
  that fails is left out and logged) and adds ``"host"`` to each session; the
  answers teach the gateway which host owns which session id.
- ``POST /api/sessions`` goes to the host named by ``"host"`` (400 if unknown,
  503 if down), else to the up host with the fewest running sessions.
- Every ``/api/sessions/ID...`` request goes to the session's owner (``GET
  /api/sessions/ID`` with ``"host"`` added, as in the listing), its
  response streamed back with backpressure (SSE ``/stream``, ``/recording``):
  the browser's request is the consumer of the host's response. An owner that
  cannot be reached gets ``503 {"error": "host NAME is unreachable"}``.
- ``/api/events`` merges the streams of every up host, each event with
  ``"host"``, its SSE id the vector ``HOST:N,HOST:N`` of every host's last id.
- The WebSocket routes are handed to :class:`vibetwist.cluster.relay.WebSocketRelays`,
  which finds a session's owner with :meth:`Gateway.locate`.

The grant the gateway's gate gave a request is the grant of its tunnel: a host
trusts what arrives over the cluster's credentials and acts within that grant.

A gateway's NATS link receives under ``_INBOX.g.<gateway-id>`` only (``--gateway-id``,
by default the hostname and random digits), so NATS permissions can give each
gateway its own inboxes and no host a gateway's.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode

import treq
from klein import Klein
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from treq.client import HTTPClient
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, succeed
from twisted.internet.interfaces import IPushProducer, IStreamClientEndpoint
from twisted.internet.protocol import Protocol as BodyProtocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IResponse
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import RequestRedirect
from zope.interface import implementer

from vibetwist import __version__
from vibetwist.cluster.errors import HostUnreachable, NoHostUp
from vibetwist.cluster.host import host_subject
from vibetwist.cluster.link import NATSLink
from vibetwist.cluster.options import check_gateway_id, default_gateway_id, gateway_inbox_prefix
from vibetwist.cluster.registry import HostDirectory
from vibetwist.cluster.relay import WebSocketRelays
from vibetwist.cluster.tunnel import TunnelEndpoint, close_tunnels_to
from vibetwist.errors import BadRequest, NotFound, RequestError, UpgradeRequired
from vibetwist.login.authority import Authority, authority_from_options
from vibetwist.login.gate import AUTH_REQUIRED, READ_ONLY, redact, request_grant, request_token
from vibetwist.login.tokens import ANONYMOUS, SECRET_BYTES, Grant, SecretError, Tokens
from vibetwist.model.launch import default_shell
from vibetwist.model.peercred import Peer
from vibetwist.server.api import NOTIFICATION_PREFERENCES, QUICK_START, _body, _client, _json
from vibetwist.server.limits import ConnectionLimiter, Limits, connection_peer
from vibetwist.server.listen import Listener, parse_listen
from vibetwist.server.metrics import route_template
from vibetwist.server.push import PushAPI
from vibetwist.server.site import guarded_resource, make_site
from vibetwist.server.static import WebClient

#: (host name, grant) -> an endpoint whose connections reach that host's site.
ConnectHost = Callable[[str, dict[str, Any]], IStreamClientEndpoint]

#: Seconds each host has to answer a listing.
LIST_TIMEOUT = 2.0
#: Seconds a forwarded request waits for the host's response to begin.
RESPONSE_TIMEOUT = 30.0
#: Seconds before a merged event stream opens again the leg of a host that ended.
LEG_RETRY = 1.0
HEARTBEAT_INTERVAL = 30.0
#: The request headers a forwarded request carries to the host.
FORWARDED_HEADERS = (b"content-type", b"accept", b"last-event-id")
#: Response headers that belong to one connection, not to what it carries.
HOP_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"upgrade",
        b"proxy-authenticate",
        b"trailer",
        b"date",
        b"server",
    }
)
#: The URL authority of forwarded requests: a loopback name, which every host's check accepts.
HOST_AUTHORITY = "localhost"


class Directory(Protocol):
    """What the gateway reads of the hosts (:class:`vibetwist.cluster.registry.HostDirectory`)."""

    def hosts(self) -> list[Any]: ...
    def get(self, name: str) -> Any | None: ...
    def up(self) -> list[Any]: ...
    def when_changed(self, callback: Callable[[Any], None]) -> None: ...


def tunnel_grant(grant: Grant | None) -> dict[str, Any]:
    """The grant a tunnel carries for a request the gateway's gate gave grant."""
    grant = grant if grant is not None else ANONYMOUS
    if grant.read_only:
        return {"kind": "read", "session": grant.session_id}
    return {"kind": "full", "user": grant.user_id}


#: What the gateway itself uses to learn who owns which session.
GATEWAY_GRANT = {"kind": "full", "user": None}


def parse_vector(text: str | None) -> dict[str, int]:
    """The per-host ids of a vector event id ``HOST:N,HOST:N``; what is not one is left out."""
    out: dict[str, int] = {}
    if not text:
        return out
    for part in text.split(","):
        name, sep, number = part.strip().rpartition(":")
        if sep and name and number.isascii() and number.isdigit() and len(number) <= 18:
            out[name] = int(number)
    return out


def format_vector(ids: dict[str, int]) -> str:
    return ",".join(f"{name}:{ids[name]}" for name in sorted(ids))


@implementer(IAgentEndpointFactory)
class _Endpoints:
    """An endpoint factory for Agent.usingEndpointFactory: every URI goes to one endpoint."""

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self._endpoint = endpoint

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        return self._endpoint


class _BodyRelay(BodyProtocol):
    """Writes a host's response body to the browser's request as it arrives.

    The host's connection is the request's push producer: when the browser reads
    slowly, twisted.web pauses it, and the tunnel stops acknowledging, so the
    host slows down for this viewer only. A browser that leaves stops it.
    """

    def __init__(self, request: Any, gateway: Gateway) -> None:
        self._request = request
        self._gateway = gateway
        self._finished = False

    def connectionMade(self) -> None:
        self._gateway.relaying.add(self._request)
        self._request.registerProducer(self.transport, True)
        self._request.notifyFinish().addErrback(self._gone)

    def _gone(self, _: Failure) -> None:
        self._finished = True
        if self.transport is not None:
            IPushProducer(self.transport).stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if not self._finished:
            self._gateway.relayed_bytes += len(data)
            self._request.write(data)

    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]
        self._gateway.relaying.discard(self._request)
        self._gateway.tunnel_closed()
        if self._finished:
            return
        self._finished = True
        self._request.unregisterProducer()
        if reason.check(ResponseDone, PotentialDataLoss) is None:
            # Cut off mid-body (the tunnel was lost): the browser must not take it as whole.
            transport = getattr(self._request.channel, "transport", None)
            if transport is not None:
                transport.abortConnection()
                return
        self._request.finish()


class _Relayed(Resource):
    """A host's response, relayed to the browser: status, headers, then the body as it comes."""

    isLeaf = True

    def __init__(self, response: IResponse, gateway: Gateway) -> None:
        super().__init__()
        self._response = response
        self._gateway = gateway

    def render(self, request: Any) -> Any:
        response = self._response
        request.setResponseCode(response.code, response.phrase)
        for name, values in response.headers.getAllRawHeaders():
            if name.lower() not in HOP_HEADERS:
                request.responseHeaders.setRawHeaders(name, values)
        response.deliverBody(_BodyRelay(request, self._gateway))
        return NOT_DONE_YET


class GatewayMetrics:
    """``GET /metrics`` of a gateway: hosts up and down, tunnels open, requests by route."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "vibetwist_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.registry.register(_GatewayCollector(gateway))

    def count_request(self, method: bytes, path: bytes, status: int) -> None:
        name = method.decode("latin-1")
        route = route_template(self._gateway.app.url_map, name, path)
        self.requests.labels(route, name, str(status)).inc()

    def render(self, request: Any) -> bytes:
        accept = request.getHeader(b"accept")
        encoder, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        request.setHeader(b"content-type", content_type.encode())
        request.setHeader(b"cache-control", b"no-store")
        return encoder(self.registry)


class _GatewayCollector:
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        hosts = GaugeMetricFamily(
            "vibetwist_gateway_hosts", "Hosts the gateway knows, by status", labels=["status"]
        )
        counts = {"up": 0, "down": 0, "stopped": 0}
        for view in self._gateway.directory.hosts():
            counts[view.status] = counts.get(view.status, 0) + 1
        for status, count in sorted(counts.items()):
            hosts.add_metric([status], count)
        yield hosts
        yield GaugeMetricFamily(
            "vibetwist_gateway_tunnels_open",
            "Connections to hosts the gateway's HTTP requests and event streams hold open",
            value=self._gateway.tunnels_open,
        )
        yield CounterMetricFamily(
            "vibetwist_gateway_relayed_bytes",
            "Bytes of hosts' HTTP responses relayed to browsers",
            value=self._gateway.relayed_bytes,
        )
        yield GaugeMetricFamily(
            "vibetwist_gateway_sessions_known",
            "Session ids whose host the gateway knows",
            value=len(self._gateway.owners),
        )


class _EventLeg(BodyProtocol):
    """The /api/events stream of one host, read for a merged stream."""

    def __init__(self, merged: MergedEvents, host: str) -> None:
        self._merged = merged
        self._host = host
        self._buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                break
            block, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            self._merged.block(self._host, block)

    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]
        self._merged.leg_ended(self._host, self)

    def stop(self) -> None:
        if self.transport is not None:
            IPushProducer(self.transport).stopProducing()


class MergedEvents:
    """One browser's ``/api/events``: every up host's stream, merged (see the module's text)."""

    log = Logger()

    def __init__(self, gateway: Gateway, request: Any, grant: dict[str, Any]) -> None:
        self._gateway = gateway
        self._request = request
        self._grant = grant
        header = request.getHeader(b"last-event-id")
        if header is None:
            header = (request.args.get(b"lastEventId") or [None])[0]
        self.ids = parse_vector(header.decode("latin-1") if header is not None else None)
        self._legs: dict[str, _EventLeg | None] = {}
        #: What arrived before "connected" was written.
        self._early: list[bytes] | None = []
        self.done = False

    def start(self) -> None:
        request = self._request
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")
        request.notifyFinish().addBoth(lambda _: self.close())
        self._gateway.event_streams.add(self)
        opening = [self.open(view.name) for view in self._gateway.directory.up()]
        # "connected" once every up host's stream has begun (or failed, or 2 s passed): a
        # client that has it gets every event from then on.
        waiting: Deferred[Any] = DeferredList(opening).addTimeout(LIST_TIMEOUT, self._gateway.reactor)
        waiting.addBoth(lambda _: self._connected())

    def _connected(self) -> None:
        if self.done:
            return
        early, self._early = self._early, None
        self._request.write(b'event: connected\ndata: {"type":"connected"}\n\n' + b"".join(early or []))

    def _write(self, data: bytes) -> None:
        if self._early is not None:
            self._early.append(data)
        else:
            self._request.write(data)

    def open(self, host: str) -> Deferred[None]:
        """Follow host's stream unless it is followed already; fires once it has begun (or failed)."""
        if self.done or host in self._legs:
            return succeed(None)
        self._legs[host] = None
        return ensureDeferred(self._open(host))

    async def _open(self, host: str) -> None:
        headers = {}
        if host in self.ids:
            headers[b"last-event-id"] = [str(self.ids[host]).encode()]
        try:
            response = await self._gateway.forward(host, self._grant, "GET", "/api/events", Headers(headers))
        except Exception as e:
            self.log.info("events of host {host}: {error}", host=host, error=str(e))
            self._legs.pop(host, None)
            self._retry(host)
            return
        if self.done or response.code != 200:
            self._legs.pop(host, None)
            self._gateway.tunnel_closed()
            return
        leg = _EventLeg(self, host)
        self._legs[host] = leg
        response.deliverBody(leg)

    def _retry(self, host: str) -> None:
        def again() -> None:
            view = self._gateway.directory.get(host)
            if view is not None and view.status == "up":
                self.open(host)

        if not self.done:
            deferLater(self._gateway.reactor, LEG_RETRY, again).addErrback(lambda _: None)

    def leg_ended(self, host: str, leg: _EventLeg) -> None:
        self._gateway.tunnel_closed()
        if self._legs.get(host) is leg:
            del self._legs[host]
            self._retry(host)

    def block(self, host: str, block: bytes) -> None:
        """One SSE message of host's stream, written to the browser with the host in it."""
        if self.done:
            return
        fields: dict[bytes, bytes] = {}
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if name == b"data":
                data.append(value)
            else:
                fields[name] = value
        event = fields.get(b"event", b"message")
        if not data or event == b"connected":
            return
        try:
            value = json.loads(b"\n".join(data))
        except ValueError:
            return
        if isinstance(value, dict):
            value["host"] = host
        event_id = fields.get(b"id", b"")
        if event_id.isdigit():
            self.ids[host] = int(event_id)
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        self._write(
            f"id: {format_vector(self.ids)}\nevent: {event.decode('latin-1')}\ndata: {body}\n\n".encode()
        )

    def heartbeat(self) -> None:
        if not self.done:
            self._write(b":heartbeat\n\n")

    def close(self) -> None:
        if self.done:
            return
        self.done = True
        self._gateway.event_streams.discard(self)
        for leg in list(self._legs.values()):
            if leg is not None:
                leg.stop()
        if not self._request.finished and not getattr(self._request, "_disconnected", False):
            self._request.finish()


class _MergedEventsResource(Resource):
    isLeaf = True

    def __init__(self, stream: MergedEvents) -> None:
        super().__init__()
        self._stream = stream

    def render(self, request: Any) -> Any:
        self._stream.start()
        return NOT_DONE_YET


class Gateway:
    """The routes of a gateway, answered from the hosts of a directory."""

    app = Klein()
    log = Logger()

    def __init__(
        self,
        reactor: Any,
        directory: Directory,
        connect_host: ConnectHost,
        authority: Authority,
        *,
        relays: WebSocketRelays | None = None,
        web: WebClient | None = None,
        peer_of: Callable[[Any], Peer] = connection_peer,
        metrics: bool = True,
        compress: bool = False,
    ) -> None:
        self.reactor = reactor
        self.directory = directory
        self.connect_host = connect_host
        self.authority = authority
        #: The WebSocket routes, relayed to the hosts.
        self.relays = (
            relays if relays is not None else WebSocketRelays(reactor, connect_host, self.locate, compress)
        )
        self.web = web if web is not None else WebClient()
        self.peer_of = peer_of
        #: Session id -> the name of the host that owns it, from every answer seen.
        self.owners: dict[str, str] = {}
        #: Per host: sessions this gateway created since the heartbeat it last saw of it.
        self._created: dict[str, tuple[str, int]] = {}
        self.tunnels_open = 0
        #: The browsers' requests a host's response is being relayed to, and the bytes relayed.
        self.relaying: set[Any] = set()
        self.relayed_bytes = 0
        self.event_streams: set[MergedEvents] = set()
        self.metrics = GatewayMetrics(self) if metrics else None
        self.push = PushAPI(None, reactor.seconds)
        self._started = reactor.seconds()
        self._heartbeat: LoopingCall | None = None
        directory.when_changed(self._host_changed)

    def start(self) -> None:
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = self.reactor
        self._heartbeat.start(HEARTBEAT_INTERVAL, now=False)

    def stop(self) -> Deferred[None]:
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        for stream in list(self.event_streams):
            stream.close()
        return self.relays.stop()

    def _beat(self) -> None:
        for stream in list(self.event_streams):
            stream.heartbeat()

    def _host_changed(self, view: Any) -> None:
        if view.status == "up":
            for stream in list(self.event_streams):
                stream.open(view.name)

    def resource(self) -> Resource:
        return self.app.resource()

    # -- reaching hosts ----------------------------------------------------------------

    def tunnel_closed(self) -> None:
        self.tunnels_open = max(0, self.tunnels_open - 1)

    async def forward(
        self,
        host: str,
        grant: dict[str, Any],
        method: str,
        path: str,
        headers: Headers | None = None,
        data: bytes | None = None,
        timeout: float | None = RESPONSE_TIMEOUT,
    ) -> IResponse:
        """The response of host to one request, its body still to come (the caller reads it
        and then calls :meth:`tunnel_closed`); HostUnreachable if the host cannot be reached."""
        endpoint = self.connect_host(host, grant)
        agent = Agent.usingEndpointFactory(
            self.reactor, _Endpoints(endpoint), pool=HTTPConnectionPool(self.reactor, persistent=False)
        )
        client = HTTPClient(agent)
        try:
            response = await client.request(
                method,
                f"http://{HOST_AUTHORITY}{path}",
                headers=headers,
                data=data,
                unbuffered=True,
                timeout=timeout,
            )
        except Exception as e:
            self.log.info(
                "{method} {path} to host {host}: {error}",
                method=method,
                path=redact(path),
                host=host,
                error=repr(e),
            )
            raise HostUnreachable(host) from None
        self.tunnels_open += 1
        return response

    async def _json_from(
        self,
        host: str,
        grant: dict[str, Any],
        method: str,
        path: str,
        body: Any = None,
        timeout: float = LIST_TIMEOUT,
    ) -> tuple[int, Any]:
        """(status, JSON body) of one request to a host, all within timeout seconds."""

        async def ask() -> tuple[int, Any]:
            data = None
            headers = Headers({})
            if body is not None:
                data = json.dumps(body).encode()
                headers.setRawHeaders(b"content-type", [b"application/json"])
            response = await self.forward(host, grant, method, path, headers, data, timeout)
            try:
                raw = await treq.content(response)
            finally:
                self.tunnel_closed()
            return response.code, json.loads(raw) if raw else None

        try:
            return await ensureDeferred(ask()).addTimeout(timeout, self.reactor)
        except HostUnreachable:
            raise
        except Exception as e:
            self.log.info(
                "{method} {path} to host {host}: {error}", method=method, path=path, host=host, error=repr(e)
            )
            raise HostUnreachable(host) from None

    async def _listing(self, host: str, grant: dict[str, Any]) -> list[dict[str, Any]]:
        code, sessions = await self._json_from(host, grant, "GET", "/api/sessions")
        if code != 200 or not isinstance(sessions, list):
            raise HostUnreachable(host)
        out = []
        for session in sessions:
            if isinstance(session, dict) and isinstance(session.get("id"), str):
                session["host"] = host
                self.owners[session["id"]] = host
                out.append(session)
        return out

    async def list_all(self, grant: dict[str, Any]) -> list[dict[str, Any]]:
        """The sessions of every up host at once, each with its host; a host that fails is left out."""
        hosts = [view.name for view in self.directory.up()]
        results: list[Any] = []
        pending = [ensureDeferred(self._listing(name, grant)) for name in hosts]
        for name, d in zip(hosts, pending, strict=True):
            try:
                results.extend(await d)
            except Exception as e:
                self.log.warn("host {host} left out of the listing: {error}", host=name, error=str(e))
        results.sort(key=lambda s: str(s.get("startedAt") or ""), reverse=True)
        return results

    def locate(self, session_id: str) -> Deferred[str]:
        """The host that owns a session; NotFound if no up host lists it."""
        return ensureDeferred(self._locate(session_id))

    async def _locate(self, session_id: str) -> str:
        host = self.owners.get(session_id)
        if host is None:
            await self.list_all(GATEWAY_GRANT)
            host = self.owners.get(session_id)
        if host is None:
            raise NotFound("Session not found")
        return host

    def _load(self, view: Any) -> int:
        """The running sessions of a host: its last heartbeat's count plus what this gateway
        created there since."""
        record = view.record
        seen, created = self._created.get(view.name, (record.heartbeat, 0))
        if seen != record.heartbeat:
            created = 0
        return int(record.running) + created

    def _created_on(self, host: str) -> None:
        view = self.directory.get(host)
        if view is None:
            return
        seen, created = self._created.get(host, (view.record.heartbeat, 0))
        if seen != view.record.heartbeat:
            seen, created = view.record.heartbeat, 0
        self._created[host] = (seen, created + 1)

    # -- errors -------------------------------------------------------------------------

    @app.handle_errors(RequestError)
    def _bad_request(self, request: Any, failure: Any) -> bytes:
        error = failure.value
        body = {"error": error.message}
        if error.details:
            body["details"] = error.details
        answer = _json(request, body, error.status)
        if error.retry_after is not None:
            request.setHeader(b"retry-after", str(error.retry_after).encode())
        return answer

    @app.handle_errors(RouteNotFound)
    @app.handle_errors(RequestRedirect)
    def _no_route(self, request: Any, failure: Any) -> bytes:
        return _json(request, {"error": "Not found"}, 404)

    @app.handle_errors(MethodNotAllowed)
    def _bad_method(self, request: Any, failure: Any) -> bytes:
        return _json(request, {"error": "Method not allowed"}, 405)

    @app.handle_errors(Exception)
    def _internal(self, request: Any, failure: Any) -> bytes:
        self.log.failure("internal error answering {uri}", failure, uri=redact(request.uri.decode("latin-1")))
        return _json(request, {"error": "Internal server error"}, 500)

    # -- the gateway's own routes -------------------------------------------------------

    @app.route("/", methods=["GET"])
    def index(self, request: Any) -> bytes:
        return self.web.page(request)

    @app.route("/static/<name>", methods=["GET"])
    def static(self, request: Any, name: str) -> bytes:
        return self.web.asset(request, name)

    @app.route("/api/health", methods=["GET"])
    def health(self, request: Any) -> bytes:
        return _json(
            request,
            {
                "status": "ok",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "mode": "gateway",
                "version": __version__,
                "uptime": round(self.reactor.seconds() - self._started, 3),
                "pid": os.getpid(),
                "hosts": {"up": len(self.directory.up()), "known": len(self.directory.hosts())},
            },
        )

    @app.route("/api/auth/config", methods=["GET"])
    def auth_config(self, request: Any) -> bytes:
        return _json(request, self.authority.config())

    @app.route("/api/auth/verify", methods=["GET"])
    def auth_verify(self, request: Any) -> bytes:
        grant = self.authority.login_grant(request_token(request))
        if grant is None:
            request.setHeader(b"www-authenticate", b'Bearer realm="VibeTunnel"')
            return _json(request, {"valid": False, "error": AUTH_REQUIRED}, 401)
        if grant.read_only:
            return _json(request, {"error": READ_ONLY}, 403)
        return _json(request, {"valid": True, "userId": grant.user_id})

    @app.route("/api/auth/password", methods=["POST"])
    async def auth_password(self, request: Any) -> bytes:
        client = _client(request, self.peer_of(request), self.authority)
        return _json(request, await self.authority.password_login(client, _body(request)))

    @app.route("/api/auth/challenge", methods=["POST"])
    def auth_challenge(self, request: Any) -> bytes:
        client = _client(request, self.peer_of(request), self.authority)
        return _json(request, self.authority.challenge(client, _body(request)))

    @app.route("/api/auth/ssh-key", methods=["POST"])
    async def auth_ssh_key(self, request: Any) -> bytes:
        client = _client(request, self.peer_of(request), self.authority)
        return _json(request, await self.authority.ssh_key_login(client, _body(request)))

    @app.route("/api/auth/current-user", methods=["GET"])
    def current_user(self, request: Any) -> bytes:
        grant = request_grant(request)
        return _json(request, {"userId": grant.user_id if grant is not None and grant.user_id else None})

    @app.route("/api/config", methods=["GET"])
    def config(self, request: Any) -> bytes:
        return _json(
            request,
            {
                "repositoryBasePath": "~",
                "serverConfigured": True,
                "quickStartCommands": [
                    {"name": "shell", "command": os.path.basename(default_shell())},
                    *({"command": command} for command in QUICK_START),
                ],
                "notificationPreferences": NOTIFICATION_PREFERENCES,
                "gateway": True,
                "hosts": sorted(view.name for view in self.directory.hosts()),
            },
        )

    @app.route("/api/server/status", methods=["GET"])
    def server_status(self, request: Any) -> bytes:
        return _json(request, {"macAppConnected": False, "isHQMode": False, "version": __version__})

    # A gateway sends no push notifications: its push routes answer as a host's with --no-push.

    @app.route("/api/push/vapid-public-key", methods=["GET"])
    def push_key(self, request: Any) -> bytes:
        return _json(request, *self.push.public_key())

    @app.route("/api/push/subscribe", methods=["POST"])
    def push_subscribe(self, request: Any) -> bytes:
        return _json(request, self.push.subscribe(_body(request)))

    @app.route("/api/push/unsubscribe", methods=["POST"])
    def push_unsubscribe(self, request: Any) -> bytes:
        return _json(request, self.push.unsubscribe(_body(request)))

    @app.route("/api/push/test", methods=["POST"])
    async def push_test(self, request: Any) -> bytes:
        return _json(request, await self.push.test(_body(request)))

    @app.route("/api/push/status", methods=["GET"])
    def push_status(self, request: Any) -> bytes:
        return _json(request, self.push.status())

    @app.route("/api/hosts", methods=["GET"])
    def hosts(self, request: Any) -> bytes:
        views = sorted(self.directory.hosts(), key=lambda view: view.name)
        return _json(request, [view.to_json() for view in views])

    @app.route("/metrics", methods=["GET"])
    def metrics_route(self, request: Any) -> bytes:
        if self.metrics is None:
            raise NotFound("Metrics are off (--no-metrics)")
        return self.metrics.render(request)

    # -- sessions -------------------------------------------------------------------------

    @app.route("/api/sessions", methods=["GET"])
    async def list_sessions(self, request: Any) -> bytes:
        return _json(request, await self.list_all(tunnel_grant(request_grant(request))))

    @app.route("/api/sessions", methods=["POST"])
    async def create_session(self, request: Any) -> Any:
        body = _body(request)
        host = body.pop("host", None)
        if host is not None:
            if not isinstance(host, str):
                raise BadRequest("host must be a string")
            view = self.directory.get(host)
            if view is None:
                raise BadRequest(f"Unknown host: {host[:100]}")
            if view.status != "up":
                raise HostUnreachable(host)
        else:
            up = self.directory.up()
            if not up:
                raise NoHostUp()
            host = min(up, key=lambda view: (self._load(view), view.name)).name
        code, answer = await self._json_from(
            host, tunnel_grant(request_grant(request)), "POST", "/api/sessions", body, RESPONSE_TIMEOUT
        )
        if code == 200 and isinstance(answer, dict) and isinstance(answer.get("sessionId"), str):
            self.owners[answer["sessionId"]] = host
            self._created_on(host)
            answer["host"] = host
        return _json(request, answer, code)

    @app.route("/api/cleanup-exited", methods=["POST"])
    async def cleanup_exited(self, request: Any) -> bytes:
        grant = tunnel_grant(request_grant(request))
        hosts = [view.name for view in self.directory.up()]
        pending = [
            ensureDeferred(self._json_from(h, grant, "POST", "/api/cleanup-exited", {})) for h in hosts
        ]
        count = 0
        for name, d in zip(hosts, pending, strict=True):
            try:
                code, answer = await d
            except HostUnreachable:
                self.log.warn("host {host} left out of the clean-up", host=name)
                continue
            if code == 200 and isinstance(answer, dict):
                count += int(answer.get("localCleaned") or 0)
        return _json(
            request,
            {"success": True, "message": f"{count} exited sessions cleaned up", "localCleaned": count},
        )

    async def _to_owner(self, request: Any, session_id: str) -> Resource:
        """The owner's answer to this request, relayed as it comes."""
        host = await self._locate(session_id)
        headers = Headers({})
        for name in FORWARDED_HEADERS:
            value = request.getHeader(name)
            if value is not None:
                headers.setRawHeaders(name, [value])
        content = request.content
        data = content.read() if content is not None and request.method != b"GET" else None
        path = quote(request.path.decode("latin-1"), safe="/%:@!$&'()*+,;=-._~")
        query = [
            (k, v) for k, v in parse_qsl(request.uri.partition(b"?")[2].decode("latin-1")) if k != "token"
        ]
        if query:
            path += "?" + urlencode(query)
        response = await self.forward(
            host,
            tunnel_grant(request_grant(request)),
            request.method.decode("ascii"),
            path,
            headers,
            data or None,
        )
        return _Relayed(response, self)

    @app.route("/api/sessions/<session_id>/share", methods=["POST"])
    async def share_session(self, request: Any, session_id: str) -> bytes:
        """A share link signed with the gateways' secret, once the owner has said the session
        exists: it works through every gateway of the cluster."""
        body = _body(request)
        host = await self._locate(session_id)
        code, answer = await self._json_from(
            host, tunnel_grant(request_grant(request)), "GET", f"/api/sessions/{quote(session_id, safe='')}"
        )
        if code != 200:
            return _json(request, answer, code)
        return _json(request, self.authority.share(session_id, body))

    @app.route("/api/sessions/<session_id>", methods=["GET", "PATCH", "DELETE"])
    async def session(self, request: Any, session_id: str) -> Any:
        if request.method != b"GET":
            return await self._to_owner(request, session_id)
        # One session as its owner answers it, with the owner's name, as in the listing.
        host = await self._locate(session_id)
        code, answer = await self._json_from(
            host,
            tunnel_grant(request_grant(request)),
            "GET",
            f"/api/sessions/{quote(session_id, safe='')}",
            timeout=RESPONSE_TIMEOUT,
        )
        if code == 200 and isinstance(answer, dict):
            answer["host"] = host
        return _json(request, answer, code)

    @app.route("/api/sessions/<session_id>/<part>", methods=["GET", "POST", "DELETE", "PATCH"])
    async def session_part(self, request: Any, session_id: str, part: str) -> Resource:
        return await self._to_owner(request, session_id)

    @app.route("/api/events", methods=["GET"])
    def events(self, request: Any) -> Resource:
        return _MergedEventsResource(MergedEvents(self, request, tunnel_grant(request_grant(request))))

    # -- WebSockets -----------------------------------------------------------------------

    def _relays(self, request: Any) -> WebSocketRelays:
        if (request.getHeader(b"upgrade") or b"").lower() != b"websocket":
            raise UpgradeRequired("This is a WebSocket endpoint")
        return self.relays

    @app.route("/buffers", methods=["GET"])
    def buffers(self, request: Any) -> IResource:
        return self._relays(request).buffers_resource(request, tunnel_grant(request_grant(request)))

    @app.route("/ws/input", methods=["GET"])
    def input_socket(self, request: Any) -> IResource:
        relays = self._relays(request)
        session_id = (request.args.get(b"sessionId") or [b""])[0].decode("utf-8", "replace")
        return relays.input_resource(request, session_id, tunnel_grant(request_grant(request)))

    @app.route("/ws/sessions/<session_id>", methods=["GET"])
    def stream_socket(self, request: Any, session_id: str) -> IResource:
        relays = self._relays(request)
        return relays.sessions_resource(request, session_id, tunnel_grant(request_grant(request)))


# -- the daemon -----------------------------------------------------------------------------

#: The KV bucket and key of the secret every gateway of a cluster signs tokens with.
SECRETS_BUCKET = "vibetwist_secrets"
SECRET_KEY = "token-secret"
#: The ``iss`` of tokens made by the gateways of a cluster: the same for all of them.
CLUSTER_ISSUER = "vibetwist:cluster"


async def cluster_secret(link: Any) -> bytes:
    """The token secret of the cluster's gateways: made by the first (``create``), read by the others."""
    kv = await link.key_value(SECRETS_BUCKET, 0, 1)
    fresh = secrets.token_hex(SECRET_BYTES).encode("ascii")
    if await kv.create(SECRET_KEY, fresh):
        return bytes.fromhex(fresh.decode("ascii"))
    raw = await kv.get(SECRET_KEY)
    try:
        secret = bytes.fromhex((raw or b"").decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        secret = b""
    if len(secret) < SECRET_BYTES:
        raise SecretError(f"{SECRETS_BUCKET} {SECRET_KEY} does not hold a secret of {SECRET_BYTES} bytes")
    return secret


class GatewayService(MultiService):
    """A gateway daemon: its NATS link, the secret, the directory, the site and its listeners.

    Nothing listens until the link is up, the secret read and the directory watched, so a
    gateway that serves at all serves tokens every other gateway takes.
    """

    log = Logger()

    def __init__(self, reactor: Any, options: Any, gateway_id: str | None = None) -> None:
        super().__init__()
        self._reactor = reactor
        self._options = options
        self.gateway_id = check_gateway_id(
            gateway_id
            or options.get("gateway-id")
            or default_gateway_id(socket.gethostname(), secrets.token_hex(4))
        )
        self.link = NATSLink(
            reactor,
            options["nats-config"],
            f"vibetwist gateway {self.gateway_id}",
            inbox_prefix=gateway_inbox_prefix(self.gateway_id),
        )
        self.directory = HostDirectory(reactor, self.link)
        self.directory.when_changed(self._host_changed)
        self.gateway: Gateway | None = None
        self._starting: Deferred[None] | None = None
        self._stopping = False

    def connect_host(self, host: str, grant: dict[str, Any]) -> IStreamClientEndpoint:
        return TunnelEndpoint(self.link, host_subject(host), grant, self.gateway_id)  # type: ignore[return-value]

    def _host_changed(self, view: Any) -> None:
        """A host seen down: its open tunnels end now rather than at their silence timeout,
        so its viewers hear at once that it is unreachable (or get a fresh replay, if it
        was only slow to beat)."""
        if view.status == "down":
            closed = close_tunnels_to(self.link, host_subject(view.name), f"host {view.name} is down")
            if closed:
                self.log.info("cluster: host {host} is down: {n} tunnels closed", host=view.name, n=closed)

    def startService(self) -> None:
        super().startService()
        self._starting = ensureDeferred(self._start())
        self._starting.addErrback(self._failed)

    async def _start(self) -> None:
        options = self._options
        self.log.info(
            "cluster: gateway {id} joining through NATS {servers}",
            id=self.gateway_id,
            servers=options["nats-config"].describe(),
        )
        await self.link.start()
        secret = await cluster_secret(self.link)
        await self.directory.start()
        if self._stopping:
            return
        authority = authority_from_options(options, self._reactor, Tokens(secret, issuer=CLUSTER_ISSUER))
        gateway = Gateway(
            self._reactor,
            self.directory,
            self.connect_host,
            authority,
            metrics=not options["no-metrics"],
            compress=bool(options["compress"]),
        )
        self.gateway = gateway
        gateway.start()
        guarded = guarded_resource(
            gateway.resource(), authority, allowed_hosts=options["allowed-hosts"], metrics=gateway.metrics
        )
        limits = options.get("limits") or Limits()
        factory = ConnectionLimiter(make_site(guarded, bool(options["access-log"])), limits, self._reactor)
        for description in options["listen"]:
            Listener(self._reactor, description, factory, parse_listen(description).tls).setServiceParent(
                self
            )

    def _failed(self, failure: Failure) -> None:
        if self._stopping:
            return
        self.log.failure("cluster: the gateway could not start", failure)
        if self._reactor.running:
            self._reactor.stop()

    def stopService(self) -> Deferred[None]:
        self._stopping = True
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        await super().stopService()
        if self.gateway is not None:
            try:
                await self.gateway.stop().addTimeout(2.0, self._reactor)
            except Exception as e:
                self.log.warn("cluster: the gateway's sockets did not all close: {e}", e=e)
        self.directory.stop()
        await self.link.stop()


def make_gateway_service(options: Any, reactor: Any) -> MultiService:
    """The daemon of ``twistd vibetunnel --gateway``."""
    return GatewayService(reactor, options)
