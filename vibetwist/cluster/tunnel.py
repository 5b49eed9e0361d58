# -*- test-case-name: tests.test_cluster_tunnel -*-
"""Byte connections between a gateway and a host, carried over NATS.

A gateway opens a connection with a NATS request to the host's subject (``OPEN``, JSON:
``{"v": 1, "gw": ID, "inbox": SUBJECT, "window": BYTES, "grant": {...}}``); the host
answers ``{"conn": SUBJECT, "window": BYTES}`` (or ``{"error": TEXT}``). Each side then
publishes frames to the other's subject: one type byte, an 8-byte big-endian sequence
number counted per direction from 0, and a body:

- ``D`` data;
- ``A`` ack: 8 bytes, the total of data bytes the receiver's protocol has consumed;
- ``P`` keepalive, empty, every ``keepalive`` seconds;
- ``C`` close: the UTF-8 reason.

A sender keeps at most the receiver's window of unacknowledged bytes in flight; past that
its transport buffers and pauses its registered producer. A receiver whose protocol
paused the transport holds the data and does not acknowledge it. A gap in the sequence,
``silence`` seconds without a frame, a NATS disconnect or a ``C`` close the connection
on both sides; nothing resumes: the gateway opens a new one.

:class:`TunnelEndpoint` is the gateway's client endpoint (for treq's ``Agent`` and
autobahn's client factories), :class:`TunnelListener` the host's side, which builds a
protocol from a factory for each ``OPEN``; both give the protocol a
:class:`TunnelTransport`.
"""

from __future__ import annotations

import json
import struct
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, error
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .link import LinkDown, Message, NATSLink, RequestTimeout, Subscription, Unreachable

__all__ = [
    "ClusterAddress",
    "Frame",
    "LinkDown",
    "RequestTimeout",
    "TunnelEndpoint",
    "TunnelListener",
    "TunnelLost",
    "TunnelRefused",
    "TunnelTransport",
    "Unreachable",
    "close_tunnels_to",
    "decode_frame",
    "encode_frame",
]

log = Logger()

DATA, ACK, PING, CLOSE = b"D", b"A", b"P", b"C"
KINDS = (DATA, ACK, PING, CLOSE)
_HEADER = struct.Struct(">cQ")
_TOTAL = struct.Struct(">Q")

#: Bytes a receiver lets a sender have in flight unless it says otherwise.
DEFAULT_WINDOW = 256 * 1024
#: The largest data body of one frame (well below NATS's default 1 MB payload limit).
MAX_CHUNK = 64 * 1024
#: Seconds between keepalives, and of silence after which a connection is taken as lost.
KEEPALIVE = 5.0
SILENCE = 15.0
#: Seconds a gateway waits for a host's answer to OPEN.
OPEN_TIMEOUT = 5.0


@dataclass(frozen=True)
class Frame:
    """One tunnel frame: its kind (``D``, ``A``, ``P`` or ``C``), sequence number and body."""

    kind: bytes
    seq: int
    body: bytes = b""

    @property
    def total(self) -> int:
        """The byte total an ``A`` frame carries."""
        (value,) = _TOTAL.unpack(self.body)
        return int(value)


def encode_frame(kind: bytes, seq: int, body: bytes = b"") -> bytes:
    """The bytes of one frame."""
    return _HEADER.pack(kind, seq) + body


def encode_ack(seq: int, total: int) -> bytes:
    """The bytes of an ``A`` frame acknowledging total consumed bytes."""
    return encode_frame(ACK, seq, _TOTAL.pack(total))


def decode_frame(raw: bytes) -> Frame:
    """The frame in raw; ValueError when raw is not one."""
    if len(raw) < _HEADER.size:
        raise ValueError(f"a frame of {len(raw)} bytes is shorter than its header")
    kind, seq = _HEADER.unpack_from(raw)
    if kind not in KINDS:
        raise ValueError(f"unknown frame type {kind!r}")
    body = bytes(raw[_HEADER.size :])
    if kind == ACK and len(body) != _TOTAL.size:
        raise ValueError(f"an ack carries {len(body)} bytes, not 8")
    if kind == PING and body:
        raise ValueError("a keepalive carries a body")
    return Frame(kind, seq, body)


