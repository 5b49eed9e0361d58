# -*- test-case-name: tests.test_limits -*-
"""How much the daemon takes from its clients, and the answers past each limit.

- **Live sessions** (``--max-sessions``): a create past the cap answers
  503 ``{"error": ...}`` with ``Retry-After``; the server is full, not the
  client too fast.
- **Creation rate** (``--max-create-rate``, ``--create-burst``): a token
  bucket; a create with no token left answers 429 with ``Retry-After``.
- **Connections** (``--max-connections``): HTTP and WebSocket connections
  together; one past the cap gets a 503 and is closed at once. Connections of
  other clients than the daemon's own user (told apart by
  :mod:`vibetwist.model.peercred` when each connection is accepted) are held to
  an eighth of the cap per client (an address, an IPv6 /64, or a user of this
  machine) and to nine tenths of it together, so the last tenth stays free for
  the daemon's own user whatever strangers hold.
- **Request time** (``--request-timeout``): a connection must deliver a whole
  request, headers and body, within this many seconds of opening or of its
  previous response, or it gets a 408 and is closed (a client trickling a
  byte a second holds no connection for long); a connection that sent nothing
  in that time is closed without an answer.
- **Bodies** over 1 MiB get a 413 and the connection is closed as soon as
  the Content-Length says so, or as soon as a chunked body passes 1 MiB:
  nothing more is read (``vibetwist.server.hostcheck`` checks again). **WebSocket
  messages** over 1 MiB get close 1009 (``vibetwist.server.websocket``).
  twisted.web itself refuses a request line over 16 KiB and headers over
  16 KiB or 500 in number.
- **/buffers subscriptions** per socket: past ``MAX_SUBSCRIPTIONS`` an error
  frame.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.web.server import Request

from vibetwist.errors import RetryLater
from vibetwist.model.peercred import UNKNOWN_LOCAL, Peer, SocketOwners, client_key, tcp_peer, unix_peer_uid
from vibetwist.server.hostcheck import MAX_BODY

#: Subscriptions one /buffers socket may hold.
MAX_SUBSCRIPTIONS = 1000


@dataclass(frozen=True)
class Limits:
    """The daemon's limits; the defaults sit well above what the benchmarks ask for."""

    max_sessions: int = 1000
    create_rate: float = 200.0
    create_burst: int = 200
    max_connections: int = 2000
    request_timeout: float = 30.0


class TooManyRequests(RetryLater):
    """Creates come faster than the daemon allows (HTTP 429)."""

    status = 429
    reason = b"Too Many Requests"


class ServerFull(RetryLater):
    """The daemon holds as many live sessions as it allows (HTTP 503)."""

    status = 503
    reason = b"Service Unavailable"


class TokenBucket:
    """At most ``burst`` events at once and ``rate`` a second over time.

    Sans-IO: every call is given the time.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now

    def take(self, now: float) -> float:
        """0 when a token was taken; otherwise the seconds until one is available."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        if self.rate <= 0:
            return math.inf
        return (1.0 - self._tokens) / self.rate


class SessionCreateLimit:
    """Admits session creates under the live-session cap and the creation rate."""

    def __init__(self, limits: Limits, reactor: Any) -> None:
        self._limits = limits
        self._reactor = reactor
        self._bucket = TokenBucket(limits.create_rate, limits.create_burst, reactor.seconds())

    def admit(self, live: int) -> None:
        """Return if one more session may start now; ServerFull or TooManyRequests otherwise."""
        cap = self._limits.max_sessions
        if live >= cap:
            raise ServerFull(f"The daemon already runs {cap} sessions, its limit (--max-sessions)", 5)
        wait = self._bucket.take(self._reactor.seconds())
        if wait:
            raise TooManyRequests(
                "Sessions are created too fast (--max-create-rate)",
                max(1, math.ceil(min(wait, 3600.0))),
            )


