"""The daemon's WebSockets in memory: L{SocketTestCase} serves sessions with fake programs
over Autobahn's in-memory agent, and L{Pumper} moves the bytes when the test says so."""

from __future__ import annotations

from typing import Any

from autobahn.twisted.testing import create_memory_agent
from twisted.internet import reactor
from twisted.internet.task import Cooperator
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from tests.support.daemon import WSClient as Client
from tests.support.sessions import Harness
from vibetwist.interfaces import ISession as Session
from vibetwist.server.websocket import WebSocketFactory
from vibetwist.testing import FakeTerminalProcess, pump


class Pumper:
    """Moves bytes between in-memory clients and servers when the test says so."""

    def __init__(self) -> None:
        self.pumps: list[Any] = []

    def add(self, pump: Any) -> None:
        self.pumps.append(pump)

    def flush(self) -> None:
        for _ in range(3):
            for p in self.pumps:
                p.flush()


class SocketTestCase(SynchronousTestCase):
    """Sessions with fake programs, and the daemon's sockets in memory."""

    def setUp(self) -> None:
        # Autobahn's factories put their handshake and ping timers on the global reactor
        # (through txaio), not on the test's clock: cancel the ones a test leaves, so they
        # do not turn up as a dirty reactor in whichever later test runs the reactor.
        before = set(reactor.getDelayedCalls())
        self.addCleanup(
            lambda: [
                call.cancel() for call in reactor.getDelayedCalls() if call not in before and call.active()
            ]
        )
        self.h = Harness(self)
        self.clock = self.h.clock
        self.sessions: dict[str, Session] = {}
        service = self

        class Service:
            def get(self, session_id: object) -> Session:
                from vibetwist.errors import NotFound

                if not isinstance(session_id, str) or session_id not in service.sessions:
                    raise NotFound("Session not found")
                return service.sessions[session_id]

        self.service = Service()
        self.cooperator = Cooperator(scheduler=lambda f: self.clock.callLater(0, f))
        self.pumper = Pumper()
        self.net = MemoryReactorClock()

    def session(self) -> tuple[Session, FakeTerminalProcess]:
        session = self.h.create(cols=20, rows=4)
        self.sessions[session.id] = session
        pump(self.clock)
        return session, self.h.launcher.last

    def settle(self) -> None:
        """Let the sockets, the screens and the readers all catch up."""
        for _ in range(20):
            self.pumper.flush()
            pump(self.clock)
        self.pumper.flush()

    def connect(
        self, protocol: type, path: str, compress: bool = False, client: type[Client] = Client
    ) -> Client:
        factory = WebSocketFactory(
            protocol,
            self.service,  # type: ignore[arg-type]
            self.clock,
            self.cooperator,
            compress=compress,
        )
        self.factory = factory
        agent = create_memory_agent(self.net, self.pumper, lambda: factory.buildProtocol(None))
        d = agent.open(f"ws://127.0.0.1:4020{path}", {}, client)
        self.settle()
        connected: Client = self.successResultOf(d)
        return connected
