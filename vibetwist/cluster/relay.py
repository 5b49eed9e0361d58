# -*- test-case-name: tests.test_gateway_ws -*-
"""A gateway's WebSockets: the browser's socket ends here, the host's stream comes from a leg.

``/ws/sessions/ID`` and ``/ws/input?sessionId=ID``
    The browser's socket is relayed, message for message and text or binary as
    it came, to one WebSocket client (the *host leg*) that the gateway opens to
    the session's owner over a ``ConnectHost`` endpoint.
``/buffers``
    The gateway answers the socket itself (``connected``, ``pong``) and sends
    each subscription to the owner's ``/buffers``: one leg per host per browser
    socket, opened on first use; what the hosts send comes back unchanged.

Flow: when the browser's connection backs up, every leg of it stops reading
(so the host's own slow-viewer handling applies, over a tunnel as over TCP);
when a leg backs up, the browser's connection stops reading. A gateway holds
at most about one read of a leg per slow viewer.

A leg lost without a closing handshake (a lost tunnel) is opened again, a few
times with growing pauses; a stream starts again with a fresh replay, a
``/buffers`` leg is sent its subscriptions again. A host that cannot be reached
gets the browser an error frame (``host NAME is unreachable``) and, but for
``/buffers``, the close code 1011. A leg the host closes (the session ended)
closes the browser's socket with the host's code.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource
from zope.interface import implementer

from vibetwist._reactor.internals import send_close, unwritten
from vibetwist.cluster.errors import HostUnreachable
from vibetwist.errors import NotFound
from vibetwist.model import jsontext
from vibetwist.server.limits import MAX_SUBSCRIPTIONS

#: (host name, grant) -> an endpoint reaching that host's site.
ConnectHost = Callable[[str, dict[str, Any]], IStreamClientEndpoint]

#: Largest message a browser may send, in bytes (as a host takes).
MAX_MESSAGE = 1 << 20
#: Subscriptions of one ``/buffers`` socket waiting for their hosts to be located, past which
#: the socket is not read until fewer wait.
MAX_WAITING = 64
#: The kernel's send buffer per browser connection, as a host sets it for its viewers.
SEND_BUFFER = 256 * 1024
#: How many times a lost leg is opened again before the browser is told the host is gone,
#: and the pause before the first of them (doubled each time).
REOPEN_TRIES = 5
REOPEN_PAUSE = 0.25
#: Close codes.
CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL = 1011
CLOSE_NOT_FOUND = 4404
CLOSE_FORBIDDEN = 4403
#: Handshake answers of a host that end a leg for good, as the close the browser gets.
_REFUSED = {
    401: (CLOSE_FORBIDDEN, "Not allowed"),
    403: (CLOSE_FORBIDDEN, "Not allowed"),
    404: (CLOSE_NOT_FOUND, "Session not found"),
}
#: The codes a close frame cannot carry: the host's close is relayed as 1000 instead.
_UNSENDABLE = (None, 1005, 1006, 1015)

log = Logger()


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _accept_deflate(offers: list[Any]) -> Any:
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


def _query_without_token(request: Any) -> list[tuple[str, str]]:
    """The request's query, less a login token (the host takes the grant from the leg)."""
    _, _, query = request.uri.decode("latin-1").partition("?")
    return [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"]


@implementer(IPushProducer)
class _Flow:
    """A producer registered on a transport; it tells its owner when that transport backs up."""

    def __init__(self, paused: Callable[[], None], resumed: Callable[[], None]) -> None:
        self.pauseProducing = paused
        self.resumeProducing = resumed

    def stopProducing(self) -> None:
        pass  # connectionLost follows


class _Reading:
    """Whether a transport reads, held off for any number of reasons at once."""

    def __init__(self) -> None:
        self.transport: Any = None
        self._holds: set[str] = set()

    def hold(self, why: str) -> None:
        if not self._holds and self.transport is not None:
            self.transport.pauseProducing()
        self._holds.add(why)

    def release(self, why: str) -> None:
        if why in self._holds:
            self._holds.discard(why)
            if not self._holds and self.transport is not None:
                self.transport.resumeProducing()

    def attach(self, transport: Any) -> None:
        """Reads of a new transport (a reopened leg) are held off for the same reasons."""
        self.transport = transport
        if self._holds:
            transport.pauseProducing()


# -- the host leg ----------------------------------------------------------------------


class _LegProtocol(WebSocketClientProtocol):
    """The gateway's WebSocket client to a host: it hands everything to its HostLeg."""

    leg: HostLeg
    #: The HTTP status the host answered the handshake with, if it was not 101.
    refused: int | None = None

    def failHandshake(self, reason: str) -> None:
        status = self.http_status_line.split() if getattr(self, "http_status_line", None) else []
        if len(status) > 1 and status[1].isdigit():
            self.refused = int(status[1])
        super().failHandshake(reason)

    def connectionMade(self) -> None:
        self.gone: defer.Deferred[None] = defer.Deferred()
        self.leg.live.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        try:
            super().connectionLost(reason)
        finally:
            self.leg.live.discard(self)
            self.gone.callback(None)

    def onOpen(self) -> None:
        self.leg.opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.leg.owner.from_host(self.leg, payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.leg.lost(self, self.remoteCloseCode, self.remoteCloseReason)


class _LegFactory(WebSocketClientFactory):
    protocol = _LegProtocol

    def __init__(self, url: str, leg: HostLeg) -> None:
        super().__init__(url)
        self._leg = leg
        self.setProtocolOptions(
            failByDrop=False, openHandshakeTimeout=10, closeHandshakeTimeout=2, autoPingInterval=0
        )

    def buildProtocol(self, addr: Any) -> Any:
        protocol: Any = super().buildProtocol(addr)
        protocol.leg = self._leg
        return protocol


class HostLeg:
    """One WebSocket to a host at one path, opened again when it is lost.

    owner is told ``leg_opening(leg)`` (each attempt) and ``leg_ready(leg)`` (open, what
    waited sent), ``leg_opened(leg, first)``, ``from_host(leg, payload, binary)``,
    ``leg_backed_up(leg)`` and ``leg_drained(leg)`` (its writes), ``leg_ended(leg, code,
    reason)`` (the host closed it or refused it, and it is not reopened) and
    ``leg_failed(leg)`` (the host cannot be reached).
    """

    def __init__(
        self,
        reactor: Any,
        connect_host: ConnectHost,
        host: str,
        grant: dict[str, Any],
        path: str,
        owner: Any,
        reopen_closed: bool = False,
        live: set[Any] | None = None,
    ) -> None:
        self._reactor = reactor
        self._connect_host = connect_host
        self.host = host
        self._grant = grant
        self._url = "ws://localhost" + path
        self.owner = owner
        self._reopen_closed = reopen_closed
        #: The connections of legs still up, shared by every leg of a gateway.
        self.live: set[Any] = live if live is not None else set()
        self.protocol: _LegProtocol | None = None
        self.reading = _Reading()
        self._pending: list[tuple[bytes, bool]] = []
        self._connecting: defer.Deferred[Any] | None = None
        self._timer: Any = None
        self._tries = 0
        self._ever_opened = False
        self._done = False
        #: How many times the leg was opened (the first time included).
        self.opens = 0

    @property
    def open(self) -> bool:
        return self.protocol is not None and self.protocol.state == self.protocol.STATE_OPEN

    def connect(self) -> None:
        if self._done:
            return
        self._timer = None
        self.owner.leg_opening(self)
        try:
            endpoint = self._connect_host(self.host, self._grant)
            d = self._connecting = endpoint.connect(_LegFactory(self._url, self))
        except Exception:
            log.failure("cluster: no endpoint for host {host}", host=self.host)
            self._failed()
            return
        d.addCallbacks(self._connected, self._not_connected)

    def _connected(self, protocol: Any) -> None:
        self._connecting = None
        if self._done:
            protocol.dropConnection(abort=True)

    def _not_connected(self, failure: Failure) -> None:
        self._connecting = None
        if self._done or failure.check(defer.CancelledError):
            return
        log.info("cluster: host {host} not reached: {why}", host=self.host, why=failure.getErrorMessage())
        self._retry()

    def opened(self, protocol: _LegProtocol) -> None:
        if self._done:
            protocol.dropConnection(abort=True)
            return
        self.protocol = protocol
        self.opens += 1
        self.reading.attach(protocol.transport)
        protocol.registerProducer(
            _Flow(lambda: self.owner.leg_backed_up(self), lambda: self.owner.leg_drained(self)), True
        )
        first = not self._ever_opened
        self._ever_opened = True
        self._tries = 0
        self.owner.leg_opened(self, first)
        pending, self._pending = self._pending, []
        for payload, binary in pending:
            protocol.sendMessage(payload, isBinary=binary)
        self.owner.leg_ready(self)

    def lost(self, protocol: _LegProtocol, code: int | None, reason: str | None) -> None:
        if protocol is not self.protocol:
            if self._done:
                return
            refused = _REFUSED.get(protocol.refused or 0)
            if refused is not None:
                # The host answered the handshake with an error: the session is not there,
                # or the grant does not reach it. Trying again would not change that.
                self._done = True
                self.owner.leg_ended(self, *refused)
            else:
                self._retry()  # the handshake never finished: the host was not reached
            return
        self.protocol = None
        self.reading.transport = None
        self.owner.leg_drained(self)  # a reopened leg starts with nothing unsent
        if self._done:
            return
        if code is not None and not self._reopen_closed:
            self._done = True
            self.owner.leg_ended(self, code, reason)
            return
        log.info(
            "cluster: the leg to host {host} was lost (close {code}); opening it again",
            host=self.host,
            code=code,
        )
        self._retry()

    def _retry(self) -> None:
        if not self._ever_opened or self._tries >= REOPEN_TRIES:
            self._failed()
            return
        pause = REOPEN_PAUSE * 2**self._tries
        self._tries += 1
        self._timer = self._reactor.callLater(pause, self.connect)

    def _failed(self) -> None:
        self._done = True
        self.owner.leg_failed(self)

    def send(self, payload: bytes, binary: bool) -> None:
        """Send a message to the host, now or once the leg is open."""
        if self._done:
            return
        if self.open:
            assert self.protocol is not None
            self.protocol.sendMessage(payload, isBinary=binary)
        else:
            self._pending.append((payload, binary))

    def held(self) -> int:
        """Bytes this leg holds: messages waiting for it to open, and its unsent writes."""
        size = sum(len(p) for p, _ in self._pending)
        if self.protocol is not None and self.protocol.transport is not None:
            size += _unwritten_size(self.protocol.transport)
        return size

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the leg for good (the browser went)."""
        self._done = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._connecting is not None:
            self._connecting.cancel()
        protocol = self.protocol
        if protocol is not None and protocol.state == protocol.STATE_OPEN:
            send_close(protocol, code, reason)
        elif protocol is not None:
            protocol.dropConnection(abort=True)


def _unwritten_size(transport: Any) -> int:
    try:
        return len(unwritten(transport))
    except AttributeError:
        return 0  # not a descriptor transport (a tunnel's): it keeps its own account


# -- the browser's side ----------------------------------------------------------------


class _Relay(WebSocketServerProtocol):
    """A browser's socket and its host legs."""

    factory: _RelayFactory
    #: What the route handed over: the session id (or None), the grant, the query to pass on.
    context: tuple[str | None, dict[str, Any], list[tuple[str, str]]]

    def onOpen(self) -> None:
        self.legs: dict[str, HostLeg] = {}
        self.reading = _Reading()
        self.reading.transport = self.transport
        self._backed_up = False
        self.closed: defer.Deferred[None] = defer.Deferred()
        transport: Any = self.transport
        if transport.producer is not None:
            # twisted.web's channel is still registered on the connection it handed over.
            transport.unregisterProducer()
        try:
            transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except (AttributeError, OSError):
            pass  # not a socket of ours: its buffer is what it is
        self.registerProducer(_Flow(self._browser_backed_up, self._browser_drained), True)
        self.factory.relays.connections.add(self)
        self.opened()

    def opened(self) -> None:
        """The browser's handshake is done."""

    @property
    def sendable(self) -> bool:
        return bool(self.state == self.STATE_OPEN)

    def send(self, payload: bytes, binary: bool) -> None:
        if self.sendable:
            self.sendMessage(payload, isBinary=binary)

    def send_error(self, message: str) -> None:
        self.send(_dumps({"type": "error", "message": message}), False)

    def close_with(self, code: int | None, reason: str | None) -> None:
        if self.sendable:
            send_close(self, 1000 if code in _UNSENDABLE else int(code or 1000), reason or "")

    def leg(self, host: str, path: str, reopen_closed: bool = False) -> HostLeg:
        relays = self.factory.relays
        leg = HostLeg(
            relays.reactor,
            relays.connect_host,
            host,
            self.context[1],
            path,
            self,
            reopen_closed,
            relays.live_legs,
        )
        self.legs[host] = leg
        if self._backed_up:
            leg.reading.hold("browser")
        leg.connect()
        return leg

    # Flow, both ways.

    def _browser_backed_up(self) -> None:
        self._backed_up = True
        for leg in self.legs.values():
            leg.reading.hold("browser")

    def _browser_drained(self) -> None:
        self._backed_up = False
        for leg in self.legs.values():
            leg.reading.release("browser")

    def leg_opening(self, leg: HostLeg) -> None:
        # What the browser sends meanwhile waits in the leg: stop reading more of it.
        self.reading.hold(f"opening {leg.host}")

    def leg_ready(self, leg: HostLeg) -> None:
        self.reading.release(f"opening {leg.host}")

    def leg_backed_up(self, leg: HostLeg) -> None:
        self.reading.hold(f"leg {leg.host}")

    def leg_drained(self, leg: HostLeg) -> None:
        self.reading.release(f"leg {leg.host}")

    def held(self) -> int:
        """Bytes the gateway holds for this socket: unsent writes to the browser and to its legs."""
        size = _unwritten_size(self.transport) if self.transport is not None else 0
        return size + sum(leg.held() for leg in getattr(self, "legs", {}).values())

    # What the legs say.

    def leg_opened(self, leg: HostLeg, first: bool) -> None:
        pass

    def from_host(self, leg: HostLeg, payload: bytes, binary: bool) -> None:
        self.send(payload, binary)

    def leg_ended(self, leg: HostLeg, code: int, reason: str | None) -> None:
        self.close_with(code, reason)

    def leg_failed(self, leg: HostLeg) -> None:
        self.leg_ready(leg)
        self.send_error(f"host {leg.host} is unreachable")
        if self.sendable:
            send_close(self, CLOSE_INTERNAL, f"host {leg.host} is unreachable")

    def going_away(self) -> None:
        if self.sendable:
            send_close(self, CLOSE_GOING_AWAY, "The gateway is stopping")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        for leg in getattr(self, "legs", {}).values():
            leg.close()
        self.factory.relays.connections.discard(self)
        closed = getattr(self, "closed", None)
        if closed is not None and not closed.called:
            closed.callback(None)


class _SessionRelay(_Relay):
    """``/ws/sessions/ID`` and ``/ws/input``: every message to and from the owner's leg."""

    #: The host's path for the session, given its id and the browser's query.
    def host_path(self, session_id: str, query: list[tuple[str, str]]) -> str:
        raise NotImplementedError

    def opened(self) -> None:
        session_id = self.context[0] or ""
        # Until the leg is made, what the browser sent waits here, and reading stops.
        self._early: list[tuple[bytes, bool]] = []
        self.reading.hold("locating")
        d = self.factory.relays.locate(session_id)
        d.addCallbacks(self._located, self._not_located)

    def _located(self, host: str) -> None:
        if not self.sendable:
            return
        session_id, _, query = self.context
        leg = self.leg(host, self.host_path(session_id or "", query))
        early, self._early = self._early, []
        for payload, binary in early:
            leg.send(payload, binary)
        self.reading.release("locating")

    def _not_located(self, failure: Failure) -> None:
        if failure.check(NotFound):
            self.close_with(CLOSE_NOT_FOUND, "Session not found")
        elif failure.check(HostUnreachable):
            message = str(getattr(failure.value, "message", failure.getErrorMessage()))
            self.send_error(message)
            if self.sendable:
                send_close(self, CLOSE_INTERNAL, message)
        else:
            log.failure("cluster: locating a session failed", failure)
            self.send_error("The session's host could not be found")
            if self.sendable:
                send_close(self, CLOSE_INTERNAL, "Internal error")

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not self.legs:
            self._early.append((payload, isBinary))
        for leg in self.legs.values():
            leg.send(payload, isBinary)


class _StreamRelay(_SessionRelay):
    def host_path(self, session_id: str, query: list[tuple[str, str]]) -> str:
        path = "/ws/sessions/" + quote(session_id, safe="")
        return path + ("?" + urlencode(query) if query else "")


class _InputRelay(_SessionRelay):
    def host_path(self, session_id: str, query: list[tuple[str, str]]) -> str:
        return "/ws/input?" + urlencode(query)


class _BuffersRelay(_Relay):
    """``/buffers``: subscriptions sent to each owner's ``/buffers``, snapshots back unchanged."""

    def opened(self) -> None:
        #: session id -> host, for every subscription sent to a host.
        self.subscriptions: dict[str, str] = {}
        # Subscriptions are located one after the other, so they reach the hosts in order.
        self._turn: defer.Deferred[None] = defer.succeed(None)
        self._waiting = 0
        self.send(_dumps({"type": "connected", "version": "1.0"}), False)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        message = self._read_json(payload, isBinary)
        if message is None:
            return
        kind = message.get("type")
        if kind == "ping":
            now = int(self.factory.relays.reactor.seconds() * 1000)
            self.send(_dumps({"type": "pong", "timestamp": now}), False)
        elif kind in ("subscribe", "unsubscribe"):
            self._waiting += 1
            if self._waiting >= MAX_WAITING:
                self.reading.hold("locating")  # no more until the hosts of these are known
            self._turn.addCallback(lambda _: self._handle(kind, message.get("sessionId")))
            self._turn.addErrback(lambda f: log.failure("cluster: a /buffers message failed", f))
            self._turn.addBoth(self._handled)
        else:
            self.send_error(f"Unknown message type: {str(kind)[:100]}")

    def _read_json(self, payload: bytes, is_binary: bool) -> dict[str, Any] | None:
        if is_binary:
            self.send_error("Expected a JSON text message")
            return None
        try:
            value = jsontext.loads(payload)
        except (ValueError, RecursionError):
            self.send_error("Malformed JSON message")
            return None
        if not isinstance(value, dict):
            self.send_error("A message must be a JSON object")
            return None
        return value

    def _handled(self, _: object) -> None:
        self._waiting -= 1
        if self._waiting < MAX_WAITING:
            self.reading.release("locating")

    def _handle(self, kind: str, session_id: Any) -> Any:
        if not self.sendable:
            return None
        message = _dumps({"type": kind, "sessionId": session_id})
        if kind == "unsubscribe":
            host = self.subscriptions.pop(str(session_id), None)
            if host is not None and host in self.legs:
                self.legs[host].send(message, False)
            return None
        if not isinstance(session_id, str):
            self.send_error("Session not found")
            return None
        if session_id not in self.subscriptions and len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            self.send_error(f"At most {MAX_SUBSCRIPTIONS} subscriptions per socket")
            return None
        d = self.factory.relays.locate(session_id)
        d.addCallbacks(lambda host: self._subscribe(host, session_id, message), self._not_located)
        return d

    def _subscribe(self, host: str, session_id: str, message: bytes) -> None:
        if not self.sendable:
            return
        self.subscriptions[session_id] = host
        leg = self.legs.get(host)
        if leg is None:
            leg = self.leg(host, "/buffers", reopen_closed=True)
        leg.send(message, False)

    def _not_located(self, failure: Failure) -> None:
        if failure.check(NotFound, HostUnreachable):
            self.send_error(str(getattr(failure.value, "message", failure.getErrorMessage())))
        else:
            log.failure("cluster: locating a session failed", failure)
            self.send_error("The session's host could not be found")

    def from_host(self, leg: HostLeg, payload: bytes, binary: bool) -> None:
        if not binary and payload.startswith(b'{"type":"connected"'):
            return  # the gateway said so itself
        self.send(payload, binary)

    def leg_opened(self, leg: HostLeg, first: bool) -> None:
        if not first:
            for session_id, host in self.subscriptions.items():
                if host == leg.host:
                    leg.send(_dumps({"type": "subscribe", "sessionId": session_id}), False)

    def leg_ended(self, leg: HostLeg, code: int, reason: str | None) -> None:
        self.leg_failed(leg)

    def leg_failed(self, leg: HostLeg) -> None:
        if self.legs.get(leg.host) is leg:
            del self.legs[leg.host]
        self.reading.release(f"leg {leg.host}")
        self.reading.release(f"opening {leg.host}")
        lost = [s for s, h in self.subscriptions.items() if h == leg.host]
        for session_id in lost:
            del self.subscriptions[session_id]
        if lost:
            self.send_error(f"host {leg.host} is unreachable")


class _RelayFactory(WebSocketServerFactory):
    def __init__(self, relays: WebSocketRelays, protocol: type[_Relay], compress: bool) -> None:
        super().__init__(reactor=relays.reactor)
        self.protocol = protocol
        self.relays = relays
        self.handing: Any = None
        self.setProtocolOptions(
            maxMessagePayloadSize=MAX_MESSAGE,
            maxFramePayloadSize=MAX_MESSAGE,
            failByDrop=False,
            openHandshakeTimeout=10,
            closeHandshakeTimeout=2,
            autoPingInterval=30,
            autoPingTimeout=20,
        )
        if compress:
            self.setProtocolOptions(perMessageCompressionAccept=_accept_deflate)

    def buildProtocol(self, addr: Any) -> Any:
        protocol: Any = super().buildProtocol(addr)
        protocol.context = self.handing
        return protocol


class _Upgrade(WebSocketResource):
    """Autobahn's resource, handing what the route found to the protocol that takes the
    connection over (it is built, and reads the handshake, within render)."""

    def __init__(self, factory: _RelayFactory, context: Any) -> None:
        super().__init__(factory)
        self._relay_factory = factory
        self._context = context

    def render(self, request: Any) -> Any:
        self._relay_factory.handing = self._context
        try:
            return super().render(request)
        finally:
            self._relay_factory.handing = None


class WebSocketRelays:
    """A gateway's three WebSocket endpoints, each a relay to the hosts that own the sessions.

    connect_host reaches a host (over a tunnel in production, over TCP in tests);
    locate(session_id) fires with the owner's name, or fails with NotFound or
    HostUnreachable. compress accepts permessage-deflate from browsers (as a host's
    ``--compress`` does).
    """

    def __init__(
        self,
        reactor: Any,
        connect_host: ConnectHost,
        locate: Callable[[str], defer.Deferred[str]],
        compress: bool = False,
    ) -> None:
        self.reactor = reactor
        self.connect_host = connect_host
        self.locate = locate
        self.connections: set[_Relay] = set()
        #: The host legs' connections still up.
        self.live_legs: set[Any] = set()
        self._streams = _RelayFactory(self, _StreamRelay, compress)
        self._inputs = _RelayFactory(self, _InputRelay, compress)
        self._buffers = _RelayFactory(self, _BuffersRelay, compress)

    def sessions_resource(self, request: Any, session_id: str, grant: dict[str, Any]) -> IResource:
        """``/ws/sessions/ID``, relayed to the session's owner."""
        return _Upgrade(self._streams, (session_id, grant, _query_without_token(request)))

    def input_resource(self, request: Any, session_id: str, grant: dict[str, Any]) -> IResource:
        """``/ws/input?sessionId=ID``, relayed to the session's owner."""
        return _Upgrade(self._inputs, (session_id, grant, _query_without_token(request)))

    def buffers_resource(self, request: Any, grant: dict[str, Any]) -> IResource:
        """``/buffers``, each subscription sent on to the session's owner."""
        return _Upgrade(self._buffers, (None, grant, []))

    def stop(self) -> defer.Deferred[None]:
        """Close every socket with 1001 (going away); fires once they and their legs are closed."""
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        waiting = []
        for relay in list(self.connections):
            waiting.append(relay.closed)
            relay.going_away()
        await defer.gatherResults(waiting, consumeErrors=True)
        # Closing a browser's socket closes its legs; wait for the hosts' side of that too.
        await defer.gatherResults([leg.gone for leg in list(self.live_legs)], consumeErrors=True)