class TunnelLost(error.ConnectionLost):
    """A tunnel ended other than by a close of either side (the message says why)."""


class TunnelRefused(error.ConnectionRefusedError):
    """The host answered OPEN with an error, or its factory built no protocol."""


@implementer(IAddress)
@dataclass(frozen=True)
class ClusterAddress:
    """An end of a tunnel: on a host, the peer is the gateway's id; on a gateway, the peer
    is the host's subject."""

    name: str


@implementer(ITransport, IConsumer, IPushProducer)
class TunnelTransport:
    """One end of a tunnel, as a transport for a protocol; ``grant`` is what the gateway
    put in OPEN (None on the gateway's end)."""

    disconnecting = False
    disconnected = False

    def __init__(
        self,
        link: NATSLink,
        send_to: str,
        peer_window: int,
        peer: ClusterAddress,
        host: ClusterAddress,
        grant: dict[str, Any] | None = None,
        *,
        window: int = DEFAULT_WINDOW,
        keepalive: float = KEEPALIVE,
        silence: float = SILENCE,
        on_closed: Callable[[TunnelTransport], None] | None = None,
    ) -> None:
        self._link = link
        self._reactor = link.reactor
        self._send_to = send_to
        self._window = max(1, peer_window)
        self._peer = peer
        self._host = host
        self.grant = grant
        self._keepalive_every = keepalive
        self._silence = silence
        self._on_closed = on_closed
        self.protocol: IProtocol | None = None
        self.subscription: Subscription | None = None
        # Sending.
        self._seq_out = 0
        self._pending: deque[bytes] = deque()
        self._pending_size = 0
        self._sent = 0
        self._acked = 0
        self._producer: Any = None
        self._streaming = False
        self._producer_paused = False
        self._pull_scheduled: Any = None
        self._flush_call: Any = None
        # Receiving.
        self._seq_in = 0
        self._paused = False
        self._held: deque[bytes] = deque()
        self._held_size = 0
        #: What this side told the peer it may have in flight.
        self._receive_window = window
        self._consumed = 0
        self._ack_sent = 0
        self._ack_call: Any = None
        self._peer_closed: Failure | None = None
        # Liveness.
        self._keepalive = LoopingCall(self._send_keepalive)
        self._keepalive.clock = self._reactor
        self._silence_call: Any = None

    # -- set-up

    def connect_protocol(self, protocol: IProtocol) -> None:
        """Start the connection: keepalives, the silence timer, protocol.makeConnection."""
        self.protocol = protocol
        _tunnels_of(self._link).add(self)
        self._keepalive.start(self._keepalive_every, now=False)
        self._silence_call = self._reactor.callLater(self._silence, self._silent)
        protocol.makeConnection(self)

    # -- ITransport

    def write(self, data: bytes) -> None:
        """Send data; buffered past the peer's window (the producer is paused then)."""
        if self.disconnected or not data:
            return
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        # Writes of one reactor turn go out together, in as few frames as fit.
        if self._flush_call is None:
            self._flush_call = self._reactor.callLater(0, self._flush)
        if self._sent - self._acked + self._pending_size > self._window:
            self._pause_producer()

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Close once everything written has been sent."""
        if self.disconnected or self.disconnecting:
            return
        self.disconnecting = True
        self._finish_if_done()

    def abortConnection(self) -> None:
        """Close now, dropping what was not sent."""
        self.close(error.ConnectionAborted(), "aborted")

    def getPeer(self) -> ClusterAddress:
        return self._peer

    def getHost(self) -> ClusterAddress:
        return self._host

    # -- IConsumer

    @property
    def producer(self) -> Any:
        """The registered producer, or None (``producer``, as Twisted's own transports have it:
        a host's WebSocket takes twisted.web's channel off the transport by it)."""
        return self._producer

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self._producer is not None:
            raise RuntimeError(f"cannot register producer {producer}: {self._producer} is registered")
        if self.disconnected:
            producer.stopProducing()
            return
        self._producer = producer
        self._streaming = bool(streaming)
        self._producer_paused = False
        if not streaming:
            producer.resumeProducing()
        elif self._sent - self._acked + self._pending_size > self._window:
            self._producer_paused = True
            producer.pauseProducing()

    def unregisterProducer(self) -> None:
        self._producer = None
        self._producer_paused = False
        if self._pull_scheduled is not None and self._pull_scheduled.active():
            self._pull_scheduled.cancel()
        self._pull_scheduled = None
        self._finish_if_done()

    # -- IPushProducer: the protocol pausing what the tunnel hands it

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        if not self._paused:
            return
        self._paused = False
        while self._held and not self._paused and not self.disconnected:
            data = self._held.popleft()
            self._held_size -= len(data)
            self._deliver(data)
        if not self._held and self._peer_closed is not None:
            self._end(self._peer_closed)

    def stopProducing(self) -> None:
        self.loseConnection()

    # -- sending

    def _send(self, kind: bytes, body: bytes = b"") -> None:
        self._link.publish(self._send_to, encode_frame(kind, self._seq_out, body))
        self._seq_out += 1

    def _flush(self) -> None:
        self._flush_call = None
        self._pump()

    def _pause_producer(self) -> None:
        if self._producer is not None and self._streaming and not self._producer_paused:
            self._producer_paused = True
            self._producer.pauseProducing()

    def _pump(self) -> None:
        """Send what the peer's window has room for, in frames of at most MAX_CHUNK."""
        pending = self._pending
        while pending and self._sent - self._acked < self._window:
            take = min(self._window - (self._sent - self._acked), MAX_CHUNK)
            parts = []
            size = 0
            while pending and size < take:
                chunk = pending[0]
                need = take - size
                if len(chunk) <= need:
                    parts.append(pending.popleft())
                    size += len(chunk)
                else:
                    parts.append(chunk[:need])
                    pending[0] = chunk[need:]
                    size += need
            self._pending_size -= size
            self._sent += size
            self._send(DATA, b"".join(parts))
        if self._pending_size:
            self._pause_producer()
        else:
            if self._producer is not None:
                if self._streaming:
                    if self._producer_paused:
                        self._producer_paused = False
                        self._producer.resumeProducing()
                elif self._pull_scheduled is None:
                    self._pull_scheduled = self._reactor.callLater(0, self._pull)
            self._finish_if_done()

    def _pull(self) -> None:
        self._pull_scheduled = None
        if self._producer is not None and not self._streaming and not self.disconnected:
            self._producer.resumeProducing()

    def _finish_if_done(self) -> None:
        if self.disconnecting and not self.disconnected and not self._pending and self._producer is None:
            self.close(error.ConnectionDone("closed"), "closed")

    def _send_keepalive(self) -> None:
        if not self.disconnected:
            self._send(PING)

    # -- receiving

    def frame_received(self, raw: bytes) -> None:
        """Handle one frame from the peer."""
        if self.disconnected:
            return
        try:
            frame = decode_frame(raw)
        except ValueError as bad:
            self.close(TunnelLost(f"bad frame: {bad}"), f"bad frame: {bad}")
            return
        if frame.seq != self._seq_in:
            why = f"gap in sequence: expected {self._seq_in}, got {frame.seq}"
            self.close(TunnelLost(why), why)
            return
        self._seq_in += 1
        if self._silence_call is not None and self._silence_call.active():
            self._silence_call.reset(self._silence)
        if self._peer_closed is not None:
            return
        if frame.kind == DATA:
            if self._paused or self._held:
                self._held.append(frame.body)
                self._held_size += len(frame.body)
                if self._held_size > self._receive_window:
                    why = f"the peer sent past the window of {self._receive_window} bytes"
                    self.close(TunnelLost(why), why)
            else:
                self._deliver(frame.body)
        elif frame.kind == ACK:
            total = frame.total
            if total > self._sent:
                why = f"ack of {total} bytes beyond the {self._sent} sent"
                self.close(TunnelLost(why), why)
                return
            self._acked = max(self._acked, total)
            self._pump()
        elif frame.kind == CLOSE:
            reason = frame.body.decode("utf-8", "replace")
            self._peer_closed = Failure(error.ConnectionDone(f"closed by the peer: {reason}"))
            if self._silence_call is not None and self._silence_call.active():
                self._silence_call.cancel()
            if not self._held:
                self._end(self._peer_closed)

    def _deliver(self, data: bytes) -> None:
        assert self.protocol is not None
        self.protocol.dataReceived(data)
        self._consumed += len(data)
        if self._ack_call is None:
            self._ack_call = self._reactor.callLater(0, self._send_ack)

    def _send_ack(self) -> None:
        self._ack_call = None
        if not self.disconnected and self._peer_closed is None and self._consumed > self._ack_sent:
            self._ack_sent = self._consumed
            self._link.publish(self._send_to, encode_ack(self._seq_out, self._consumed))
            self._seq_out += 1

    def _silent(self) -> None:
        self._silence_call = None
        why = f"no frame from the peer for {self._silence:g} s"
        self.close(TunnelLost(why), why)

    # -- closing

    def close(self, reason: BaseException, told: str) -> None:
        """End the connection now with reason, telling the peer told (its C frame)."""
        if self.disconnected:
            return
        self._send(CLOSE, told.encode("utf-8"))
        self._end(Failure(reason))

    def lost(self, why: str) -> None:
        """End the connection now, without a word to the peer (NATS is gone)."""
        self._end(Failure(TunnelLost(why)))

    def _end(self, reason: Failure) -> None:
        if self.disconnected:
            return
        self.disconnected = True
        self.disconnecting = False
        _tunnels_of(self._link).discard(self)
        if self._keepalive.running:
            self._keepalive.stop()
        for call in (self._silence_call, self._ack_call, self._pull_scheduled, self._flush_call):
            if call is not None and call.active():
                call.cancel()
        self._silence_call = self._ack_call = self._pull_scheduled = self._flush_call = None
        self._pending.clear()
        self._held.clear()
        self._held_size = 0
        if self.subscription is not None:
            self._link.unsubscribe(self.subscription)
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()
        if self._on_closed is not None:
            self._on_closed(self)
        if self.protocol is not None:
            # As Twisted's transports do, never from inside the protocol's own call of
            # loseConnection or abortConnection.
            self._reactor.callLater(0, self.protocol.connectionLost, reason)