def _raw_answer(code: int, reason: str, message: str, retry_after: int | None = None) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = [
        f"HTTP/1.1 {code} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


BUSY = _raw_answer(503, "Service Unavailable", "Too many connections (--max-connections)", 1)
CLIENT_BUSY = _raw_answer(503, "Service Unavailable", "Too many connections from this client", 1)
TOO_LARGE = _raw_answer(413, "Payload Too Large", f"Request body larger than {MAX_BODY} bytes")
TIMED_OUT = _raw_answer(408, "Request Timeout", "The request took too long to arrive (--request-timeout)")


class _Busy(Protocol):
    """Answers a connection past the cap with a 503 and closes it."""

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.write(BUSY)
        transport.loseConnection()


def identify_peer(transport: Any, owners: SocketOwners) -> Peer:
    """Who is at the other end of a connection the daemon accepted (see vibetwist.model.peercred)."""
    peer, host = transport.getPeer(), transport.getHost()
    if isinstance(peer, UNIXAddress):
        handle = transport.getHandle()
        uid = unix_peer_uid(handle) if hasattr(handle, "getsockopt") else None
        return Peer(uid, True)
    if isinstance(peer, (IPv4Address, IPv6Address)) and isinstance(host, (IPv4Address, IPv6Address)):
        return tcp_peer(owners.owner, (peer.host, peer.port), (host.host, host.port))
    return UNKNOWN_LOCAL


class _Counted(ProtocolWrapper):
    """Counts a connection, knows who is at its other end, and times its requests.

    The wrapped protocol gets the real transport (not this wrapper), so its
    writes go straight to the socket, and a WebSocket that takes over the
    connection is still counted until it closes.
    """

    factory: ConnectionLimiter
    #: Who is at the other end, found when the connection was accepted.
    peer: Peer = UNKNOWN_LOCAL
    _refused = False

    def makeConnection(self, transport: Any) -> None:
        Protocol.makeConnection(self, transport)
        self.peer = self.factory.identify(transport)
        self.key = None if self.factory.trusted(self.peer) else client_key(self.peer, _host(transport))
        refusal = self.factory.admit(self.key)
        if refusal is not None:
            self._refused = True
            transport.write(refusal)
            transport.loseConnection()
            return
        self.factory.registerProtocol(self)
        self._channel = self.wrappedProtocol
        self._deadline: IDelayedCall | None = None
        self._lost = False
        self._partial = False
        #: Whether a request has arrived whose answer is not finished.
        self.answering = False
        self.idle()
        self.wrappedProtocol.makeConnection(transport)

    def busy(self) -> None:
        """A whole request has arrived: no deadline while it is answered."""
        self.answering = True
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def idle(self) -> None:
        """Waiting for a request: it must arrive within the request timeout."""
        self.busy()
        self.answering = False
        self._partial = False
        if not self._lost and self.wrappedProtocol is self._channel:
            self._deadline = self.factory.reactor.callLater(self.factory.request_timeout, self._expire)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._deadline is not None:
            self._partial = True
        super().dataReceived(data)

    def _expire(self) -> None:
        """A request began but did not arrive in time: 408. An idle kept-alive connection is
        closed without a word, as a client expects it might be."""
        self._deadline = None
        transport: Any = self.transport
        if self.wrappedProtocol is self._channel and transport is not None:
            if self._partial:
                transport.write(TIMED_OUT)
            # Let go of the channel registered as the transport's producer first (as
            # HTTPChannel.loseConnection does): a TLS transport does not close while one is.
            transport.unregisterProducer()
            transport.loseConnection()

    @property
    def is_http(self) -> bool:
        """Whether the connection still speaks HTTP (no WebSocket has taken it over)."""
        return self.wrappedProtocol is self._channel

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._refused:
            return
        self._lost = True
        self.busy()
        super().connectionLost(reason)


def _host(transport: Any) -> str | None:
    address = transport.getPeer()
    return getattr(address, "host", None)


class ConnectionLimiter(WrappingFactory):
    """Wraps the daemon's Site: caps its connections, finds who made each, and times its requests."""

    protocol = _Counted
    noisy = False

    def __init__(
        self,
        site: Any,
        limits: Limits,
        reactor: Any,
        *,
        identify: Callable[[Any], Peer] | None = None,
        uid: int | None = None,
    ) -> None:
        super().__init__(site)
        self.reactor = reactor
        self.max_connections = limits.max_connections
        self.per_client = max(1, limits.max_connections // 8)
        self.for_strangers = max(1, limits.max_connections - max(1, limits.max_connections // 10))
        self.request_timeout = limits.request_timeout
        self.uid = os.getuid() if uid is None else uid
        self.identify = identify if identify is not None else partial(identify_peer, owners=SocketOwners())
        #: Connections of clients other than the daemon's user, in all and by client.
        self._strangers = 0
        self._by_client: Counter[str] = Counter()
        site.requestFactory = TimedRequest

    def trusted(self, peer: Peer) -> bool:
        """True for a connection of the daemon's own user."""
        return peer.is_user(self.uid)

    def buildProtocol(self, addr: Any) -> Any:
        if len(self.protocols) >= self.max_connections:
            return _Busy()
        return super().buildProtocol(addr)

    def admit(self, key: str | None) -> bytes | None:
        """None if a connection of this client (None: the daemon's user) may be served, else the
        answer that refuses it."""
        if key is None:
            return None
        if self._strangers >= self.for_strangers:
            return BUSY
        if self._by_client[key] >= self.per_client:
            return CLIENT_BUSY
        return None

    def connections(self) -> list[_Counted]:
        """The open connections, HTTP and WebSocket."""
        return list(self.protocols)

    def registerProtocol(self, p: Any) -> None:
        super().registerProtocol(p)
        if p.key is not None:
            self._strangers += 1
            self._by_client[p.key] += 1

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        if p.key is not None:
            self._strangers -= 1
            self._by_client[p.key] -= 1
            if not self._by_client[p.key]:
                del self._by_client[p.key]


def connection_of(request: Any) -> _Counted | None:
    """The counted connection a twisted.web request arrived on (over TLS too), if any."""
    transport = getattr(request.channel, "transport", None)
    for candidate in (getattr(transport, "protocol", None), getattr(transport, "wrappedProtocol", None)):
        if isinstance(candidate, _Counted):
            return candidate
    return None


def connection_peer(request: Any) -> Peer:
    """Who made a request: the peer its connection found when accepted (unknown without one)."""
    connection = connection_of(request)
    return connection.peer if connection is not None else UNKNOWN_LOCAL


class TimedRequest(Request):
    """A Request that tells its connection when it has arrived and when it is answered,
    and that stops reading a body past MAX_BODY."""

    _received = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > MAX_BODY:
            self._refuse()
            length = 0  # nothing of it will be kept
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > MAX_BODY:
            self._refuse()
        if not self._refused:
            super().handleContentChunk(data)

    def _refuse(self) -> None:
        if not self._refused:
            self._refused = True
            transport: Any = self.channel.transport
            transport.write(TOO_LARGE)
            self.channel.loseConnection()  # as in _Counted._expire: a TLS transport closes too

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return  # answered 413; the connection is closing
        counted = connection_of(self)
        if counted is not None:
            counted.busy()
            self.notifyFinish().addBoth(lambda _: counted.idle())
        super().requestReceived(command, path, version)
