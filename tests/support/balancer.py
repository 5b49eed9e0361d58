# -*- test-case-name: tests.test_browser_cluster -*-
"""L{Balancer}: a TCP load balancer in front of gateways, as small as a test needs.

It listens on one loopback port and relays each connection it accepts, byte for
byte in both directions, to the backend it points at when the connection arrives.
L{Balancer.switch} points it at another backend: connections open stay where they
are (they end when their backend's do), new ones go to the new backend. A
connection whose backend refuses it is closed, as a balancer whose backend is gone
closes it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import protocol


class _BackendSide(protocol.Protocol):
    """The connection to the backend of one client connection."""

    def __init__(self, client: _ClientSide) -> None:
        self.client = client

    def connectionMade(self) -> None:
        if self.client.gone:
            self.transport.loseConnection()
            return
        self.client.backend = self
        # Each side's transport is the other's producer: a slow reader slows the writer.
        self.transport.registerProducer(self.client.transport, True)
        self.client.transport.registerProducer(self.transport, True)
        if self.client.held:
            self.transport.write(b"".join(self.client.held))
            self.client.held.clear()
        self.client.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        self.client.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.client.transport.loseConnection()


class _ClientSide(protocol.Protocol):
    """A connection the balancer accepted."""

    factory: Balancer

    def __init__(self) -> None:
        self.backend: _BackendSide | None = None
        self.held: list[bytes] = []
        self.gone = False

    def connectionMade(self) -> None:
        balancer = self.factory
        balancer.open.add(self)
        balancer.accepted[balancer.backend] = balancer.accepted.get(balancer.backend, 0) + 1
        self.transport.pauseProducing()  # until the backend answers
        connecting = protocol.ClientCreator(balancer.reactor, _BackendSide, self)
        connecting.connectTCP("127.0.0.1", balancer.backend, timeout=5).addErrback(
            lambda _: self.transport.loseConnection()
        )

    def dataReceived(self, data: bytes) -> None:
        if self.backend is None:
            self.held.append(data)
        else:
            self.backend.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.gone = True
        self.factory.open.discard(self)
        if self.backend is not None:
            self.backend.transport.loseConnection()


class Balancer(protocol.ServerFactory):
    """Relays connections on a port of its own to the backend port it points at."""

    protocol = _ClientSide

    def __init__(self, reactor: Any, backend: int) -> None:
        self.reactor = reactor
        #: The port new connections go to.
        self.backend = backend
        #: How many connections went to each backend port so far.
        self.accepted: dict[int, int] = {}
        self.open: set[_ClientSide] = set()
        self.port = 0
        self._listening: Any = None

    def start(self) -> None:
        self._listening = self.reactor.listenTCP(0, self, interface="127.0.0.1")
        self.port = self._listening.getHost().port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def switch(self, backend: int) -> None:
        """New connections go to backend from now on."""
        self.backend = backend

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._listening is not None:
            await self._listening.stopListening()
            self._listening = None
        for client in list(self.open):
            client.transport.abortConnection()
            if client.backend is not None and client.backend.transport is not None:
                client.backend.transport.abortConnection()