#: The open tunnels of each link, closed when the link loses NATS.
_TUNNELS: weakref.WeakKeyDictionary[NATSLink, set[TunnelTransport]] = weakref.WeakKeyDictionary()


def close_tunnels_to(link: NATSLink, subject: str, why: str) -> int:
    """Close every tunnel of link whose peer is subject (a host a gateway's directory
    sees down: its keepalives would take the silence timeout to tell); the number closed."""
    closing = [tunnel for tunnel in _tunnels_of(link) if tunnel.getPeer().name == subject]
    for tunnel in closing:
        tunnel.close(TunnelLost(why), why)
    return len(closing)


def _tunnels_of(link: NATSLink) -> set[TunnelTransport]:
    tunnels = _TUNNELS.get(link)
    if tunnels is None:
        tunnels = _TUNNELS[link] = set()

        def state(name: str) -> None:
            if name in ("disconnected", "closed"):
                for tunnel in list(tunnels):
                    tunnel.lost(f"NATS connection {name}")

        link.when_state(state)
    return tunnels


def _subscribe(link: NATSLink, subject: str, transport_of: Callable[[], TunnelTransport | None]) -> Any:
    """Subscribe to subject, handing frames to the transport transport_of() gives once it
    gives one (frames before that are kept, in order)."""
    early: list[bytes] = []

    def received(message: Message) -> None:
        transport = transport_of()
        if transport is None:
            early.append(message.data)
            return
        while early:
            transport.frame_received(early.pop(0))
        transport.frame_received(message.data)

    def flush() -> None:
        transport = transport_of()
        if transport is not None:
            while early and not transport.disconnected:
                transport.frame_received(early.pop(0))
            early.clear()

    return link.subscribe(subject, received), flush


