# -*- test-case-name: tests.test_websocket -*-
"""The daemon's WebSockets, served by Autobahn on the API's own port.

``/buffers``
    Screen snapshots of any number of sessions (VibeTunnel's protocol).
``/ws/input?sessionId=ID``
    Keystrokes for one session (VibeTunnel's protocol).
``/ws/sessions/ID[?readonly=1]``
    The byte stream for terminal emulators: the screen as of recording offset
    K drawn as escape sequences, then every output byte after K. Text frames
    are JSON messages, binary frames are terminal bytes (see the README).

Every connection registers a producer on its transport: when a client cannot
keep up, its own sends pause (and its byte stream reads the recording back
later, or skips ahead to a fresh screen); nothing queues in memory.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import unquote

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from vibetwist._reactor.immediate import write_now
from vibetwist._reactor.internals import compressing, send_close
from vibetwist.errors import BadRequest, RequestError
from vibetwist.interfaces import ISession, ITerminalChannel
from vibetwist.login.authority import Authority
from vibetwist.login.gate import READ_ONLY, bearer_token, request_grant
from vibetwist.login.tokens import ANONYMOUS, Grant
from vibetwist.model import jsontext
from vibetwist.model.asciicast import Event
from vibetwist.model.keys import key_sequence
from vibetwist.model.peercred import UNKNOWN_LOCAL
from vibetwist.server.buffers import SnapshotHub
from vibetwist.server.limits import MAX_SUBSCRIPTIONS
from vibetwist.server.viewer import TerminalViewer
from vibetwist.sessions.service import SessionService

#: Largest message a client may send, in bytes.
MAX_MESSAGE = 1 << 20
#: The kernel's send buffer per connection: a stalled viewer holds at most this much
#: (twice it, as Linux counts) before its own sends pause.
SEND_BUFFER = 256 * 1024
#: Close codes.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_RESTARTING = 1012
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@implementer(IPushProducer)
class _Flow:
    """The producer a connection registers on its transport; it hands pauses to its owner."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    def pauseProducing(self) -> None:
        self._owner.paused()

    def resumeProducing(self) -> None:
        self._owner.resumed()

    def stopProducing(self) -> None:
        pass  # connectionLost follows


class DaemonWebSocket(WebSocketServerProtocol):
    """What the three sockets share: JSON messages, error frames, a producer."""

    factory: WebSocketFactory
    #: What this connection may do, from the token of its handshake.
    grant: Grant = ANONYMOUS

    #: The grant the site's gate gave the handshake request, handed over with the connection.
    handed: Grant | None = None

    def onConnect(self, request: Any) -> None:
        """Take the grant the site's gate gave the handshake. A socket served without the gate
        (in a test, say) works it out from the handshake's token, as from a stranger."""
        if self.handed is not None:
            self.grant = self.handed
            return
        authority = self.factory.authority
        if authority is not None:
            query = request.params.get("token") or [None]
            token = bearer_token(request.headers.get("authorization"), query[0])
            grant = authority.grant_for(token, UNKNOWN_LOCAL)
            if grant is None:
                raise ConnectionDeny(401 if authority.required else 403, "Not allowed")
            self.grant = grant

    def onOpen(self) -> None:
        self._paused = False
        transport: Any = self.transport
        if transport.producer is not None:
            # twisted.web's channel is still registered on the connection it handed over.
            transport.unregisterProducer()
        try:
            transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except (AttributeError, OSError):
            pass  # not a socket of ours (a test transport): its buffer is what it is
        self.registerProducer(_Flow(self), True)
        self.factory.connections.add(self)
        self.opened()

    def opened(self) -> None:
        """The handshake is done."""

    def paused(self) -> None:
        self._paused = True

    def resumed(self) -> None:
        self._paused = False

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.connections.discard(self)
        self.closed()

    def closed(self) -> None:
        """The connection is gone (also when it never opened)."""

    @property
    def sendable(self) -> bool:
        return bool(self.state == self.STATE_OPEN)

    def send(self, payload: bytes, binary: bool) -> None:
        """Send a message, unless the connection is closing (then nothing more is wanted)."""
        if self.state == self.STATE_OPEN:
            self.sendMessage(payload, isBinary=binary)

    def send_json(self, value: dict[str, Any]) -> None:
        self.send(_dumps(value), False)

    def going_away(self) -> None:
        """The daemon is stopping: close with 1001."""
        if self.sendable:
            send_close(self, CLOSE_GOING_AWAY, "The daemon is stopping")

    def restarting(self) -> None:
        """The daemon restarts in place: close with 1012 ("service restart"); the client reconnects."""
        if self.sendable:
            send_close(self, CLOSE_RESTARTING, "The daemon is restarting")

    def send_error(self, message: str) -> None:
        self.send_json({"type": "error", "message": message})

    def read_json(self, payload: bytes, is_binary: bool) -> dict[str, Any] | None:
        """A JSON object message, or None after an error frame."""
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

    def session(self, session_id: object) -> ISession | None:
        """The session of that id, or None after an error frame (also when the grant does not
        reach it: then whether such a session exists is not told)."""
        if self.grant.read_only and session_id != self.grant.session_id:
            self.send_error(READ_ONLY)
            return None
        try:
            return self.factory.service.get(session_id)
        except RequestError as e:
            self.send_error(e.message)
            return None


class BuffersProtocol(DaemonWebSocket):
    """``/buffers``: snapshots of the sessions a client subscribes to."""

    def opened(self) -> None:
        self._subscriptions: dict[str, SnapshotHub] = {}
        self._stale: set[str] = set()
        self.send_json({"type": "connected", "version": "1.0"})

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        message = self.read_json(payload, isBinary)
        if message is None:
            return
        kind = message.get("type")
        if kind == "ping":
            self.send_json({"type": "pong", "timestamp": int(self.factory.reactor.seconds() * 1000)})
        elif kind == "subscribe":
            self._subscribe(message.get("sessionId"))
        elif kind == "unsubscribe":
            hub = self._subscriptions.pop(str(message.get("sessionId")), None)
            if hub is not None:
                hub.remove(self)
                self._stale.discard(hub.session.id)
        else:
            self.send_error(f"Unknown message type: {str(kind)[:100]}")

    def _subscribe(self, session_id: object) -> None:
        session = self.session(session_id)
        if session is None:
            return
        hub = self._subscriptions.get(session.id)
        if hub is None and len(self._subscriptions) >= MAX_SUBSCRIPTIONS:
            self.send_error(f"At most {MAX_SUBSCRIPTIONS} subscriptions per socket")
            return
        if hub is None:
            hub = self._subscriptions[session.id] = self.factory.hub(session)
            hub.add(self)
        self.snapshot(session.id, hub.frame())
        self.send_json({"type": "subscribed", "sessionId": session.id})

    def snapshot(self, session_id: str, frame: Any) -> None:
        if self._paused:
            self._stale.add(session_id)  # the newest snapshot is sent on resume
        else:
            if self.sendable:
                self.sendPreparedMessage(frame)

    def resumed(self) -> None:
        super().resumed()
        while self._stale and not self._paused:
            hub = self._subscriptions.get(self._stale.pop())
            if hub is not None and self.sendable:
                self.sendPreparedMessage(hub.frame())

    def closed(self) -> None:
        for hub in getattr(self, "_subscriptions", {}).values():
            hub.remove(self)
        self._subscriptions = {}


class InputProtocol(DaemonWebSocket):
    """``/ws/input?sessionId=ID``: text typed into one session; ``\\x00name\\x00`` names a key."""

    def onConnect(self, request: Any) -> None:
        super().onConnect(request)
        self._session_id = (request.params.get("sessionId") or [""])[0]

    def opened(self) -> None:
        if self.grant.read_only:
            self.send_error(READ_ONLY)
            self.sendClose(CLOSE_FORBIDDEN, READ_ONLY)
        elif self.session(self._session_id) is None:
            self.sendClose(CLOSE_NOT_FOUND, "Session not found")

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        session = self.session(self._session_id)
        if session is None or self.grant.read_only:
            return
        try:
            if len(payload) > 2 and payload[:1] == b"\x00" and payload[-1:] == b"\x00":
                data = key_sequence(payload[1:-1].decode("utf-8", "replace")).encode()
            else:
                data = payload
            session.write(data)
        except RequestError as e:
            self.send_error(e.message)


@implementer(ITerminalChannel)
class TerminalStreamProtocol(DaemonWebSocket):
    """``/ws/sessions/ID``: one session as a terminal emulator sees it (see vibetwist.server.viewer)."""

    def onConnect(self, request: Any) -> None:
        super().onConnect(request)
        self._session_id = unquote(request.path.rsplit("/", 1)[-1])
        asked = (request.params.get("readonly") or ["0"])[0] in ("1", "true", "yes")
        self._read_only = asked or self.grant.read_only
        self._viewer: TerminalViewer | None = None

    def opened(self) -> None:
        session = self.session(self._session_id)
        if session is None:
            self.sendClose(CLOSE_NOT_FOUND, "Session not found")
            return
        factory = self.factory
        self._viewer = TerminalViewer(session, self, factory.cooperator, factory.reactor, self._read_only)
        self._viewer.start()

    # -- ITerminalChannel ---------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        self.send(data, True)

    def send_output(self, event: Event) -> None:
        if self.sendable:
            message = self.factory.output_message(event)
            if not compressing(self) and not self.send_queue:
                # Output is what a typist waits for: send it now, not on the next turn.
                write_now(self.transport, message.payloadHybi)
            else:
                self.sendPreparedMessage(message)

    def end(self) -> None:
        if self.sendable:
            self.sendClose(CLOSE_NORMAL)

    # -- the connection -----------------------------------------------------------

    def paused(self) -> None:
        super().paused()
        if self._viewer is not None:
            self._viewer.pause()

    def resumed(self) -> None:
        super().resumed()
        if self._viewer is not None:
            self._viewer.resume()

    def closed(self) -> None:
        viewer = getattr(self, "_viewer", None)
        if viewer is not None:
            viewer.stop()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        viewer = self._viewer
        if viewer is None:
            return
        try:
            if isBinary:
                viewer.type(payload)
                return
            message = self.read_json(payload, isBinary)
            if message is None:
                return
            kind = message.get("type")
            if kind == "input":
                data = message.get("data")
                if not isinstance(data, str):
                    raise BadRequest("input needs data, a string")
                viewer.type(data.encode("utf-8", "surrogateescape"))
            elif kind == "key":
                viewer.type(key_sequence(message.get("key")).encode())
            elif kind == "resize":
                viewer.resize(message.get("cols"), message.get("rows"))
            else:
                self.send_error(f"Unknown message type: {str(kind)[:100]}")
        except RequestError as e:
            self.send_error(e.message)