@implementer(IStreamClientEndpoint)
class TunnelEndpoint:
    """A client endpoint whose connections go over NATS to the host on subject."""

    def __init__(
        self,
        link: NATSLink,
        subject: str,
        grant: dict[str, Any] | None,
        gateway_id: str,
        *,
        timeout: float = OPEN_TIMEOUT,
        window: int = DEFAULT_WINDOW,
        keepalive: float = KEEPALIVE,
        silence: float = SILENCE,
    ) -> None:
        self._link = link
        self._subject = subject
        self._grant = grant
        self._gateway_id = gateway_id
        self._timeout = timeout
        self._window = window
        self._keepalive = keepalive
        self._silence = silence

    def connect(self, protocolFactory: IProtocolFactory) -> defer.Deferred[IProtocol]:
        """Open a tunnel and connect a protocol of protocolFactory to it.

        Errbacks with :class:`Unreachable` (no host subscribes to the subject),
        :class:`RequestTimeout`, :class:`LinkDown` or :class:`TunnelRefused`.
        """
        return defer.ensureDeferred(self._connect(protocolFactory))

    async def _connect(self, factory: IProtocolFactory) -> IProtocol:
        link = self._link
        if not link.connected:
            raise LinkDown("not connected to NATS")
        inbox = link.new_inbox()
        holder: list[TunnelTransport] = []
        subscribing, flush = _subscribe(link, inbox, lambda: holder[0] if holder else None)
        subscribing.addErrback(lambda failure: None)
        opening = json.dumps(
            {"v": 1, "gw": self._gateway_id, "inbox": inbox, "window": self._window, "grant": self._grant}
        ).encode()
        try:
            raw = await link.request(self._subject, opening, self._timeout)
        except BaseException:
            subscribing.addCallback(link.unsubscribe)
            raise
        subscription: Subscription | None = None

        def got(value: Subscription) -> Subscription:
            nonlocal subscription
            subscription = value
            return value

        subscribing.addCallback(got)
        try:
            answer = json.loads(raw)
            if not isinstance(answer, dict):
                raise ValueError("not an object")
            if "error" in answer:
                raise TunnelRefused(string=str(answer["error"]))
            conn, window = answer["conn"], answer["window"]
            if not isinstance(conn, str) or not isinstance(window, int) or isinstance(window, bool):
                raise ValueError("conn or window of the wrong type")
        except (ValueError, KeyError) as bad:
            subscribing.addCallback(link.unsubscribe)
            raise TunnelRefused(string=f"bad answer to OPEN: {bad}") from None
        except TunnelRefused:
            subscribing.addCallback(link.unsubscribe)
            raise
        protocol = factory.buildProtocol(ClusterAddress(self._subject))
        if protocol is None:
            link.publish(conn, encode_frame(CLOSE, 0, b"refused by the client's factory"))
            subscribing.addCallback(link.unsubscribe)
            raise TunnelRefused(string="the factory built no protocol")
        transport = TunnelTransport(
            link,
            conn,
            window,
            peer=ClusterAddress(self._subject),
            host=ClusterAddress(self._gateway_id),
            window=self._window,
            keepalive=self._keepalive,
            silence=self._silence,
        )

        def attach(value: Subscription) -> Subscription:
            if transport.disconnected:
                link.unsubscribe(value)
            else:
                transport.subscription = value
            return value

        subscribing.addCallback(attach)
        holder.append(transport)
        transport.connect_protocol(protocol)
        flush()
        return protocol