def _accept_deflate(offers: list[Any]) -> Any:
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


class WebSocketFactory(WebSocketServerFactory):
    """A WebSocket factory bound to the sessions; one per socket path."""

    def __init__(
        self,
        protocol: type[DaemonWebSocket],
        service: SessionService,
        reactor: Any,
        cooperator: Any,
        hubs: dict[str, SnapshotHub] | None = None,
        compress: bool = False,
        authority: Authority | None = None,
    ) -> None:
        super().__init__(reactor=reactor)
        self.protocol = protocol
        self.authority = authority
        self.service = service
        self.reactor = reactor
        self.cooperator = cooperator
        self.connections: set[DaemonWebSocket] = set()
        self._hubs = hubs if hubs is not None else {}
        self._last_output: tuple[Event | None, Any] = (None, None)
        options: dict[str, Any] = {
            "maxMessagePayloadSize": MAX_MESSAGE,
            "maxFramePayloadSize": MAX_MESSAGE,
            # A protocol error (a message too big: 1009) gets its close code, not a bare drop.
            "failByDrop": False,
            "openHandshakeTimeout": 10,
            "closeHandshakeTimeout": 2,
            "autoPingInterval": 30,
            "autoPingTimeout": 20,
        }
        if compress:
            options["perMessageCompressionAccept"] = _accept_deflate
        self.setProtocolOptions(**options)

    def output_message(self, event: Event) -> Any:
        """A live output event as a message framed once for all its viewers.

        A session hands each event to its viewers one after the other, so
        remembering the last one is enough.
        """
        last, message = self._last_output
        if last is not event:
            message = self.prepareMessage(event.data.encode("utf-8", "surrogateescape"), isBinary=True)
            self._last_output = (event, message)
        return message

    def hub(self, session: ISession) -> SnapshotHub:
        """The snapshot hub of a session, made on first use and dropped with its last subscriber."""
        hub = self._hubs.get(session.id)
        if hub is None or hub.session is not session:
            hub = SnapshotHub(
                session,
                self.reactor,
                prepare=lambda frame: self.prepareMessage(frame, isBinary=True),
                on_empty=self._forget,
            )
            self._hubs[session.id] = hub
        return hub

    def _forget(self, hub: SnapshotHub) -> None:
        if self._hubs.get(hub.session.id) is hub:
            del self._hubs[hub.session.id]

    #: The grant of the handshake being handed over (see _HandingOver), while it is.
    _handing: Grant | None = None

    def buildProtocol(self, addr: Any) -> Any:
        protocol: Any = super().buildProtocol(addr)
        protocol.handed = self._handing
        return protocol

    def web_resource(self) -> WebSocketResource:
        return _HandingOver(self)


class _HandingOver(WebSocketResource):
    """Autobahn's resource, handing the grant the gate gave the handshake request to the
    protocol that takes the connection over (it is built, and reads the handshake, within
    render)."""

    def __init__(self, factory: WebSocketFactory) -> None:
        super().__init__(factory)
        self._sockets = factory

    def render(self, request: Any) -> Any:
        self._sockets._handing = request_grant(request)
        try:
            return super().render(request)
        finally:
            self._sockets._handing = None


class WebSockets:
    """The daemon's three WebSocket endpoints."""

    def __init__(
        self,
        service: SessionService,
        reactor: Any,
        cooperator: Any,
        compress: bool = False,
        authority: Authority | None = None,
    ) -> None:
        def endpoints(protocol: type[DaemonWebSocket]) -> WebSocketFactory:
            return WebSocketFactory(
                protocol, service, reactor, cooperator, compress=compress, authority=authority
            )

        self.buffers = endpoints(BuffersProtocol)
        self.input = endpoints(InputProtocol)
        self.stream = endpoints(TerminalStreamProtocol)

    def connections(self) -> set[DaemonWebSocket]:
        return self.buffers.connections | self.input.connections | self.stream.connections