class TunnelListener:
    """The host's side: every OPEN on subject gets a protocol from factory, over a
    :class:`TunnelTransport` whose peer is the gateway and whose ``grant`` is the OPEN's."""

    def __init__(
        self,
        link: NATSLink,
        subject: str,
        factory: IProtocolFactory,
        *,
        window: int = DEFAULT_WINDOW,
        keepalive: float = KEEPALIVE,
        silence: float = SILENCE,
    ) -> None:
        self._link = link
        self._subject = subject
        self._factory = factory
        self._window = window
        self._keepalive = keepalive
        self._silence = silence
        self._subscription: Subscription | None = None
        self._connections: set[TunnelTransport] = set()
        self._running = False

    @property
    def connections(self) -> frozenset[TunnelTransport]:
        """The open connections."""
        return frozenset(self._connections)

    async def _start(self) -> None:
        self._running = True
        self._subscription = await self._link.subscribe(self._subject, self._opened)

    def start(self) -> defer.Deferred[None]:
        """Subscribe to the subject; fires once the server has the subscription."""
        return defer.ensureDeferred(self._start())

    def stop(self) -> None:
        """Close every connection and unsubscribe."""
        self._running = False
        if self._subscription is not None:
            self._link.unsubscribe(self._subscription)
            self._subscription = None
        for transport in list(self._connections):
            transport.close(error.ConnectionDone("the host stopped listening"), "the host stopped listening")

    def _refuse(self, reply: str, why: str) -> None:
        log.info("tunnel: OPEN refused: {why}", why=why)
        self._link.publish(reply, json.dumps({"error": why}).encode())

    def _opened(self, message: Message) -> None:
        if not message.reply or not self._running:
            return
        try:
            request = json.loads(message.data)
            if not isinstance(request, dict):
                raise ValueError("not a JSON object")
            if request.get("v") != 1:
                raise ValueError(f"unknown version {request.get('v')!r}")
            gateway, inbox, window = request["gw"], request["inbox"], request["window"]
            grant = request.get("grant")
            if not isinstance(gateway, str) or not isinstance(inbox, str) or not inbox:
                raise ValueError("gw and inbox must be strings")
            if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
                raise ValueError("window must be a positive integer")
            if grant is not None and not isinstance(grant, dict):
                raise ValueError("grant must be an object")
        except (ValueError, KeyError) as bad:
            self._refuse(message.reply, f"bad OPEN: {bad}")
            return
        peer = ClusterAddress(gateway)
        protocol = self._factory.buildProtocol(peer)
        if protocol is None:
            self._refuse(message.reply, "refused")
            return
        link = self._link
        conn = link.new_inbox()
        transport = TunnelTransport(
            link,
            inbox,
            window,
            peer=peer,
            host=ClusterAddress(self._subject),
            grant=grant,
            window=self._window,
            keepalive=self._keepalive,
            silence=self._silence,
            on_closed=self._connections.discard,
        )
        subscribing, flush = _subscribe(link, conn, lambda: transport)

        def attach(value: Subscription) -> None:
            if transport.disconnected:
                link.unsubscribe(value)
            else:
                transport.subscription = value

        subscribing.addCallbacks(attach, lambda failure: transport.lost("cannot subscribe"))
        # The subscription reaches the server before the answer (one ordered connection).
        link.publish(message.reply, json.dumps({"conn": conn, "window": self._window}).encode())
        self._connections.add(transport)
        transport.connect_protocol(protocol)
